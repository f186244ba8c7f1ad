"""Remote execution over WinRM/PSRP: vetted scripts, the pypsrp runner, failure categories. No Flask, no Celery."""
