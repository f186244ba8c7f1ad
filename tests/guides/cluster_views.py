"""Building RunViews and fabricated ActionResults for the cluster step tests (steps 2-6)."""

from app.steps import ActionResult, Finish, NodeInfo, Phase, RunView

NODES = ("AMS1", "AMS2")
DOMAIN = "corp.example.test"
THUMBPRINT = "A" * 40
ALL_INPUTS = {
    "prerequisites": {
        "ams_version": "2.1.1069.0",
        "gmsa": "CORP\\svc-ams$",
        "sql_connection_string": "Server=sql1.corp.example.test;Database=AccessManager;"
        "Integrated Security=true",
    },
    "base_cluster": {
        "cluster_name": "AMSCLU",
        "cluster_address": "10.20.0.50",
        "run_validation": True,
    },
    "quorum": {"witness_type": "file_share", "share_path": "\\\\FS1\\witness"},
    "install_ams": {
        "install_mode": "manual",
        "installer_name": "",
        "certificate_thumbprint": THUMBPRINT,
        "https_port": 443,
        "web_app_enabled": True,
        "api_enabled": True,
    },
    "cluster_role": {"access_point_name": "AMSWEB", "access_point_address": "10.20.0.51"},
    "failover_test": {"move_timeout": 120},
}


def make_view(
    step_key, results=None, nodes=NODES, secrets=(), auth="negotiate", **overrides
) -> RunView:
    """A view of step `step_key` with the standard inputs, `overrides` applied to its own; every
    node's WinRM session uses `auth`."""
    all_inputs = {k: dict(v) for k, v in ALL_INPUTS.items()}
    all_inputs[step_key].update(overrides)
    return RunView(
        deployment_name="test",
        domain_fqdn=DOMAIN,
        nodes=tuple(
            NodeInfo(n, f"{n.lower()}.{DOMAIN}", i, auth=auth) for i, n in enumerate(nodes)
        ),
        inputs=all_inputs[step_key],
        all_inputs=all_inputs,
        secret_names=frozenset(secrets),
        results=results if results is not None else {},
    )


def ok(node, script, data) -> ActionResult:
    return ActionResult(node, script, "succeeded", data)


def failed(node, script, message, category="script_error") -> ActionResult:
    return ActionResult(node, script, "failed", None, category, message)


def answering(data_for):
    """An answer function giving every action `data_for(node)` as its successful output."""

    def answer(phase, action):
        return ok(action.node, action.script, data_for(action.node))

    return answer


def run_until_finish(step, view: RunView, answer, limit: int = 60):
    """Advance until a Finish, answering each phase with `answer(phase, action) -> ActionResult`.

    Returns (finish, names of the phases that ran)."""
    ran = []
    for _ in range(limit):
        outcome = step.advance(view)
        if isinstance(outcome, Finish):
            return outcome, ran
        assert isinstance(outcome, Phase)
        assert outcome.name not in view.results, f"phase {outcome.name} repeated"
        view.results[outcome.name] = {a.node: answer(outcome, a) for a in outcome.actions}
        ran.append(outcome.name)
    raise AssertionError(f"no Finish after {limit} phases: {ran}")


def check_keys(finish: Finish, status: str = "fail") -> set[str]:
    return {c.key for c in finish.checks if c.status == status}
