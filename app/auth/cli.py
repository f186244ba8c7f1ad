"""`flask users ...`: manage accounts from the command line."""

import os
import secrets
from pathlib import Path

import click
from flask.cli import AppGroup
from sqlalchemy import func, select

from app.auth.roles import ROLES
from app.extensions import db
from app.models import User

users_cli = AppGroup("users", help="Manage user accounts.")


def create_user(username: str, password: str, role: str) -> User:
    """Add a user; raises ValueError if the name is taken or the role unknown."""
    if role not in ROLES:
        raise ValueError(f"Unknown role {role!r}; choose one of {', '.join(ROLES)}.")
    if db.session.scalar(select(User).where(User.username == username)):
        raise ValueError(f"User {username!r} already exists.")
    user = User(username=username, role=role)
    user.set_password(password)
    db.session.add(user)
    db.session.commit()
    return user


@users_cli.command("create")
@click.argument("username")
@click.option("--role", type=click.Choice(ROLES), default="operator", show_default=True)
@click.password_option(help="Prompted for when omitted.")
def create_command(username: str, role: str, password: str) -> None:
    """Create a local account."""
    try:
        create_user(username, password, role)
    except ValueError as error:
        raise click.ClickException(str(error)) from None
    click.echo(f"Created {role} {username}.")


@users_cli.command("ensure-admin")
@click.option("--username", default="admin", show_default=True)
@click.option(
    "--password-file",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Take the password from this file if it exists, else write the generated one there "
    "(mode 0600) instead of printing it. Default: FIRST_ADMIN_PASSWORD_FILE.",
)
def ensure_admin_command(username: str, password_file: Path | None = None) -> None:
    """Create the first admin with a generated password if there are no users yet."""
    if db.session.scalar(select(func.count()).select_from(User)):
        click.echo("Users exist already; no account created.")
        return
    password_file = password_file or _env_path("FIRST_ADMIN_PASSWORD_FILE")
    if password_file is None:
        password = secrets.token_urlsafe(12)
        create_user(username, password, "admin")
        click.echo(f"First admin account created: {username} / {password}")
        click.echo("This password is shown once. Change it after signing in.")
        return
    # Containers: the password never reaches the logs; it is read from, or left in, a file.
    if password_file.exists():
        password = password_file.read_text().strip()
        if not password:
            raise click.ClickException(f"{password_file} is empty; no account created.")
        create_user(username, password, "admin")
        click.echo(f"First admin account created: {username}, password from {password_file}.")
        return
    password = secrets.token_urlsafe(12)
    descriptor = os.open(password_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(password + "\n")
    create_user(username, password, "admin")
    click.echo(f"First admin account created: {username}. Its password is in {password_file}:")
    click.echo("read it once, change it after signing in, then delete the file.")


def _env_path(name: str) -> Path | None:
    value = os.environ.get(name, "").strip()
    return Path(value) if value else None


@users_cli.command("list")
def list_command() -> None:
    """List accounts and their roles."""
    for user in db.session.scalars(select(User).order_by(User.username)):
        state = "active" if user.active else "disabled"
        click.echo(f"{user.username:20} {user.role:10} {state}")
