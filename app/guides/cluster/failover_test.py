"""Step 6: move the role to every node and prove the service answers there."""

from flask_wtf import FlaskForm
from wtforms import IntegerField
from wtforms.validators import NumberRange

from app.wizard.engine import Step


class FailoverTestForm(FlaskForm):
    """How long to wait for the role on each node."""

    move_timeout = IntegerField(
        "Seconds to wait for the role on each node", [NumberRange(10, 900)], default=120
    )


class FailoverTest(Step):
    """Move-ClusterGroup to each node in turn and check owner, state, service and health-check."""

    key = "failover_test"
    title = "Failover test"
    purpose = "Show that Access Manager starts and answers on every node, not just the first."
    guidance = (
        "The role is moved to each node in turn. On each one the wizard waits for the role to be "
        "online, checks that the node owns it and runs the service, and requests the health-check "
        "page through the access point name.",
    )
    form_class = FailoverTestForm


STEP = FailoverTest()
