"""Response (and small request) schemas of the JSON API; they generate its OpenAPI document."""

from __future__ import annotations

import marshmallow as ma
from marshmallow import fields as f
from marshmallow import validate as v

from app import validators
from app.execution.service import DECISIONS
from app.models.deployment import DEPLOYMENT_STATUSES, STEP_STATUSES
from app.models.execution import ACTION_STATUSES, RUN_STATUSES
from app.steps import FIX_ID_MAX

MAX_INT = 2**31 - 1  # database integer columns (PostgreSQL int4)


def characters(what: str, multiline: bool = False):
    """A marshmallow validator running the one free-text character rule of app.validators."""

    def check(value: str) -> None:
        try:
            validators.check_characters(value, what, multiline)
        except ValueError as error:
            raise ma.ValidationError(str(error)) from None

    return check


def secret(what: str):
    """A marshmallow validator running app.validators.secret (no control characters)."""

    def check(value: str) -> None:
        try:
            validators.secret(value, what, limit=8192)
        except ValueError as error:
            raise ma.ValidationError(str(error)) from None

    return check


class Strict(ma.Schema):
    """Request schemas refuse unknown fields."""

    class Meta:
        unknown = ma.RAISE
        ordered = True


class NodeOut(ma.Schema):
    name = f.String(required=True)
    host = f.String(required=True)
    port = f.Integer(required=True)
    transport = f.String(required=True)
    auth = f.String(required=True)
    cert_validation = f.Boolean(required=True)
    excluded = f.Boolean(required=True)
    exclude_reason = f.String(allow_none=True)


class StepOut(ma.Schema):
    key = f.String(required=True)
    title = f.String(required=True)
    status = f.String(required=True, validate=v.OneOf(STEP_STATUSES))
    runnable = f.Boolean(required=True)
    has_inputs = f.Boolean(required=True)
    inputs = f.Dict(required=True, metadata={"description": "Saved values; secret fields omitted"})
    secret_fields = f.List(f.String(), required=True)
    input_warnings = f.Dict(
        keys=f.String(),
        values=f.String(),
        required=True,
        metadata={
            "description": "Advice on the saved inputs, by field, that stops neither the save nor "
            "a run (the step page shows it beside the field)"
        },
    )
    skip_reason = f.String(allow_none=True)
    updated_at = f.DateTime(allow_none=True)


class CertificateOut(ma.Schema):
    subject = f.String(required=True)
    issuer = f.String(required=True)
    not_after = f.String(required=True, metadata={"description": "YYYY-MM-DD (UTC)"})
    sha256 = f.String(required=True)


class DeploymentOut(ma.Schema):
    id = f.Integer(required=True)
    name = f.String(required=True)
    domain_fqdn = f.String(required=True)
    guide = f.String(required=True)
    guide_version = f.String(required=True)
    status = f.String(required=True, validate=v.OneOf(DEPLOYMENT_STATUSES))
    current_step = f.String(required=True)
    created_by = f.String(allow_none=True)
    created_at = f.DateTime(required=True)
    last_activity_at = f.DateTime(required=True)
    nodes = f.List(f.Nested(NodeOut), required=True)
    kerberos_kdcs = f.String(
        allow_none=True, metadata={"description": "The realm's KDCs; null: found through DNS"}
    )
    ca_certificates = f.List(
        f.Nested(CertificateOut),
        required=True,
        metadata={"description": "The internal CA certificates trusted for HTTPS nodes"},
    )
    unvalidated_nodes = f.List(
        f.String(),
        required=True,
        metadata={"description": "HTTPS nodes whose certificate is not validated (a warning)"},
    )
    steps = f.List(f.Nested(StepOut), required=True)
    secrets_held = f.List(
        f.String(), required=True, metadata={"description": "Names of secrets held (never values)"}
    )


