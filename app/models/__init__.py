"""Database models, split by aggregate."""

from app.models.base import utcnow
from app.models.deployment import Deployment, DeploymentStep, Node
from app.models.event import Event
from app.models.execution import Credential, NodeAction, StepRun
from app.models.user import User

__all__ = [
    "Credential",
    "Deployment",
    "DeploymentStep",
    "Event",
    "Node",
    "NodeAction",
    "StepRun",
    "User",
    "utcnow",
]
