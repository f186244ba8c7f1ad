"""Lithnet Access Manager (3.x, and 2.1) as a farm of standalone servers behind a load balancer,
as an ordered list of step modules."""

from app.guides.load_balancer import (
    farm_test,
    first_node,
    host_config,
    ip_detection,
    other_nodes,
    prerequisites,
    sql_database,
    summary,
)
from app.steps import Guide

GUIDE = Guide(
    key="ams-load-balancer",
    title="Access Manager behind a load balancer",
    version="2026.11",
    choice=(
        "Recommended for Access Manager 3.x (and possible from 2.1): every node serves, with the "
        "same service account, database and certificate, and a load balancer spreads the users "
        "over them."
    ),
    steps=(
        prerequisites.STEP,
        sql_database.STEP,
        first_node.STEP,
        other_nodes.STEP,
        host_config.STEP,
        ip_detection.STEP,
        farm_test.STEP,
        summary.STEP,
    ),
)
