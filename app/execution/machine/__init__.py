"""The execution state machine: the decisions about step runs, in one package.

transitions holds the table of statuses and moves; runs starts a run, phases decides and starts its
phases, finishing ends it, decisions applies the operator's choices on a paused step, modes lets other
packages register ways a run can go (the hand-over's drift check). Nothing here runs a script: the
worker side (app.execution.worker) claims actions, beats, pumps their events and ends them through
the same table. Dependencies run one way: worker -> machine.
"""
