"""The deployment form: a name, the AD domain and the cluster nodes with their WinRM settings."""

from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import (
    BooleanField,
    FieldList,
    Form,
    FormField,
    IntegerField,
    RadioField,
    SelectField,
)
from wtforms.validators import DataRequired, Length, ValidationError

from app import validators
from app.guides import DEFAULT_GUIDE, GUIDES
from app.wizard.fields import NoteField, Rule, SecretField, TextField

AUTH_CHOICES = [
    ("kerberos", "Kerberos (recommended in a domain)"),
    ("negotiate", "Negotiate (Kerberos if possible, else NTLM)"),
    ("ntlm", "NTLM (when Kerberos cannot be used)"),
    ("credssp", "CredSSP (second hop; turn off afterwards)"),
    ("basic", "Basic (local accounts, HTTPS only)"),
]
MAX_NODES = 16


class NodeForm(Form):
    """One cluster node. A subform: the parent form carries the CSRF token."""

    name = TextField("AD computer name", [Rule(lambda v: validators.node_name(v, "Computer name"))])
    host = TextField("WinRM host", [Rule(validators.hostname)])
    port = IntegerField("Port", default=5985)
    transport = SelectField("Transport", choices=[("http", "HTTP"), ("https", "HTTPS")])
    auth = SelectField("Authentication", choices=AUTH_CHOICES, default="negotiate")
    # Only HTTPS has a certificate to validate: static/js/disclose.js hides the box for HTTP.
    cert_validation = BooleanField(
        "Validate certificate",
        default=True,
        render_kw={"data-show-when": "transport=https"},
    )

    def validate_port(self, field) -> None:
        try:
            field.data = validators.port(field.data)
        except ValueError as error:
            raise ValidationError(str(error)) from None

    def validate_cert_validation(self, field) -> None:
        if self.transport.data == "http":
            field.data = True  # not offered for HTTP (nothing to validate); kept at the default


class DeploymentForm(FlaskForm):
    """Create or edit a deployment."""

    # Chosen when the deployment is created; its guide never changes afterwards.
    guide_key = RadioField(
        "Topology",
        choices=[(g.key, g.title) for g in GUIDES.values()],
        default=DEFAULT_GUIDE,
    )
    name = TextField(
        "Deployment name", [Rule(lambda v: validators.plain_text(v, "Deployment name", 120))]
    )
    domain_fqdn = TextField(
        "Active Directory domain",
        [Rule(validators.domain_fqdn)],
        description="The DNS name of the domain, e.g. corp.example.com.",
    )
    nodes = FieldList(FormField(NodeForm), min_entries=2, max_entries=MAX_NODES)
    kerberos_kdcs = TextField(
        "Kerberos KDCs (optional)",
        description=(
            "Only for nodes using Kerberos, when this server cannot find the domain controllers "
            "through DNS (_kerberos._tcp SRV records of the domain): their names or addresses, "
            "comma separated, e.g. dc1.corp.example.com, dc2.corp.example.com:88."
        ),
    )
    ca_bundle = NoteField(
        "Internal CA certificates (PEM)",
        description=(
            "For HTTPS listeners whose certificates an internal CA issued: paste the CA's certificate "
            "(Base-64 X.509, -----BEGIN CERTIFICATE-----), root first or any order. Leave empty to "
            "trust only this server's own CA store. Public data: never a private key."
        ),
    )

    def validate_kerberos_kdcs(self, field) -> None:
        try:
            field.data = validators.kdc_list(field.data)
        except ValueError as error:
            raise ValidationError(str(error)) from None

    def validate_ca_bundle(self, field) -> None:
        if not (field.data or "").strip():
            field.data = None
            return
        try:
            field.data = validators.ca_bundle(field.data)
        except ValueError as error:
            raise ValidationError(str(error)) from None

    def validate_nodes(self, field) -> None:
        names = [entry.form.name.data or "" for entry in field.entries]
        if len(names) < 2:
            raise ValidationError("High availability needs at least 2 nodes.")
        try:
            validators.node_names(names)
            validators.distinct_endpoints(
                [
                    (e.form.name.data or f"Node {i + 1}", e.form.host.data or "", e.form.port.data)
                    for i, e in enumerate(field.entries)
                    if isinstance(e.form.port.data, int)
                ]
            )
        except ValueError as error:
            raise ValidationError(str(error)) from None


class DeploymentPageForm(DeploymentForm):
    """The browser's form: the CA certificates may also come as an uploaded file, which replaces
    what the text box holds (the API takes the PEM text only)."""

    ca_file = FileField("Or upload the CA certificate file (.cer, .crt, .pem)")

    def validate_ca_file(self, field) -> None:
        upload = field.data
        if not upload or not getattr(upload, "filename", ""):
            return
        raw = upload.stream.read(validators.MAX_CA_BUNDLE + 1)
        try:
            self.ca_bundle.data = validators.ca_bundle(raw)
        except ValueError as error:
            raise ValidationError(f"{upload.filename}: {error}") from None


class ConnectionTestForm(FlaskForm):
    """Test connection: the credentials to sign in with, and the node (the button pressed)."""

    username = TextField(
        "WinRM user",
        [Rule(lambda v: validators.plain_text(v, "WinRM user", 255))],
        description="user@domain or DOMAIN\\user",
    )
    password = SecretField("Password", [DataRequired(), Length(max=1024)])
    node = SelectField("Node", coerce=int, choices=[])
