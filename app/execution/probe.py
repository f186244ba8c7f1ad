"""Test connection: the connection probe on one node, with the credentials the operator typed.

The web request puts the credentials in the deployment's vault (as a step run does: encrypted,
for the vault's time to live, never in the task's arguments), records `connection.test_requested`
and sends the task the deployment and node ids only. The worker signs in to the node exactly as
a step would (same Connection, Kerberos realm, CA bundle), runs the read-only
`connection_probe` script and records `connection.tested`: who signed in, how, and what the node
said, or the failure with what to do. Both events are the record; nothing else is stored."""

from __future__ import annotations

import ipaddress
import time

from sqlalchemy import select

from app.events.publish import publish
from app.execution import vault
from app.execution.dispatch import default_enqueue
from app.execution.worker.redaction import redact
from app.execution.worker.sessions import connection_for
from app.extensions import db
from app.models import Deployment, Event, Node
from app.remote import errors
from app.remote.runner import run_script

REQUESTED, TESTED = "connection.test_requested", "connection.tested"
TIMEOUT = 30  # seconds for the whole probe: sign-in, pool, script


def request(
    deployment: Deployment, node: Node, username: str, password: str, actor_id: int
) -> None:
    """Store the credentials, record the request, and send the probe to a worker."""
    vault.store_credentials(deployment.id, username, password, owner_id=actor_id, commit=False)
    publish(
        deployment.id,
        REQUESTED,
        {"node": node.name, "auth": node.auth, "transport": node.transport, "user": username},
        node=node.name,
        actor_id=actor_id,
    )
    default_enqueue().probe(deployment.id, node.id)


def run(deployment_id: int, node_id: int) -> str:
    """The worker side: probe the node and record the outcome (never raises for a remote failure)."""
    node = db.session.get(Node, node_id)
    if node is None or node.deployment_id != deployment_id:
        return "gone"
    base = {"node": node.name, "auth": node.auth, "transport": node.transport}
    started = time.monotonic()
    password = None
    try:
        username, secrets = vault.load_secrets(deployment_id)
        password = secrets.get(vault.WINRM_PASSWORD)
        connection = connection_for(node, username, password, TIMEOUT)
        data = run_script(connection, "connection_probe", {}, timeout=TIMEOUT).data or {}
        outcome = base | {
            "ok": True,
            "user": data.get("user"),
            "computer_name": data.get("computer_name"),
            "domain": data.get("domain"),
            "is_admin": data.get("is_admin"),
            "ps_version": data.get("ps_version"),
            "os_caption": data.get("os_caption"),
            "addresses": addresses(data),
            "certificate": _certificate(node),
        }
    except vault.VaultEmpty:
        outcome = base | {
            "ok": False,
            "category": errors.AUTH_FAILED,
            "message": "The credentials are no longer held (they expired).",
            "remediation": "Type the user name and password again, then test.",
        }
    except errors.RemoteError as failure:
        outcome = base | {
            "ok": False,
            "category": failure.category,
            "message": failure.message,
            "remediation": failure.remediation,
            "detail": failure.detail or None,
        }
    outcome["seconds"] = round(time.monotonic() - started, 2)
    publish(deployment_id, TESTED, redact(outcome, [password] if password else []), node=node.name)
    return "ok" if outcome["ok"] else outcome["category"]


def addresses(data: dict) -> list[dict]:
    """The node's own addresses from the probe's output: [{address, prefix_length}], checked
    (anything that is not an IP address with a sensible prefix is left out)."""
    found = []
    for item in data.get("addresses") or []:
        if not isinstance(item, dict):
            continue
        try:
            address = ipaddress.ip_address(str(item.get("address", "")).split("%", 1)[0])
            prefix = item.get("prefix_length")
            prefix = int(prefix) if prefix is not None else None
        except (TypeError, ValueError):
            continue
        if prefix is not None and not 0 < prefix <= address.max_prefixlen:
            prefix = None
        found.append({"address": str(address), "prefix_length": prefix})
    return found[:32]


def _certificate(node: Node) -> str | None:
    if node.transport != "https":
        return None
    if not node.cert_validation:
        return "not validated"
    return "validated against the deployment's CA" if node.deployment.ca_bundle else "validated"


def latest(deployment_id: int) -> dict[str, dict]:
    """Per node name, the newest test event's payload with `pending` (requested, no answer yet)
    and `at` (when)."""
    rows = db.session.scalars(
        select(Event)
        .where(Event.deployment_id == deployment_id, Event.kind.in_((REQUESTED, TESTED)))
        .order_by(Event.seq.desc())
        .limit(200)
    ).all()
    found: dict[str, dict] = {}
    for event in rows:
        if event.node_name and event.node_name not in found:
            found[event.node_name] = dict(event.payload) | {
                "pending": event.kind == REQUESTED,
                "at": event.created_at,
            }
    return found
