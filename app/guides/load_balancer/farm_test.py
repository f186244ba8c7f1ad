"""Step 7: the farm test: every node's health-check pages answer 200 over HTTPS with the farm's
certificate, and, when the operator gives the balancer's address, requests through it reach each
node in turn.

The wizard cannot drive a balancer, and with session persistence (which Lithnet requires) one
client's requests all land on one node; so the operator takes nodes out of service one at a time.
Each attempt is one round, carried by the fix the previous attempt offered
(`lb_round:<node or *>:<nodes already reached>`): "*" is every node in service; a node name means
only that node is in service and the others are drained. The test is done after a round with
only that node in service has passed for every node, and a last round with every node back.

Phases: "health" (lb_health_probe on every node at its own name) -> "balancer" (lb_balancer_probe
from a node that is not the one under test, so no request has to hairpin back to its sender) ->
the verdict.
"""

from __future__ import annotations

from flask_wtf import FlaskForm
from wtforms import BooleanField, IntegerField
from wtforms.validators import NumberRange

from app import validators
from app.guides.load_balancer.farm import Farm, check
from app.guides.load_balancer.first_node import health_checks, health_phase
from app.guides.shared.flow import failure_checks, first_node, needs_attention, outputs
from app.steps import Action, Check, Finish, Phase, RunView, Step
from app.wizard.fields import Rule, TextField

ROUND = "lb_round"
ALL = "*"


class FarmTestForm(FlaskForm):
    balancer_address = TextField(
        "Load balancer address",
        [Rule(validators.hostname, optional=True)],
        description="Usually the external host name. Leave empty to test only the nodes.",
    )
    requests_per_round = IntegerField(
        "Requests per round",
        [NumberRange(2, 50)],
        default=4,
        description="Each on a new connection.",
    )
    validate_certificate = BooleanField(
        "Validate the certificate the balancer passes through", default=True
    )


class FarmTest(Step):
    """Health pages on every node; then rounds through the balancer, one node in service at a time."""

    key = "farm_test"
    title = "Farm test"
    purpose = "Show that every node is healthy and that the balancer reaches each of them."
    guidance = (
        "Each node first asks its own health-check page over HTTPS (and the agent API's, when "
        "agent access is on). A balancer should probe the same pages: an answer other than 200 "
        "means the node is out.",
        "Then the wizard sends requests to the balancer's address. Because a balancer keeps each "
        "client on one node, the wizard asks you to leave one node in service at a time (drain "
        "the others at the balancer) and run the test again for each: a round passes when every "
        "request answers 200 with the farm's certificate. A last round with every node back "
        "completes the test.",
    )
    form_class = FarmTestForm

    def preview(self, view: RunView) -> list[Phase]:
        phases = [health_phase(view, view.node_names)]
        if view.inputs.get("balancer_address"):
            phases.append(_balancer(view, ALL))
        return phases

    def advance(self, view: RunView) -> Phase | Finish:
        if view.phase("health") is None:
            return health_phase(view, view.node_names)
        farm = Farm.of(view)
        found = health_checks(farm, view.phase("health"))
        address = str(view.inputs.get("balancer_address") or "")
        if any(c.status == "fail" for c in found):
            return needs_attention("Some nodes do not answer their health check.", found)
        if not address:
            found.append(
                check(
                    "balancer",
                    None,
                    "Through the load balancer",
                    "info",
                    "Not tested: no balancer address was given.",
                    "Enter the balancer's address on this step to test it.",
                )
            )
            return Finish("done", "Every node answers its health check.", tuple(found))
        in_service, reached = current_round(view)
        if view.phase("balancer") is None:
            return _balancer(view, in_service)
        return _verdict(view, farm, found, in_service, reached)


def current_round(view: RunView) -> tuple[str, list[str]]:
    """The round the accepted fix names, rebuilt from this deployment's node names only."""
    text = view.options.fix
    known = {n.upper(): n for n in view.node_names}
    if not isinstance(text, str) or not text.startswith(ROUND + ":"):
        return ALL, []
    _, _, rest = text.partition(":")
    node, _, passed = rest.partition(":")
    in_service = ALL if node == ALL else known.get(node.upper())
    if in_service is None:
        return ALL, []
    reached = [known[p.upper()] for p in passed.split(",") if p.upper() in known]
    return in_service, list(dict.fromkeys(reached))


def round_fix(in_service: str, reached: list[str]) -> dict:
    """The fix that starts the next round."""
    label = (
        "Every node is back in service at the balancer: run the last round"
        if in_service == ALL
        else f"At the balancer only {in_service} is in service (the others drained): test it"
    )
    # "next": the pause panel offers it as the way on, chosen by default (not as a repair).
    return {"id": f"{ROUND}:{in_service}:{','.join(reached)}", "label": label, "next": True}


def _client(view: RunView, in_service: str) -> str:
    """Send from a node other than the one under test (no hairpin through the balancer)."""
    return next((n for n in view.node_names if n != in_service), first_node(view))


