"""Step 5: create the Generic Service role for lithnetams and bring it online."""

from flask_wtf import FlaskForm
from wtforms import StringField

from app import validators
from app.wizard.engine import Step
from app.wizard.fields import Rule


class ClusterRoleForm(FlaskForm):
    """The client access point users will browse to."""

    access_point_name = StringField(
        "Client access point name",
        [Rule(lambda v: validators.netbios_name(v, "Access point name"))],
        description="Becomes the AD computer name and DNS name of the service.",
    )
    access_point_address = StringField(
        "Client access point IP address",
        [Rule(lambda v: validators.static_address(v, what="Access point address"))],
    )


class ClusterRole(Step):
    """Add-ClusterGenericServiceRole without storage or registry checkpoints, then wait for Online."""

    key = "cluster_role"
    title = "Cluster role"
    purpose = "Let the cluster own the Access Manager service under one name and address."
    guidance = (
        "The role is a Generic Service for lithnetams with its own name and IP address. Access "
        "Manager 2 and later keep their settings in SQL Server, so the role needs no shared disk "
        "and no registry replication.",
        "Once clustered, the service starts only where the cluster places it; its start type "
        "becomes Manual on every node.",
    )
    form_class = ClusterRoleForm


STEP = ClusterRole()
