"""The step engine contract: guides are ordered lists of steps; steps are plain classes.

A step never touches HTTP, Celery or Redis. The execution service calls `advance(view)` with the
results recorded so far in the current attempt; the step answers with the next `Phase` of remote
actions or with a `Finish`. Because `advance` is a pure function of recorded results, a run that a
crash interrupted resumes by calling it again, and a retry starts with detection, so work already
done is recognised instead of repeated.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, ClassVar, Literal

CheckStatus = Literal["pass", "warn", "fail", "info"]
# Fewer active nodes than this and there is nowhere to fail over to (cluster) or nothing for the
# balancer to send users to when a node stops (farm).
HA_MIN_NODES = 2
# The longest fix id a check may offer (the farm test's round carries the nodes reached so far).
FIX_ID_MAX = 400
# done: the step is finished. passed: this attempt did its part and passed, and the step goes on
# with another attempt once the operator has done what the outcome asks (a farm test round: drain
# the next node). needs_attention: a person decides (retry, skip with reason, abort, exclude).
FinishStatus = Literal["done", "passed", "needs_attention"]


@dataclass(frozen=True)
class Action:
    """One vetted script to run on one node. `secrets` maps a script parameter to a vault entry."""

    node: str
    script: str
    params: dict[str, Any] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    label: str = ""
    timeout: int | None = None
    long_running: bool = False
    upload: tuple[str, str] | None = None  # (file in instance/installers, path on the node)


@dataclass(frozen=True)
class Phase:
    """A set of actions run in parallel (one per node at most); the step waits for all of them."""

    name: str
    title: str
    actions: tuple[Action, ...]
    changes_state: bool = False
    wait_before: float = 0.0


@dataclass(frozen=True)
class Check:
    """One verdict shown to the operator, with what it saw and what to do about it."""

    key: str
    title: str
    status: CheckStatus
    evidence: str = ""
    remediation: str = ""
    node: str | None = None
    fix: dict[str, Any] | None = None

    def as_dict(self) -> dict[str, Any]:
        return {
            "key": self.key,
            "title": self.title,
            "status": self.status,
            "evidence": self.evidence,
            "remediation": self.remediation,
            "node": self.node,
            "fix": self.fix,
        }


@dataclass(frozen=True)
class Finish:
    """How the attempt ended: done; passed (the step continues with another attempt); or needs a
    person (retry, skip with reason, abort, exclude)."""

    status: FinishStatus
    summary: str
    checks: tuple[Check, ...] = ()
    failed_nodes: tuple[str, ...] = ()
    artifacts: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "status": self.status,
            "summary": self.summary,
            "checks": [c.as_dict() for c in self.checks],
            "failed_nodes": list(self.failed_nodes),
            "artifacts": self.artifacts,
        }


@dataclass(frozen=True)
class ActionResult:
    """What one node action produced: `data` is the script's parsed JSON output."""

    node: str
    script: str
    status: str
    data: Any = None
    error_category: str | None = None
    error_message: str | None = None

    @property
    def ok(self) -> bool:
        return self.status == "succeeded"


@dataclass(frozen=True)
class NodeInfo:
    """A node as a step sees it."""

    name: str
    host: str
    position: int
    auth: str = "negotiate"
    cert_validation: bool = True


@dataclass(frozen=True)
class RunOptions:
    """How a run was asked for, beyond its step and inputs: typed, and stored as StepRun.options.

    decision: the operator's decision that started it (retry, retry_failed, exclude), None for a
    first run; retry_of: the run it retries; fix: the id of an offered fix to apply first (at most
    FIX_ID_MAX characters); nodes: the nodes it targets (empty: every active node); waited: the
    phase whose wait is over. A run mode's own fields: mode (e.g. "verify"), batch (the verification
    batch), queue (the steps still to verify after this one), status_before (the deployment's
    status when the batch began)."""

    decision: str | None = None
    retry_of: int | None = None
    fix: str | None = None
    nodes: tuple[str, ...] = ()
    waited: str | None = None
    mode: str | None = None
    batch: str | None = None
    queue: tuple[str, ...] = ()
    status_before: str | None = None

    def __post_init__(self) -> None:
        for name in ("decision", "fix", "waited", "mode", "batch", "status_before"):
            value = getattr(self, name)
            if value is not None and not isinstance(value, str):
                raise TypeError(f"RunOptions.{name} must be text, not {type(value).__name__}")
        if self.fix is not None and len(self.fix) > FIX_ID_MAX:
            raise ValueError(f"A fix id is at most {FIX_ID_MAX} characters.")
        if self.retry_of is not None and (
            isinstance(self.retry_of, bool) or not isinstance(self.retry_of, int)
        ):
            raise TypeError("RunOptions.retry_of must be a run id")
        for name in ("nodes", "queue"):
            items = getattr(self, name)
            if isinstance(items, str) or not all(isinstance(i, str) for i in items):
                raise TypeError(f"RunOptions.{name} must be a list of names")
            object.__setattr__(self, name, tuple(items))

    @classmethod
    def from_json(cls, data: dict[str, Any] | None) -> RunOptions:
        """The options as stored; a key this class does not know is an error, not ignored."""
        data = dict(data or {})
        unknown = sorted(set(data) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"Unknown run options: {', '.join(unknown)}")
        return cls(**data)

    def as_json(self) -> dict[str, Any]:
        """The options that are set, as JSON values (lists for the tuples)."""
        out: dict[str, Any] = {}
        for name in self.__dataclass_fields__:
            value = getattr(self, name)
            if value is not None and value != ():
                out[name] = list(value) if isinstance(value, tuple) else value
        return out

    def but(self, **changes: Any) -> RunOptions:
        """A copy with `changes` (the options are immutable)."""
        return dataclasses.replace(self, **changes)