class DeploymentSummary(ma.Schema):
    id = f.Integer(required=True)
    name = f.String(required=True)
    domain_fqdn = f.String(required=True)
    status = f.String(required=True, validate=v.OneOf(DEPLOYMENT_STATUSES))
    current_step = f.String(required=True)
    created_by = f.String(allow_none=True)
    created_at = f.DateTime(required=True)
    last_activity_at = f.DateTime(required=True)


class DeploymentPage(ma.Schema):
    items = f.List(f.Nested(DeploymentSummary), required=True)
    total = f.Integer(required=True)
    page = f.Integer(required=True)
    per_page = f.Integer(required=True)


class PageArgs(Strict):
    page = f.Integer(load_default=1, validate=v.Range(min=1, max=100000))
    per_page = f.Integer(load_default=25, validate=v.Range(min=1, max=200))


class HistoryArgs(PageArgs):
    status = f.String(validate=v.OneOf(DEPLOYMENT_STATUSES))


class ActionOut(ma.Schema):
    node = f.String(required=True)
    script = f.String(required=True)
    label = f.String(allow_none=True)
    parameters = f.Dict(required=True)
    secret_parameters = f.Dict(
        keys=f.String(),
        values=f.String(),
        required=True,
        metadata={"description": "Script parameter -> masked placeholder naming the secret"},
    )


class PhaseOut(ma.Schema):
    name = f.String(required=True)
    title = f.String(required=True)
    changes_state = f.Boolean(required=True)
    actions = f.List(f.Nested(ActionOut), required=True)


class PlanOut(ma.Schema):
    deployment_id = f.Integer(required=True)
    step = f.String(required=True)
    runnable = f.Boolean(required=True)
    phases = f.List(f.Nested(PhaseOut), required=True)


def _fix_field() -> f.String:
    """The id of a fix a check offered, applied with consent when the step runs (again)."""
    return f.String(
        validate=[v.Length(min=1, max=FIX_ID_MAX), characters("Fix")],
        metadata={
            "description": "Optional: the id of a fix a failed check offered (its fix.id, e.g. "
            "restart:AMS2, which names the nodes it was offered for), applied with consent, on "
            "those nodes only, before the checks run again"
        },
    )


class RunIn(Strict):
    username = f.String(
        required=True,
        validate=[v.Length(min=1, max=255), characters("WinRM user")],
        metadata={"description": "WinRM user, DOMAIN\\user or user@domain"},
    )
    password = f.String(
        required=True,
        validate=[v.Length(min=1, max=1024), secret("Password")],
        load_only=True,
        metadata={"description": "Stored encrypted while work is pending; never echoed"},
    )
    fix = _fix_field()


class DecisionIn(Strict):
    decision = f.String(required=True, validate=v.OneOf(DECISIONS))
    reason = f.String(
        load_default="", validate=[v.Length(max=2000), characters("Reason", multiline=True)]
    )
    nodes = f.List(
        f.String(validate=[v.Length(min=1, max=15), characters("Node name")]),
        load_default=list,
        validate=v.Length(max=16),
        metadata={"description": "Nodes to exclude (decision 'exclude')"},
    )
    username = f.String(
        validate=[v.Length(min=1, max=255), characters("WinRM user")],
        metadata={"description": "Optional new WinRM user (with password) for the next attempt"},
    )
    password = f.String(validate=[v.Length(min=1, max=1024), secret("Password")], load_only=True)
    fix = _fix_field()

    @ma.validates_schema
    def _both_or_neither(self, data, **kwargs):
        if ("username" in data) != ("password" in data):
            raise ma.ValidationError("Give both username and password, or neither.", "password")


