"""`flask setup`: prepare the instance folder, secrets, database and first admin."""

import base64
import os
import secrets
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext
from flask_migrate import upgrade

from app.auth.cli import ensure_admin_command

SECRET_NAMES = ("secret_key", "credential_key")


def _generate(name: str) -> str:
    if name == "credential_key":
        return base64.urlsafe_b64encode(os.urandom(32)).decode()
    return secrets.token_urlsafe(48)


def ensure_instance_secrets(instance_dir: Path) -> list[str]:
    """Create missing secret files (mode 0600); returns the names created."""
    folder = instance_dir / "secrets"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    created = []
    for name in SECRET_NAMES:
        path = folder / name
        given = os.environ.get(name.upper()) or os.environ.get(f"{name.upper()}_FILE")
        if given or path.exists():
            continue
        path.touch(mode=0o600)
        path.write_text(_generate(name))
        created.append(name)
    return created


@click.command("setup")
@with_appcontext
@click.pass_context
def setup_command(ctx: click.Context) -> None:
    """Instance folder, secrets, migrations and the first admin, each only if missing."""
    instance = Path(current_app.config["INSTANCE_DIR"])
    for name in ensure_instance_secrets(instance):
        click.echo(f"Generated {name} in {instance / 'secrets'}")
    upgrade(directory=str(Path(current_app.root_path).parent / "migrations"))
    ctx.invoke(ensure_admin_command)
