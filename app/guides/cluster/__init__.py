"""Lithnet Access Manager (v2/v3) in a Windows failover cluster, as an ordered list of step modules."""

from app.guides.cluster import (
    base_cluster,
    cluster_role,
    failover_test,
    install_ams,
    prerequisites,
    quorum,
    summary,
)
from app.steps import Guide

GUIDE = Guide(
    key="ams-failover-cluster",
    title="Access Manager in a failover cluster",
    version="2026.11",
    choice=(
        "Access Manager 2.x as a Generic Service role of a Windows failover cluster: one node "
        "serves at a time and the role moves when it fails. Lithnet no longer supports this "
        "layout from 3.0 on."
    ),
    steps=(
        prerequisites.STEP,
        base_cluster.STEP,
        quorum.STEP,
        install_ams.STEP,
        cluster_role.STEP,
        failover_test.STEP,
        summary.STEP,
    ),
)
