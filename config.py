"""Configuration: every setting comes from the environment, with embedded defaults for `make run`."""

import os
from pathlib import Path
from urllib.parse import quote, urlsplit, urlunsplit

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = Path(os.environ.get("AMSW_INSTANCE_DIR", BASE_DIR / "instance"))


def _bool(name: str, default: bool) -> bool:
    """Read a boolean environment variable (1/true/yes/on)."""
    value = os.environ.get(name)
    if value is None:
        return default
    return value.strip().lower() in {"1", "true", "yes", "on"}


def _secret(name: str, default: str = "") -> str:
    """NAME from the environment, or the contents of the file NAME_FILE names (a Docker or
    compose secret), without its trailing newline. Setting both is an error."""
    path = os.environ.get(f"{name}_FILE")
    if not path:
        return os.environ.get(name, default)
    if os.environ.get(name):
        raise RuntimeError(f"Set {name} or {name}_FILE, not both.")
    try:
        return Path(path).read_text().strip()
    except OSError as error:
        raise RuntimeError(f"{name}_FILE: cannot read {path}: {error.strerror}") from None


def _database_url(instance_dir: Path) -> str:
    """DATABASE_URL(_FILE), with DATABASE_PASSWORD(_FILE) put in when given."""
    url = _secret("DATABASE_URL") or f"sqlite:///{instance_dir / 'amsw.sqlite3'}"
    password = _secret("DATABASE_PASSWORD")
    if password:
        from sqlalchemy.engine import make_url

        url = make_url(url).set(password=password).render_as_string(hide_password=False)
    return url


def _redis_url() -> str | None:
    """REDIS_URL(_FILE), with REDIS_PASSWORD(_FILE) put in when given; None when unset."""
    url = _secret("REDIS_URL")
    password = _secret("REDIS_PASSWORD")
    if url and password:
        parts = urlsplit(url)
        user = quote(parts.username or "", safe="")
        host = parts.netloc.rpartition("@")[2]
        netloc = f"{user}:{quote(password, safe='')}@{host}"
        url = urlunsplit(parts._replace(netloc=netloc))
    return url or None


def _celery_settings(redis_url: str | None, instance_dir: Path) -> dict:
    """Redis when REDIS_URL is set, otherwise kombu's filesystem transport under instance/."""
    base = {
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_serializer": "json",
        "accept_content": ["json"],
        "broker_connection_retry_on_startup": True,
    }
    if redis_url:
        return base | {
            "broker_url": redis_url,
            "broker_transport_options": {"visibility_timeout": 3600},
        }
    queue_dir = instance_dir / "broker"
    return base | {
        "broker_url": "filesystem://",
        "broker_transport_options": {
            "data_folder_in": str(queue_dir / "queue"),
            "data_folder_out": str(queue_dir / "queue"),
            "processed_folder": str(queue_dir / "processed"),
            "control_folder": str(queue_dir / "control"),
            "store_processed": False,
        },
    }


def _instance_secret(name: str) -> str:
    """Environment (NAME or NAME_FILE) first, then the file `flask setup` generated under instance/."""
    value = _secret(name)
    path = INSTANCE_DIR / "secrets" / name.lower()
    if not value and path.exists():
        value = path.read_text().strip()
    return value


