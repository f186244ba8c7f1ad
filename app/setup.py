"""The small `register_*` helpers create_app calls."""

from pathlib import Path

from flask import Flask, render_template

from app.auth.cli import users_cli
from app.auth.views import bp as auth_bp
from app.commands import setup_command
from app.deployments.views import bp as deployments_bp
from app.events.views import bp as events_bp
from app.execution.celery_app import celery_init_app
from app.extensions import csrf, db, login_manager, migrate
from app.lab.cli import lab_cli
from app.wizard.views import bp as wizard_bp


def register_extensions(app: Flask) -> None:
    """Bind the unbound extensions from app.extensions."""
    db.init_app(app)
    migrate.init_app(app, db, directory=str(Path(app.root_path).parent / "migrations"))
    login_manager.init_app(app)
    csrf.init_app(app)
    celery_init_app(app)


def register_blueprints(app: Flask) -> None:
    """Every feature blueprint; each owns its views and forms."""
    for blueprint in (auth_bp, deployments_bp, wizard_bp, events_bp):
        app.register_blueprint(blueprint)


def register_commands(app: Flask) -> None:
    """CLI groups: `flask setup`, `flask users ...`, `flask lab ...`."""
    app.cli.add_command(setup_command)
    app.cli.add_command(users_cli)
    app.cli.add_command(lab_cli)


def register_errorhandlers(app: Flask) -> None:
    """Friendly pages for the errors a user can meet."""

    def render_error(error):
        code = getattr(error, "code", 500)
        return render_template("error.html", code=code, error=error), code

    for code in (400, 403, 404, 405, 413, 500):
        app.register_error_handler(code, render_error)


def register_all(app: Flask) -> None:
    """Everything create_app wires, in order."""
    register_extensions(app)
    register_blueprints(app)
    register_commands(app)
    register_errorhandlers(app)
