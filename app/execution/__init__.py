"""Step execution: Celery app and task glue, the plain service functions, the reaper and the credential vault."""
