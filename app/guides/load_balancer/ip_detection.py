"""Step 6: how Access Manager finds the real client address behind a layer-7 balancer.

No remote work: there is no cmdlet for these settings, and from 2.1 they are kept in the shared
database, which no node-side read can see. The step checks the values the operator plans to enter
(one farm-wide setting, entered once in the configuration tool's IP address detection page) and
records the operator's confirmation. A transport-layer (layer-4) balancer keeps the client's
address, so nothing needs to be set.
"""

from __future__ import annotations

import ipaddress

from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField, RadioField
from wtforms.validators import NumberRange

from app.guides.load_balancer.farm import check
from app.steps import Check, Finish, RunView, Step
from app.wizard.fields import TextField

MAX_ENTRIES = 64


def address_list(text: str, networks: bool) -> tuple[list[str], list[str]]:
    """Addresses (or networks) from a comma/space separated text: (valid, refused)."""
    good, bad = [], []
    for item in (t for t in str(text or "").replace(",", " ").split() if t):
        try:
            value = (
                ipaddress.ip_network(item, strict=False) if networks else ipaddress.ip_address(item)
            )
        except ValueError:
            bad.append(item)
            continue
        good.append(str(value))
    return good[:MAX_ENTRIES], bad


class IpDetectionForm(FlaskForm):
    balancer_layer = RadioField(
        "Kind of load balancer",
        choices=[
            (
                "transport",
                "Transport layer (layer 4, e.g. Windows NLB): clients' addresses reach the nodes",
            ),
            ("application", "Application layer (layer 7): the balancer opens its own connections"),
        ],
        default="application",
    )
    forward_limit = IntegerField(
        "Trusted devices adding to X-Forwarded-For",
        [NumberRange(1, 10)],
        default=1,
        description="1 for one balancer; 2 for a balancer behind a web application firewall, ...",
    )
    known_proxies = TextField(
        "Known proxy addresses",
        description="The balancer's own addresses as the nodes see them, separated by commas.",
    )
    known_networks = TextField(
        "Known proxy networks",
        description="Networks the balancers and proxies live in, e.g. 10.20.1.0/24.",
    )
    settings_confirmed = BooleanField(
        "I entered these settings on the configuration tool's IP address detection page",
        default=False,
    )


class IpDetection(Step):
    """Plan and confirm the X-Forwarded-For settings (a layer-7 balancer only)."""

    key = "ip_detection"
    title = "Client IP address detection"
    purpose = "Make audit records and rate limits see the user's address, not the balancer's."
    guidance = (
        "A layer-7 balancer connects to the nodes itself, so without this setting every request "
        "seems to come from the balancer: audit entries and rate limits then name the wrong "
        "address. Access Manager can read the client's address from the X-Forwarded-For header "
        "instead, but only from devices you trust, because a client can write that header too.",
        "The setting is shared by the farm: enter it once, on any node, in the configuration "
        "tool. Afterwards make one access request through the balancer and check that its audit "
        "entry shows your own address.",
    )
    form_class = IpDetectionForm

    def advance(self, view: RunView) -> Finish:
        layer = view.inputs.get("balancer_layer") or "application"
        if layer == "transport":
            return Finish(
                "done",
                "A transport-layer balancer keeps the client's address: IP address detection stays off.",
                (
                    check(
                        "ip_detection",
                        None,
                        "IP address detection",
                        "info",
                        "Layer 4: nothing to set.",
                        "Leave 'Resolve client IP address from X-Forwarded-For headers' off.",
                    ),
                ),
            )
        proxies, bad_proxies = address_list(view.inputs.get("known_proxies") or "", networks=False)
        networks, bad_networks = address_list(
            view.inputs.get("known_networks") or "", networks=True
        )
        limit = int(view.inputs.get("forward_limit") or 1)
        found: list[Check] = []
        if bad_proxies or bad_networks:
            found.append(
                _proxies_failed(
                    "Not addresses or networks: " + ", ".join(bad_proxies + bad_networks) + ".",
                    "Enter IP addresses (10.20.0.60) and networks (10.20.1.0/24) only.",
                )
            )
        if not proxies and not networks:
            found.append(
                _proxies_failed(
                    "No trusted proxy address or network was entered.",
                    "Without one, Access Manager trusts no X-Forwarded-For header and "
                    "keeps recording the balancer's address. Enter the balancer's own "
                    "address (as the nodes see it) or its network.",
                )
            )
        wide = [n for n in networks if ipaddress.ip_network(n).prefixlen < 8]
        if wide:
            found.append(
                check(
                    "trusted_networks",
                    None,
                    "Known proxy networks",
                    "warn",
                    f"Very wide: {', '.join(wide)}.",
                    "Any device in a trusted network can claim any client address; keep "
                    "it to the balancers' own network.",
                )
            )
        settings = {
            "resolve_from_x_forwarded_for": True,
            "maximum_entries": limit,
            "known_proxies": proxies,
            "known_networks": networks,
        }
        plan = (
            "On any one node, configuration tool, IP address detection: turn on 'Resolve client "
            f"IP address from X-Forwarded-For headers'; maximum entries {limit}; known proxies "
            f"{', '.join(proxies) or 'none'}; known networks {', '.join(networks) or 'none'}; save."
        )
        if any(c.status == "fail" for c in found):
            return _finish("needs_attention", "Correct the trusted proxies.", found, settings)
        if not view.inputs.get("settings_confirmed"):
            found.append(
                check(
                    "ip_detection",
                    None,
                    "Enter the IP address detection settings",
                    "fail",
                    "Not confirmed yet. The wizard cannot read or set them: there is no "
                    "cmdlet, and they are kept in the shared database.",
                    plan + " Then tick the confirmation on this step and run it again.",
                )
            )
            return _finish(
                "needs_attention",
                "Enter the settings in the configuration tool, then confirm.",
                found,
                settings,
            )
        found.append(
            check(
                "ip_detection",
                None,
                "IP address detection",
                "pass",
                "Confirmed by you: " + plan.split(": ", 1)[1],
                "Make one access request through the balancer and check that its audit "
                "entry shows your own address.",
            )
        )
        return _finish(
            "done",
            "X-Forwarded-For is resolved from the trusted proxies you entered.",
            found,
            settings,
        )


def _proxies_failed(evidence: str, fix: str) -> Check:
    return check("trusted_proxies", None, "Known proxies", "fail", evidence, fix)


def _finish(status: str, summary: str, found: list[Check], settings: dict) -> Finish:
    """The verdict, with the planned settings (the Summary step shows them)."""
    return Finish(status, summary, tuple(found), (), {"settings": settings})


STEP = IpDetection()
