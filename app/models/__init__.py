"""Database models, split by aggregate."""

from app.models.api_token import ApiToken
from app.models.audit import AuditRecord
from app.models.base import utcnow
from app.models.deployment import Deployment, DeploymentStep, Node
from app.models.event import Event
from app.models.execution import Credential, NodeAction, StepRun, output_lost_notice
from app.models.lease import DeploymentLease
from app.models.login import LoginThrottle
from app.models.service import ServiceBeat, TaskOutbox
from app.models.user import User

__all__ = [
    "ApiToken",
    "AuditRecord",
    "Credential",
    "Deployment",
    "DeploymentLease",
    "DeploymentStep",
    "Event",
    "LoginThrottle",
    "Node",
    "NodeAction",
    "ServiceBeat",
    "StepRun",
    "TaskOutbox",
    "User",
    "output_lost_notice",
    "utcnow",
]