@dataclass
class RunView:
    """Everything a step may read while deciding what to do next."""

    deployment_name: str
    domain_fqdn: str
    nodes: tuple[NodeInfo, ...]
    inputs: dict[str, Any]
    all_inputs: dict[str, dict[str, Any]]
    secret_names: frozenset[str] = frozenset()
    results: dict[str, dict[str, ActionResult]] = field(default_factory=dict)
    options: RunOptions = field(default_factory=lambda: RunOptions())
    all_nodes: tuple[str, ...] = ()  # every active node of the deployment, not only those targeted

    def phase(self, name: str) -> dict[str, ActionResult] | None:
        """Results of a finished phase keyed by node name, or None if it has not run."""
        return self.results.get(name)

    @property
    def node_names(self) -> list[str]:
        return [n.name for n in self.nodes]

    @property
    def first_node(self) -> NodeInfo:
        return self.nodes[0]


class Step:
    """Base class for one screen of a guide. Subclasses set the class attributes and `advance`."""

    key: ClassVar[str]
    title: ClassVar[str]
    purpose: ClassVar[str]
    guidance: ClassVar[tuple[str, ...]] = ()
    form_class: ClassVar[type | None] = None
    secret_fields: ClassVar[tuple[str, ...]] = ()
    # Secret fields wiped from the vault as soon as the step succeeds (its screen says so).
    wipe_on_success: ClassVar[tuple[str, ...]] = ()
    runnable: ClassVar[bool] = True
    read_only: ClassVar[bool] = False
    per_node_retry: ClassVar[bool] = False
    # A finished step re-verified by replaying its read-only phases (app.handover.drift), when
    # it has no drift_check of its own. Never for a step whose detection needs the operator.
    replay_to_verify: ClassVar[bool] = False
    # Saved inputs the history list shows and filters on: {fact: input field}. Facts: "name"
    # (what users reach: the cluster's or the farm's name, found by the search box) and
    # "ams_version" (the version filter).
    history_facts: ClassVar[dict[str, str]] = {}

    def cross_check(
        self, deployment: Any, data: dict[str, Any], probed: Callable[[], dict]
    ) -> dict[str, str]:
        """Rules on the form's values that need the deployment (its nodes, the other steps'
        inputs): {field: message}; nothing saved or run while any is given. `probed()`: per node
        name, the (address, prefix) pairs its newest connection probe reported."""
        return {}

    def input_warnings(self, deployment: Any, inputs: dict[str, Any]) -> dict[str, str]:
        """Advice on the saved inputs that stops neither the save nor a run, shown on the step's
        page beside the field before the operator runs the step: {field: message}."""
        return {}

    def initial_inputs(self, view: RunView) -> dict[str, Any]:
        """Defaults shown on the form before the operator saves anything."""
        return {}

    def preview(self, view: RunView) -> list[Phase]:
        """Every phase this step may run, for the plan preview (before any detection)."""
        return []

    def advance(self, view: RunView) -> Phase | Finish:
        """Next phase to run given the results so far, or the outcome."""
        return Finish("done", "Nothing to run for this step.")

    def drift_check(self, view: RunView) -> Phase | None:
        """Re-verifying a finished step: the next read-only phase to run, or None when all has run.

        Name the phases as `advance` names them: the verdict is `advance(view)` on their results
        (a Finish, or a state-changing phase meaning the step would change something: drift).
        Steps that cannot be re-verified without changing state keep this default (None).
        """
        return None


@dataclass(frozen=True)
class Guide:
    """An ordered list of steps; a second guide is just another instance."""

    key: str
    title: str
    version: str
    steps: tuple[Step, ...]
    # One line for the new-deployment form: which Access Manager versions it is for, and when.
    choice: str = ""

    def step(self, key: str) -> Step:
        for step in self.steps:
            if step.key == key:
                return step
        raise KeyError(key)

    def index(self, key: str) -> int:
        return [s.key for s in self.steps].index(key)

    def neighbours(self, key: str) -> tuple[Step | None, Step | None]:
        """The steps before and after `key`."""
        i = self.index(key)
        before = self.steps[i - 1] if i > 0 else None
        after = self.steps[i + 1] if i + 1 < len(self.steps) else None
        return before, after


FINISHED_STEP_STATES = frozenset({"done", "skipped"})


def blocking_step(guide: Guide, key: str, statuses: dict[str, str]) -> Step | None:
    """The first earlier step that is neither done nor skipped, which stops `key` from starting."""
    for step in guide.steps[: guide.index(key)]:
        if statuses.get(step.key, "not_started") not in FINISHED_STEP_STATES:
            return step
    return None


def blocked_message(blocker: Step, step: Step) -> str:
    """What the operator reads when `blocker` (blocking_step) stops `step` from starting."""
    return f"Finish or skip '{blocker.title}' before running '{step.title}'."
