"""Tell a person when a deployment pauses and needs them: a JSON webhook and/or an e-mail.

Both are optional (NOTIFY_WEBHOOK_URL, NOTIFY_SMTP_HOST...), best effort and bounded by
NOTIFY_TIMEOUT_SECONDS; a failure is logged and never fails the step. The message carries ids,
names, the step and the pause reason (event text, which never contains secrets), never inputs.
"""

from __future__ import annotations

import json
import logging
import smtplib
from email.message import EmailMessage

import requests
from flask import current_app

from app.extensions import db
from app.guides import get_guide
from app.models import Deployment

log = logging.getLogger(__name__)


def message(deployment: Deployment, step_key: str, reason: str) -> dict:
    """The JSON body of the notice."""
    try:
        title = get_guide(deployment.guide_key).step(step_key).title
    except KeyError:
        title = step_key
    base = (current_app.config.get("PUBLIC_URL") or "").rstrip("/")
    return {
        "event": "deployment.paused",
        "deployment": {
            "id": deployment.id,
            "name": deployment.name,
            "domain": deployment.domain_fqdn,
        },
        "step": {"key": step_key, "title": title},
        "reason": (reason or "")[:1000],
        "url": f"{base}/deployments/{deployment.id}/resume" if base else None,
    }


def send_webhook(url: str, body: dict, timeout: float) -> None:
    """POST the body as JSON; raises for a non-2xx answer."""
    response = requests.post(url, json=body, timeout=timeout)
    response.raise_for_status()


def send_mail(cfg, body: dict, timeout: float) -> None:
    """One plain-text e-mail to NOTIFY_SMTP_TO."""
    mail = EmailMessage()
    mail["Subject"] = f"[AMS wizard] {body['deployment']['name']} needs attention"
    mail["From"] = cfg["NOTIFY_SMTP_FROM"]
    mail["To"] = cfg["NOTIFY_SMTP_TO"]
    mail.set_content(
        f"Deployment {body['deployment']['name']} paused at {body['step']['title']}.\n\n"
        f"Reason: {body['reason']}\n\n{body['url'] or ''}\n\n{json.dumps(body, indent=2)}\n"
    )
    with smtplib.SMTP(cfg["NOTIFY_SMTP_HOST"], cfg["NOTIFY_SMTP_PORT"], timeout=timeout) as smtp:
        if cfg.get("NOTIFY_SMTP_STARTTLS"):
            smtp.starttls()
        if cfg.get("NOTIFY_SMTP_USER"):
            smtp.login(cfg["NOTIFY_SMTP_USER"], cfg.get("NOTIFY_SMTP_PASSWORD", ""))
        smtp.send_message(mail)


def on_paused(deployment_id: int, step_key: str, reason: str) -> list[str]:
    """Send the configured notices; returns the channels that succeeded."""
    cfg = current_app.config
    if not (cfg.get("NOTIFY_WEBHOOK_URL") or cfg.get("NOTIFY_SMTP_HOST")):
        return []
    deployment = db.session.get(Deployment, deployment_id)
    if deployment is None:
        return []
    body, timeout, sent = message(deployment, step_key, reason), cfg["NOTIFY_TIMEOUT_SECONDS"], []
    channels = (
        (
            "webhook",
            cfg.get("NOTIFY_WEBHOOK_URL"),
            lambda: send_webhook(cfg["NOTIFY_WEBHOOK_URL"], body, timeout),
        ),
        ("smtp", cfg.get("NOTIFY_SMTP_HOST"), lambda: send_mail(cfg, body, timeout)),
    )
    for name, configured, send in channels:
        if not configured:
            continue
        try:
            send()
            sent.append(name)
        except Exception:
            log.warning(
                "Pause notice by %s failed for deployment %s", name, deployment_id, exc_info=True
            )
    return sent
