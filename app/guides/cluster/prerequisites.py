"""Step 1 of the failover cluster guide: every prerequisite proved before anything is changed,
the Failover Clustering feature included. The step is the one both guides share
(app/guides/shared/prerequisites.py), run here with every check it has."""

from app.guides.shared.prerequisites import Prerequisites

STEP = Prerequisites()
