"""The guides the engine can run, by key. A new guide is another entry here; the engine is unchanged."""

from app.guides.cluster import GUIDE as CLUSTER_GUIDE
from app.guides.load_balancer import GUIDE as LOAD_BALANCER_GUIDE
from app.steps import Guide

GUIDES: dict[str, Guide] = {
    CLUSTER_GUIDE.key: CLUSTER_GUIDE,
    LOAD_BALANCER_GUIDE.key: LOAD_BALANCER_GUIDE,
}
DEFAULT_GUIDE = CLUSTER_GUIDE.key


def get_guide(key: str) -> Guide:
    """The guide a deployment started with."""
    return GUIDES[key]