class Config:
    """Settings read once from the environment when the class is created."""

    INSTANCE_DIR = INSTANCE_DIR
    SECRET_KEY = _instance_secret("SECRET_KEY")
    # Secrets (these, REDIS_URL, LDAP_BIND_PASSWORD, NOTIFY_SMTP_PASSWORD) may come from files:
    # NAME_FILE=/run/secrets/... instead of NAME (see _secret).
    SQLALCHEMY_DATABASE_URI = _database_url(INSTANCE_DIR)
    # gc.freeze() once create_app is done (app/setup.py): no long collector pauses in web and worker.
    GC_FREEZE_AT_START = _bool("GC_FREEZE_AT_START", True)
    # Pooled connections idle this long are pinged before use (app/pool.py); 0 pings every time.
    DB_PING_IDLE_SECONDS = float(os.environ.get("DB_PING_IDLE_SECONDS", "10"))
    REDIS_URL = _redis_url()
    CELERY = _celery_settings(REDIS_URL, INSTANCE_DIR)
    # Fernet key for WinRM credentials held while work is pending (base64, 32 bytes).
    CREDENTIAL_KEY = _instance_secret("CREDENTIAL_KEY")
    CREDENTIAL_TTL_MINUTES = int(os.environ.get("CREDENTIAL_TTL_MINUTES", "240"))
    ACTION_TIMEOUT_SECONDS = int(os.environ.get("ACTION_TIMEOUT_SECONDS", "1800"))
    HEARTBEAT_SECONDS = int(os.environ.get("HEARTBEAT_SECONDS", "5"))
    REAPER_GRACE_SECONDS = int(os.environ.get("REAPER_GRACE_SECONDS", "30"))
    REAPER_INTERVAL_SECONDS = float(os.environ.get("REAPER_INTERVAL_SECONDS", "15"))
    # How long a worker rides out a database it cannot reach (a PostgreSQL restart): an action's
    # end is retried, and its unwritten output is retried after the script ended, for this long;
    # output still unwritten then is counted as lost on the action. An outage longer than
    # REAPER_GRACE_SECONDS may get the action marked interrupted all the same.
    DB_OUTAGE_SECONDS = float(os.environ.get("DB_OUTAGE_SECONDS", "30"))
    # Stream records an action keeps while the database is unreachable; beyond, they are counted.
    EVENT_BUFFER_RECORDS = int(os.environ.get("EVENT_BUFFER_RECORDS", "5000"))
    # How often each worker tries to send the tasks that waited for the broker (app/execution/outbox.py).
    OUTBOX_FLUSH_SECONDS = float(os.environ.get("OUTBOX_FLUSH_SECONDS", "1"))
    SSE_KEEPALIVE_SECONDS = int(os.environ.get("SSE_KEEPALIVE_SECONDS", "15"))
    # Without Redis, how often an event stream reads the database in case a wake-up was lost.
    SSE_POLL_SECONDS = float(os.environ.get("SSE_POLL_SECONDS", "0.1"))
    # Live streams one web process serves at most (503 beyond, the page retries); 0: no cap, except
    # under gunicorn's gthread, where app/gunicorn_config.py leaves threads for pages.
    SSE_MAX_STREAMS = int(os.environ.get("SSE_MAX_STREAMS", "0"))
    # The embedded broker's fallback poll (a put wakes consumers at once: app/wake.py).
    BROKER_POLL_SECONDS = float(os.environ.get("BROKER_POLL_SECONDS", "0.05"))
    # Keep the embedded broker's consumed messages in instance/broker/processed (debugging).
    BROKER_KEEP_PROCESSED = _bool("AMSW_BROKER_KEEP_PROCESSED", False)
    # The Celery queue this installation's web and workers use (several installations, one Redis).
    CELERY_QUEUE = os.environ.get("AMSW_CELERY_QUEUE", "")
    # A transient remote failure (connection reset, WinRM busy) is retried this many times, waiting
    # ACTION_RETRY_BACKOFF_SECONDS, then twice that, and so on.
    ACTION_RETRY_LIMIT = int(os.environ.get("ACTION_RETRY_LIMIT", "3"))
    ACTION_RETRY_BACKOFF_SECONDS = float(os.environ.get("ACTION_RETRY_BACKOFF_SECONDS", "2"))
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = _bool("SESSION_COOKIE_SECURE", False)
    # Kerberos: find a domain's KDCs through DNS SRV records when the deployment lists none. Off
    # where this server's DNS does not serve the domain (then only the deployment's list counts).
    KERBEROS_DNS = _bool("AMSW_KERBEROS_DNS", True)
    WTF_CSRF_TIME_LIMIT = None
    MAX_CONTENT_LENGTH = 2 * 1024 * 1024
    # Hand-over, history, notices and directory sign-in (issue 6).
    LEASE_SECONDS = int(os.environ.get("LEASE_SECONDS", "120"))
    NEEDS_ATTENTION_IDLE_MINUTES = int(os.environ.get("NEEDS_ATTENTION_IDLE_MINUTES", "120"))
    PUBLIC_URL = os.environ.get("PUBLIC_URL", "")
    NOTIFY_WEBHOOK_URL = os.environ.get("NOTIFY_WEBHOOK_URL", "")
    NOTIFY_SMTP_HOST = os.environ.get("NOTIFY_SMTP_HOST", "")
    NOTIFY_SMTP_PORT = int(os.environ.get("NOTIFY_SMTP_PORT", "25"))
    NOTIFY_SMTP_STARTTLS = _bool("NOTIFY_SMTP_STARTTLS", False)
    NOTIFY_SMTP_USER = os.environ.get("NOTIFY_SMTP_USER", "")
    NOTIFY_SMTP_PASSWORD = _secret("NOTIFY_SMTP_PASSWORD")
    NOTIFY_SMTP_FROM = os.environ.get("NOTIFY_SMTP_FROM", "ams-wizard@localhost")
    NOTIFY_SMTP_TO = os.environ.get("NOTIFY_SMTP_TO", "")
    NOTIFY_TIMEOUT_SECONDS = float(os.environ.get("NOTIFY_TIMEOUT_SECONDS", "5"))
    LDAP_URL = os.environ.get("LDAP_URL", "")
    LDAP_BIND_DN = os.environ.get("LDAP_BIND_DN", "")
    LDAP_BIND_PASSWORD = _secret("LDAP_BIND_PASSWORD")
    LDAP_USER_BASE = os.environ.get("LDAP_USER_BASE", "")
    LDAP_USER_FILTER = os.environ.get("LDAP_USER_FILTER", "(uid={username})")
    LDAP_GROUP_ROLE_MAP = os.environ.get("LDAP_GROUP_ROLE_MAP", "")
    LDAP_TIMEOUT_SECONDS = int(os.environ.get("LDAP_TIMEOUT_SECONDS", "5"))
    # Sign-in throttling (app/auth/throttle.py), kept in the database for every web process: once
    # an account name or a client address has this many failures within the window, each further
    # attempt waits a delay that doubles from the base up to the cap.
    LOGIN_ACCOUNT_FAILURES = int(os.environ.get("LOGIN_ACCOUNT_FAILURES", "5"))
    LOGIN_ADDRESS_FAILURES = int(os.environ.get("LOGIN_ADDRESS_FAILURES", "20"))
    LOGIN_WINDOW_SECONDS = int(os.environ.get("LOGIN_WINDOW_SECONDS", "900"))
    LOGIN_BASE_DELAY_SECONDS = int(os.environ.get("LOGIN_BASE_DELAY_SECONDS", "2"))
    LOGIN_MAX_DELAY_SECONDS = int(os.environ.get("LOGIN_MAX_DELAY_SECONDS", "300"))
    # Argon2id for local passwords: RFC 9106's second recommended setting (64 MiB, 3 passes, 4
    # lanes: about 0.1 s of a core per sign-in). A hash keeps the setting it was made with; a new
    # one applies as passwords are next set. Below OWASP's smallest (19 MiB, 2 passes) is logged.
    PASSWORD_HASH_MEMORY_KIB = int(os.environ.get("PASSWORD_HASH_MEMORY_KIB", "65536"))
    PASSWORD_HASH_TIME_COST = int(os.environ.get("PASSWORD_HASH_TIME_COST", "3"))
    PASSWORD_HASH_PARALLELISM = int(os.environ.get("PASSWORD_HASH_PARALLELISM", "4"))
    # Reverse proxies in front of the web app whose X-Forwarded-For/-Proto are believed (0: none).
    TRUSTED_PROXIES = int(os.environ.get("TRUSTED_PROXIES", "0"))
    LAB_ENABLED = _bool("LAB_ENABLED", True)
    LAB_BASE_PORT = int(os.environ.get("LAB_BASE_PORT", "55985"))


class TestConfig(Config):
    """Overrides for the test suite; the database and broker still follow the environment."""

    TESTING = True
    SECRET_KEY = "test-secret-key"  # noqa: S105 - tests only
    CREDENTIAL_KEY = "NpHwqf1PzpqqZfw2GWUUYFUWeWjxHamlfum7KxU6UnU="
    # The suite signs in thousands of times: the smallest Argon2id setting (8 KiB, 1 pass, 1 lane)
    # instead of about 0.2 s of CPU per hash. Tests of hashing itself use Config's setting.
    PASSWORD_HASH_MEMORY_KIB = 8
    PASSWORD_HASH_TIME_COST = 1
    PASSWORD_HASH_PARALLELISM = 1
