"""AMS Cluster Wizard: a guided, audited installation of Lithnet Access Manager in a failover cluster."""

from pathlib import Path

from flask import Flask

from app.setup import register_all
from config import Config

ROOT = Path(__file__).resolve().parent.parent


def create_app(config: type | None = None, overrides: dict | None = None) -> Flask:
    """Build the app: bind extensions, register blueprints, commands and error handlers. No I/O."""
    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
        instance_path=str(Config.INSTANCE_DIR),
    )
    app.config.from_object(config or Config)
    app.config.update(overrides or {})
    register_all(app)
    return app
