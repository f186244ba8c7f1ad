"""The worker side of execution: claim an action, run its script with a heartbeat and a live event
pump around it, record how it ended (execute), and sweep actions whose worker died (reaper).

It moves records only through the machine's table (app.execution.machine.transitions) and hands
every decision to the machine; the machine never imports this package.
`celery -A app.execution.worker.main worker` starts a worker process.
"""
