"""A test-only guide: detect -> apply (slow, changes state) -> verify, on test-only vetted scripts.

Imported by the test process and by the Celery worker (`--include tests.execution.testguide`), it
registers itself in app.guides.GUIDES.
"""

from app.guides import GUIDES
from app.steps import Action, Finish, Guide, Phase, Step


class ExecStep(Step):
    """Detect first, change only what is not done, then verify: a retry neither repeats nor skips."""

    key = "exec_step"
    title = "Execution test step"
    purpose = "Exercise the execution pipeline end to end."
    per_node_retry = True

    def advance(self, view):
        detect = view.phase("detect")
        if detect is None:
            return Phase(
                "detect", "Detect", tuple(Action(n.name, "exec_detect") for n in view.nodes)
            )
        failed = tuple(n for n, r in detect.items() if not r.ok)
        if failed:
            return Finish("needs_attention", "Detection failed.", failed_nodes=failed)
        todo = [n for n, r in detect.items() if not (r.data or {}).get("applied")]
        apply = view.phase("apply")
        if apply is None and todo:
            params = {"Seconds": float(view.inputs.get("seconds", 0))}
            if view.inputs.get("echo_secret"):
                params["EchoSecret"] = True
            actions = tuple(
                Action(n, "exec_apply", params, secrets={"Secret": "winrm_password"}, label="Apply")
                for n in todo
            )
            return Phase("apply", "Apply", actions, changes_state=True)
        failed = tuple(n for n, r in (apply or {}).items() if not r.ok)
        if failed:
            return Finish("needs_attention", "Apply failed.", failed_nodes=failed)
        verify = view.phase("verify")
        if verify is None:
            return Phase(
                "verify", "Verify", tuple(Action(n.name, "exec_detect") for n in view.nodes)
            )
        bad = tuple(n for n, r in verify.items() if not (r.ok and (r.data or {}).get("applied")))
        if bad:
            return Finish("needs_attention", "Verification failed.", failed_nodes=bad)
        return Finish("done", f"Applied on {len(todo)} node(s), verified on {len(verify)}.")


class EchoStep(Step):
    """One trivial (or timed) action per node: used by the benchmark and stream tests."""

    key = "exec_echo"
    title = "Echo"
    purpose = "A single action per node."

    def advance(self, view):
        done = view.phase("echo")
        if done is None:
            seconds = float(view.inputs.get("seconds", 0))
            script, params = (
                ("exec_wait", {"Seconds": seconds}) if seconds else ("exec_echo", {"Text": "hi"})
            )
            return Phase("echo", "Echo", tuple(Action(n.name, script, params) for n in view.nodes))
        failed = tuple(n for n, r in done.items() if not r.ok)
        return Finish("needs_attention" if failed else "done", "echo", failed_nodes=failed)


class EchoLaterStep(EchoStep):
    """A second echo step, so running the first one does not complete the deployment."""

    key = "exec_echo_later"
    title = "Echo later"


class CountStep(Step):
    """Numbered output lines from each node over a few seconds (the database outage tests)."""

    key = "exec_count"
    title = "Count"
    purpose = "Stream numbered lines from every node."

    def advance(self, view):
        done = view.phase("count")
        if done is None:
            params = {
                "Count": int(view.inputs.get("count", 40)),
                "Seconds": float(view.inputs.get("seconds", 4)),
            }
            actions = tuple(Action(n.name, "exec_count", params) for n in view.nodes)
            return Phase("count", "Count", actions)
        failed = tuple(n for n, r in done.items() if not r.ok)
        return Finish("needs_attention" if failed else "done", "count", failed_nodes=failed)


GUIDE = Guide(key="exec-test", title="Execution test", version="1", steps=(ExecStep(),))
ECHO_GUIDE = Guide(key="exec-echo", title="Echo test", version="1", steps=(EchoStep(),))
# The benchmark's deployment: its credentials (and pooled sessions) outlive a run of the first step.
ECHO_TWO_GUIDE = Guide(
    key="exec-echo-two", title="Echo twice", version="1", steps=(EchoStep(), EchoLaterStep())
)
# The benchmark's multi-phase step, likewise not the deployment's last.
PHASED_TWO_GUIDE = Guide(
    key="exec-test-two", title="Phases, then echo", version="1", steps=(ExecStep(), EchoLaterStep())
)
# The database outage tests' step (tests/execution/test_database_outage.py).
COUNT_GUIDE = Guide(key="exec-count", title="Count test", version="1", steps=(CountStep(),))
GUIDES[GUIDE.key] = GUIDE
GUIDES[COUNT_GUIDE.key] = COUNT_GUIDE
GUIDES[PHASED_TWO_GUIDE.key] = PHASED_TWO_GUIDE
GUIDES[ECHO_GUIDE.key] = ECHO_GUIDE
GUIDES[ECHO_TWO_GUIDE.key] = ECHO_TWO_GUIDE
