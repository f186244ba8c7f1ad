"""The small `register_*` helpers create_app calls."""

import gc
from pathlib import Path

from flask import Flask, render_template
from sqlalchemy import event
from sqlalchemy.orm import configure_mappers

from app.admin.views import bp as admin_bp
from app.api import register_api
from app.api.errors import is_api_request, json_error
from app.audit.cli import audit_cli
from app.audit.hooks import register_audit
from app.auth.cli import users_cli
from app.auth.views import bp as auth_bp
from app.commands import setup_command
from app.deployments.views import bp as deployments_bp
from app.events.views import bp as events_bp
from app.execution.celery_app import celery_init_app
from app.execution.machine import modes
from app.execution.worker import sessions
from app.extensions import csrf, db, login_manager, migrate
from app.formatting import register_filters
from app.handover import drift, notify
from app.handover.views import bp as handover_bp
from app.history.views import bp as history_bp
from app.lab.cli import lab_cli
from app.models.user import OWASP_FLOOR, password_hasher
from app.pool import install_idle_ping
from app.security import register_security
from app.wizard.views import bp as wizard_bp


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    """WAL and a busy timeout let the web app and the worker share one SQLite file."""
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=15000")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def register_extensions(app: Flask) -> None:
    """Bind the unbound extensions from app.extensions."""
    db.init_app(app)
    with app.app_context():
        install_idle_ping(db.engine, app.config["DB_PING_IDLE_SECONDS"])
        if app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
            event.listen(db.engine, "connect", _sqlite_pragmas)
    migrate.init_app(app, db, directory=str(Path(app.root_path).parent / "migrations"))
    login_manager.init_app(app)
    csrf.init_app(app)
    celery_init_app(app)


def register_blueprints(app: Flask) -> None:
    """Every feature blueprint; each owns its views and forms."""
    blueprints = (auth_bp, deployments_bp, wizard_bp, events_bp, handover_bp, history_bp, admin_bp)
    for blueprint in blueprints:
        app.register_blueprint(blueprint)
    register_audit(app)
    register_api(app)


def register_commands(app: Flask) -> None:
    """CLI groups: `flask setup`, `flask users ...`, `flask lab ...`."""
    app.cli.add_command(setup_command)
    app.cli.add_command(users_cli)
    app.cli.add_command(lab_cli)
    app.cli.add_command(audit_cli)


def register_errorhandlers(app: Flask) -> None:
    """Friendly pages for the errors a user can meet."""

    def render_error(error):
        if is_api_request():
            return json_error(error)
        code = getattr(error, "code", 500)
        return render_template("error.html", code=code, error=error), code

    for code in (400, 403, 404, 405, 413, 500):
        app.register_error_handler(code, render_error)


def register_all(app: Flask) -> None:
    """Everything create_app wires, in order."""
    register_extensions(app)
    register_run_modes()
    register_blueprints(app)
    register_commands(app)
    register_errorhandlers(app)
    register_security(app)
    register_filters(app)
    check_password_hashing(app)
    if app.config.get("GC_FREEZE_AT_START") and not app.testing:
        freeze_startup_objects()


def check_password_hashing(app: Flask) -> None:
    """Refuse to start with Argon2 settings it cannot hash with; log settings below OWASP's floor."""
    hasher = password_hasher(app.config)  # ValueError names the setting
    if (
        hasher.memory_cost < OWASP_FLOOR["memory_kib"]
        or hasher.time_cost < OWASP_FLOOR["time_cost"]
    ):
        app.logger.warning(
            "PASSWORD_HASH_* (%s KiB, %s passes) is weaker than OWASP's smallest Argon2id "
            "setting (%s KiB, %s passes): stolen password hashes would be cheaper to crack.",
            hasher.memory_cost,
            hasher.time_cost,
            OWASP_FLOOR["memory_kib"],
            OWASP_FLOOR["time_cost"],
        )


def register_run_modes() -> None:
    """What the execution engine calls without importing it: the hand-over package's read-only
    re-verification mode and its pause notices (app.execution.machine.modes)."""
    modes.register(drift.VerifyMode())
    modes.on_paused(notify.on_paused)
    modes.on_ended(sessions.release_sessions)  # this process's pools that used wiped credentials


def freeze_startup_objects() -> None:
    """Put what imports and create_app built out of the cycle collector's reach (`gc.freeze`).

    A full collection otherwise walks every object Flask, SQLAlchemy, Celery and pypsrp made at
    import: 200 to 230 ms stop-the-world pauses, four or five per bench run in the web and the
    worker processes, each one stalling live events and runs. Objects made later (requests,
    actions) are collected as before; these were going to live as long as the process anyway.
    The mappers are configured first: SQLAlchemy would otherwise build that on the first query."""
    configure_mappers()
    gc.collect()
    gc.freeze()
