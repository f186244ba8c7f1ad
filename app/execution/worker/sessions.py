"""This worker process's WinRM sessions and its shutdown flag, and the runner Connection for a node."""

from __future__ import annotations

import threading

from flask import current_app, has_app_context

from app.models import Node
from app.remote import kerberos
from app.remote.runner import Connection
from app.remote.sessions import SessionCache

SESSIONS = SessionCache(idle_seconds=60.0)  # open pools of this worker process, by connection
STOPPING = threading.Event()  # set when the worker begins to shut down (celery_app.py)


def release_sessions(deployment_id: int) -> None:
    """The deployment's credentials are wiped: close this process's pools that used them."""
    SESSIONS.close_owner(deployment_id)


def connection_for(node: Node, username: str, password: str | None, timeout: float) -> Connection:
    """A runner Connection from a Node row and the vault's credentials."""
    deployment = node.deployment
    return Connection(
        host=node.host,
        port=node.port,
        transport=node.transport,
        auth=node.auth,
        cert_validation=node.cert_validation,
        ca_bundle=deployment.ca_bundle,
        username=username,
        password=password,
        read_timeout=max(30, int(min(timeout, 120))),
        realm=kerberos.realm_of(deployment.domain_fqdn),
        kdcs=kerberos.parse_kdcs(deployment.kerberos_kdcs),
        spn_host=kerberos.service_host(node.host, node.name, deployment.domain_fqdn),
        kdc_dns=current_app.config["KERBEROS_DNS"] if has_app_context() else True,
    )
