"""The deployment form: a name, the AD domain and the cluster nodes with their WinRM settings."""

from flask_wtf import FlaskForm
from wtforms import BooleanField, FieldList, Form, FormField, IntegerField, SelectField, StringField
from wtforms.validators import ValidationError

from app import validators
from app.wizard.fields import Rule

AUTH_CHOICES = [
    ("negotiate", "Negotiate (Kerberos, falling back to NTLM)"),
    ("kerberos", "Kerberos"),
    ("ntlm", "NTLM"),
    ("credssp", "CredSSP"),
    ("basic", "Basic (local accounts, HTTPS only in production)"),
]
MAX_NODES = 16


class NodeForm(Form):
    """One cluster node. A subform: the parent form carries the CSRF token."""

    name = StringField(
        "AD computer name", [Rule(lambda v: validators.netbios_name(v, "Computer name"))]
    )
    host = StringField("WinRM host", [Rule(validators.hostname)])
    port = IntegerField("Port", default=5985)
    transport = SelectField("Transport", choices=[("http", "HTTP"), ("https", "HTTPS")])
    auth = SelectField("Authentication", choices=AUTH_CHOICES)
    cert_validation = BooleanField("Validate certificate", default=True)

    def validate_port(self, field) -> None:
        try:
            field.data = validators.port(field.data)
        except ValueError as error:
            raise ValidationError(str(error)) from None


class DeploymentForm(FlaskForm):
    """Create or edit a deployment."""

    name = StringField(
        "Deployment name", [Rule(lambda v: validators.plain_text(v, "Deployment name", 120))]
    )
    domain_fqdn = StringField(
        "Active Directory domain",
        [Rule(validators.domain_fqdn)],
        description="The DNS name of the domain, e.g. corp.example.com.",
    )
    nodes = FieldList(FormField(NodeForm), min_entries=2, max_entries=MAX_NODES)

    def validate_nodes(self, field) -> None:
        names = [entry.form.name.data or "" for entry in field.entries]
        if len(names) < 2:
            raise ValidationError("A failover cluster needs at least 2 nodes.")
        try:
            validators.node_names(names)
        except ValueError as error:
            raise ValidationError(str(error)) from None