def _balancer(view: RunView, in_service: str) -> Phase:
    farm = Farm.of(view)
    client = _client(view, in_service)
    params = {
        "Address": str(view.inputs.get("balancer_address") or ""),
        "Port": farm.port,
        "Count": int(view.inputs.get("requests_per_round") or 4),
        "ValidateCertificate": bool(view.inputs.get("validate_certificate", True)),
    }
    where = "every node in service" if in_service == ALL else f"only {in_service} in service"
    return Phase(
        "balancer",
        f"Requests through the load balancer ({where})",
        (Action(client, "lb_balancer_probe", params, label=f"Through the balancer from {client}"),),
    )


def _verdict(
    view: RunView, farm: Farm, found: list[Check], in_service: str, reached: list[str]
) -> Finish:
    results = view.phase("balancer") or {}
    found += failure_checks(results, "balancer_probe", "Requests through the balancer")
    data = next(iter(outputs(results).values()), None)
    artifacts: dict = {"round": in_service, "reached_before": list(reached)}
    if data is None:
        return needs_attention(
            "The requests through the balancer could not be sent.", found, artifacts
        )
    answers = data.get("requests") or []
    codes = [a.get("status_code") for a in answers]
    prints = {str(a.get("thumbprint") or "").upper() for a in answers if a.get("thumbprint")}
    artifacts["status_codes"] = codes
    good = bool(answers) and all(c == 200 for c in codes)
    foreign = sorted(p for p in prints if farm.thumbprint and p != farm.thumbprint)
    where = "every node in service" if in_service == ALL else f"only {in_service} in service"
    evidence = (
        f"{data.get('uri')} with {where}: " + ", ".join(str(c or "no answer") for c in codes) + "."
    )
    errors = sorted({str(a.get("error")) for a in answers if a.get("error")})
    if errors:
        evidence += " " + "; ".join(errors)
    title = "Through the load balancer" + ("" if in_service == ALL else f" to {in_service}")
    key = "balancer" if in_service == ALL else f"balancer:{in_service}"
    if not good or foreign:
        advice = (
            f"A node answered with certificate {', '.join(foreign)}, not the farm's "
            f"{farm.thumbprint}: the balancer must pass TLS through (no offloading) to nodes that "
            "all serve the same certificate."
            if good
            else (
                f"With only {in_service} in service, the balancer could not reach it: check its "
                f"pool member for {in_service}, that its health probe asks https://<node>/"
                "health-check, and that firewalls allow the balancer to the node's HTTPS port."
                if in_service != ALL
                else "Check that the name resolves to the balancer, that it listens on the HTTPS "
                "port, passes TLS through, and has healthy nodes in its pool."
            )
        )
        found.append(
            Check(
                key,
                title,
                "fail",
                evidence,
                advice,
                in_service if in_service != ALL else None,
                round_fix(in_service, reached),
            )
        )
        return needs_attention("The balancer did not answer as expected.", found, artifacts)
    if in_service != ALL:
        reached = list(dict.fromkeys([*reached, in_service]))
    found.append(Check(key, title, "pass", evidence, "", in_service if in_service != ALL else None))
    artifacts["reached"] = list(reached)
    remaining = [n for n in view.node_names if n not in reached]
    earlier = [n for n in reached if n != in_service]
    if earlier:
        found.append(
            check(
                "balancer_rounds",
                None,
                "Nodes reached in earlier rounds",
                "info",
                ", ".join(earlier) + " (recorded by the attempts before this one).",
            )
        )
    if remaining:
        nxt = remaining[0]
        found.append(
            Check(
                f"round:{nxt}",
                f"Next: leave only {nxt} in service",
                "info",
                f"Reached through the balancer so far: {', '.join(reached) or 'none'}.",
                f"At the balancer, drain every node except {nxt}; wait until its "
                "health probe shows the change; then run this step again with the "
                "offered fix.",
                nxt,
                round_fix(nxt, reached),
            )
        )
        return Finish(
            "passed",
            f"Round passed ({where}). Next: only {nxt} in service.",
            tuple(found),
            (),
            artifacts,
        )
    if in_service != ALL:
        found.append(
            Check(
                "round:all",
                "Last: every node back in service",
                "info",
                f"Every node was reached: {', '.join(reached)}.",
                "Put every node back in service at the balancer, then run this step "
                "again with the offered fix.",
                None,
                round_fix(ALL, reached),
            )
        )
        return Finish(
            "passed",
            "Round passed: every node was reached. Put them all back in service for the last round.",
            tuple(found),
            (),
            artifacts,
        )
    return Finish(
        "done",
        f"Every node is healthy and the balancer reached each of them ({', '.join(reached)}); "
        "with all of them back in service it answers.",
        tuple(found),
        (),
        artifacts,
    )


STEP = FarmTest()
