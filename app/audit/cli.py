"""`flask audit verify`: prove the audit trail was not edited."""

import click
from flask.cli import AppGroup

from app.audit.service import verify

audit_cli = AppGroup("audit", help="Inspect the audit trail.")


@audit_cli.command("verify")
def verify_command() -> None:
    """Recompute the hash chain; exit 1 and name each bad row when it was tampered with."""
    count, problems = verify()
    for problem in problems:
        click.echo(f"TAMPERED row id={problem.id} seq={problem.seq}: {problem.reason}", err=True)
    if problems:
        raise SystemExit(1)
    click.echo(f"Audit trail intact: {count} records verified.")