class NodeActionOut(ma.Schema):
    """app.history.records.action_record: the same fields in the history export."""

    id = f.Integer(required=True)
    node = f.String(required=True)
    phase = f.String(required=True)
    script = f.String(required=True)
    label = f.String(allow_none=True)
    status = f.String(required=True, validate=v.OneOf(ACTION_STATUSES))
    try_count = f.Integer(required=True)
    progress = f.Integer(allow_none=True)
    error_category = f.String(allow_none=True)
    error_message = f.String(allow_none=True)
    remediation = f.String(allow_none=True)
    output_lost = f.Integer(required=True)  # stream records lost to a database outage
    output_lost_notice = f.String(
        allow_none=True, metadata={"description": "What the lost lines mean; null: none lost"}
    )
    result = f.Raw(allow_none=True)
    started_at = f.DateTime(allow_none=True)
    finished_at = f.DateTime(allow_none=True)
    seconds = f.Float(allow_none=True, metadata={"description": "Duration; null until finished"})


class RunOut(ma.Schema):
    """app.history.records.run_record: the same fields in the history export."""

    id = f.Integer(required=True)
    step = f.String(required=True)
    attempt = f.Integer(required=True)
    status = f.String(required=True, validate=v.OneOf(RUN_STATUSES))
    kind = f.String(
        required=True,
        metadata={
            "description": "run, the decision that started it (retry, retry_failed, "
            "exclude), or verification (a re-verification of a finished step)"
        },
    )
    phase = f.String(allow_none=True)
    actor = f.String(allow_none=True)
    options = f.Dict(required=True)
    inputs = f.Dict(required=True, metadata={"description": "The inputs it ran with; no secrets"})
    outcome = f.Dict(allow_none=True)
    created_at = f.DateTime(required=True)
    started_at = f.DateTime(allow_none=True)
    finished_at = f.DateTime(allow_none=True)
    seconds = f.Float(allow_none=True, metadata={"description": "Duration; null until finished"})
    actions = f.List(f.Nested(NodeActionOut), required=True)


class StepStatusOut(ma.Schema):
    key = f.String(required=True)
    title = f.String(required=True)
    status = f.String(required=True, validate=v.OneOf(STEP_STATUSES))
    skip_reason = f.String(allow_none=True)
    runs = f.List(f.Nested(RunOut), required=True)


class StatusOut(ma.Schema):
    id = f.Integer(required=True)
    status = f.String(required=True, validate=v.OneOf(DEPLOYMENT_STATUSES))
    current_step = f.String(required=True)
    active_run = f.Nested(RunOut, allow_none=True)
    nodes = f.List(f.Nested(NodeOut), required=True)
    steps = f.List(f.Nested(StepStatusOut), required=True)
    last_event_seq = f.Integer(required=True)
    # The broker backlog, or a late reaper while a step runs (app/execution/health.py).
    service_notices = f.List(f.String(), required=True)


class DecisionOut(ma.Schema):
    decision = f.String(required=True)
    step_status = f.String(required=True)
    deployment_status = f.String(required=True)
    run = f.Nested(RunOut, allow_none=True)


class EventOut(ma.Schema):
    seq = f.Integer(required=True)
    kind = f.String(required=True)
    step = f.String(allow_none=True)
    node = f.String(allow_none=True)
    step_run = f.Integer(allow_none=True)
    action = f.Integer(allow_none=True)
    payload = f.Dict(required=True)
    at = f.String(required=True)


class EventArgs(Strict):
    after = f.Integer(load_default=0, validate=v.Range(min=0, max=MAX_INT))
    limit = f.Integer(load_default=200, validate=v.Range(min=1, max=1000))


class EventPage(ma.Schema):
    events = f.List(f.Nested(EventOut), required=True)
    next_after = f.Integer(required=True)
    more = f.Boolean(required=True)


class StreamArgs(Strict):
    after = f.Integer(load_default=0, validate=v.Range(min=0, max=MAX_INT))


class ExportOut(ma.Schema):
    """The history export (app.history.export.deployment_json): the same document the screens offer."""

    format = f.String(required=True)
    deployment = f.Dict(required=True)
    nodes = f.List(f.Dict(), required=True)
    steps = f.List(f.Dict(), required=True)
    summary = f.Dict(required=True, metadata={"description": "The Summary deliverable's facts"})
    events = f.List(f.Dict(), required=True)
