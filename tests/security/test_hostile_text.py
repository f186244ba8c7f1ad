"""A NUL or a bidirectional override in any free-text field gets a clear message, never a 500, and
changes no row. The fields come from the forms themselves (every form class in app/, every step
form of every guide) and the API's request schemas, so a new field is covered when it is added."""

import importlib
import pkgutil
import re

import pytest
from flask_wtf import FlaskForm
from sqlalchemy import select, text
from werkzeug.datastructures import MultiDict
from wtforms import Form, PasswordField, StringField, TextAreaField

import app as app_package
from app.api.formjson import unbound_fields
from app.api.schemas import DecisionIn, RunIn
from app.api.tokens import create_token
from app.extensions import db
from app.guides import GUIDES
from app.models import Event, User
from app.wizard.fields import CharacterRule
from tests.api.conftest import DEPLOYMENT, ApiClient
from tests.conftest import PASSWORD, csrf_token, login

NUL, BIDI = "\x00", "\u202e"
# What the page (or the JSON error) says about each character.
SAYS = {NUL: "control character (U+0000)", BIDI: "bidirectional text control (U+202E)"}
API_SAYS = {NUL: "NUL", BIDI: "bidirectional text control (U+202E)"}
# Rows that change on any request by design: the audit trail, API tokens' last use, leases.
NOT_COMPARED = {"audit_records", "api_tokens", "deployment_leases"}
NODE_HOSTS = {"nodes-0-host": "10.0.0.1", "nodes-1-host": "10.0.0.2"}
NEW_DEPLOYMENT = {
    "name": "Hostile text",
    "domain_fqdn": "corp.example.test",
    "nodes-0-name": "AMS1",
    "nodes-1-name": "AMS2",
    "nodes-0-port": "5985",
    "nodes-1-port": "5985",
    "nodes-0-transport": "http",
    "nodes-1-transport": "http",
    "nodes-0-auth": "ntlm",
    "nodes-1-auth": "ntlm",
    **NODE_HOSTS,
    "kerberos_kdcs": "dc1.corp.example.test",
}
# A valid value for every text field of every step form of every guide; the test corrupts one
# at a time.
CLUSTER_INPUTS = {
    "prerequisites": {
        "ams_version": "2.1.1069.0",
        "gmsa": "CORP\\svc-ams$",
        "sql_connection_string": "Server=sql1.corp.example.test;Database=AccessManager;"
        "Integrated Security=true",
        "license_key": "LICENSE-0123456789-ABCDEF",
    },
    "base_cluster": {"cluster_name": "AMSCLU", "cluster_address": "10.20.0.50"},
    "quorum": {
        "witness_type": "cloud",
        "share_path": "\\\\FS1\\witness",
        "cloud_account": "amswitness",
        "cloud_access_key": "a2V5LWtleS1rZXk=",
        "cloud_endpoint": "core.windows.net",
        "disk_name": "Cluster Disk 1",
    },
    "install_ams": {
        "install_mode": "manual",
        "installer_name": "AccessManagerService.msi",
        "certificate_thumbprint": "A" * 40,
        "https_port": "443",
    },
    "cluster_role": {"access_point_name": "AMSWEB", "access_point_address": "10.20.0.51"},
    "failover_test": {"move_timeout": "120"},
}
FARM_INPUTS = {
    "prerequisites": CLUSTER_INPUTS["prerequisites"],
    "first_node": {"certificate_thumbprint": "B" * 40, "https_port": "443"},
    "host_config": {"external_host_name": "ams.corp.example.test"},
    "ip_detection": {
        "balancer_layer": "application",
        "forward_limit": "1",
        "known_proxies": "10.20.0.60",
        "known_networks": "10.20.0.0/24",
    },
    "farm_test": {"balancer_address": "amsweb.corp.example.test", "requests_per_round": "4"},
}
STEP_INPUTS = {"ams-failover-cluster": CLUSTER_INPUTS, "ams-load-balancer": FARM_INPUTS}
INTEGER_INPUTS = {"https_port", "move_timeout", "forward_limit", "requests_per_round"}


def _all_form_classes() -> list[type]:
    """Every WTForms form class defined in the app's modules."""
    for info in pkgutil.walk_packages(app_package.__path__, "app."):
        if not info.name.startswith("app.lab"):
            importlib.import_module(info.name)
    found, todo = set(), [Form]
    while todo:
        for sub in todo.pop().__subclasses__():
            todo.append(sub)
            if sub.__module__.startswith("app.") and sub is not FlaskForm:
                found.add(sub)
    return sorted(found, key=lambda c: f"{c.__module__}.{c.__name__}")


FORMS = _all_form_classes()


def _text_fields(form_class) -> list[tuple[str, type]]:
    """(name, field class) of the fields that take typed text."""
    kinds = (StringField, TextAreaField, PasswordField)
    return [
        (name, unbound.field_class)
        for name, unbound in unbound_fields(form_class)
        if issubclass(unbound.field_class, kinds)
    ]


STEP_SECRETS = {f for g in GUIDES.values() for s in g.steps for f in s.secret_fields}


def _any_printable(name: str, field_class) -> bool:
    """Passwords are never shown and may hold any printable character, bidi controls included;
    the step secrets (license key, access key) follow the stricter rule of typed values."""
    return issubclass(field_class, PasswordField) and name not in STEP_SECRETS


def _step_fields() -> list[tuple[str, str, str]]:
    """(guide key, step key, field name) for every text field of every guide step's form."""
    return [
        (guide.key, step.key, name)
        for guide in GUIDES.values()
        for step in guide.steps
        if step.form_class is not None
        for name, _ in _text_fields(step.form_class)
    ]


STEP_FIELDS = _step_fields()


def _corrupt(value: str, char: str) -> str:
    """The value with `char` inside it (or around an x when the field is optional and empty)."""
    value = value or "xy"
    return value[: len(value) // 2] + char + value[len(value) // 2 :]


def snapshot() -> dict[str, list]:
    """Every row of every compared table, as text, so any change at all shows."""
    out = {}
    for table in db.metadata.sorted_tables:
        if table.name not in NOT_COMPARED:
            rows = db.session.execute(select(table)).all()
            out[table.name] = sorted(repr(tuple(row)) for row in rows)
    db.session.rollback()
    return out


@pytest.fixture
def signed_in(client, make_user):
    """An admin's browser session and the CSRF token of its forms."""
    login(client, make_user("admin", "admin"))
    return client, csrf_token(client, "/deployments/new")


def _new_deployment(app, signed_in, guide_key: str) -> int:
    """A deployment of two nodes on distinct addresses, following `guide_key`; returns its id."""
    client, token = signed_in
    data = {**NEW_DEPLOYMENT, "guide_key": guide_key, "csrf_token": token}
    response = client.post("/deployments/new", data=data)
    assert response.status_code == 302, response.get_data(as_text=True)
    with app.app_context():
        return db.session.scalar(text("SELECT max(id) FROM deployments"))


@pytest.fixture
def deployment(app, signed_in):
    return _new_deployment(app, signed_in, "ams-failover-cluster")


def _refused(response, char: str) -> None:
    """A clear message about the character, and no server error."""
    assert response.status_code < 500
    html = response.get_data(as_text=True)
    assert SAYS[char] in html, re.sub(r"\s+", " ", html)[:3000]


# --- every form field uses the rule -------------------------------------------------------------


def test_the_forms_were_found():
    names = {c.__name__ for c in FORMS}
    assert {"LoginForm", "RunForm", "NoteForm", "DeploymentForm", "QuorumForm"} <= names
    assert len(STEP_FIELDS) >= 15


@pytest.mark.parametrize("form_class", FORMS, ids=lambda c: c.__name__)
def test_every_text_field_carries_the_character_rule(form_class):
    for name, field_class in _text_fields(form_class):
        assert issubclass(field_class, CharacterRule), f"{form_class.__name__}.{name}"


@pytest.mark.parametrize("char", [NUL, BIDI], ids=["nul", "bidi"])
@pytest.mark.parametrize("form_class", FORMS, ids=lambda c: c.__name__)
def test_every_text_field_refuses_the_character(app, form_class, char):
    """Each field alone: the form refuses it with the rule's message (bidi: not in passwords)."""
    for name, field_class in _text_fields(form_class):
        if char == BIDI and _any_printable(name, field_class):
            continue
        with app.test_request_context():
            form = form_class(formdata=MultiDict({name: f"a{char}b"}), meta={"csrf": False})
            form.validate()
            assert SAYS[char] in str(form.errors.get(name)), (form_class.__name__, name)


# --- the screens ----------------------------------------------------------------------------


def _id(case: tuple[str, str, str]) -> str:
    guide, step, field = case
    return f"{guide.removeprefix('ams-')}:{step}:{field}"


@pytest.mark.parametrize("char", [NUL, BIDI], ids=["nul", "bidi"])
@pytest.mark.parametrize(("guide_key", "step_key", "field"), STEP_FIELDS, ids=map(_id, STEP_FIELDS))
def test_step_form_field_refused_then_valid_values_save(
    app, signed_in, guide_key, step_key, field, char
):
    client, token = signed_in
    deployment = _new_deployment(app, signed_in, guide_key)
    url = f"/deployments/{deployment}/steps/{step_key}"
    data = {**STEP_INPUTS[guide_key][step_key], "csrf_token": token}
    before = _snap(app)
    response = client.post(url, data={**data, field: _corrupt(data.get(field, ""), char)})
    assert response.status_code == 400
    _refused(response, char)
    assert _snap(app) == before
    saved = client.post(url, data=data)  # the same form without the character is accepted
    assert saved.status_code == 302, saved.get_data(as_text=True)
    assert _snap(app) != before


def _snap(app):
    with app.app_context():
        return snapshot()


DEPLOYMENT_FIELDS = ["name", "domain_fqdn", "nodes-0-name", "nodes-1-host", "kerberos_kdcs"]


@pytest.mark.parametrize("char", [NUL, BIDI], ids=["nul", "bidi"])
@pytest.mark.parametrize("field", [*DEPLOYMENT_FIELDS, "ca_bundle"])
def test_new_deployment_field_refused(app, signed_in, field, char):
    client, token = signed_in
    before = _snap(app)
    value = _corrupt(NEW_DEPLOYMENT.get(field, ""), char)
    response = client.post(
        "/deployments/new", data={**NEW_DEPLOYMENT, field: value, "csrf_token": token}
    )
    _refused(response, char)
    assert _snap(app) == before


@pytest.mark.parametrize("char", [NUL, BIDI], ids=["nul", "bidi"])
def test_deployment_edit_refused(app, signed_in, deployment, char):
    client, token = signed_in
    before = _snap(app)
    data = {**NEW_DEPLOYMENT, "name": f"Renamed{char}", "csrf_token": token}
    _refused(client.post(f"/deployments/{deployment}/edit", data=data), char)
    assert _snap(app) == before


def _posts(deployment: int) -> list[tuple[str, str, dict, str]]:
    """(case, url, valid data, field to corrupt) for the forms outside the step inputs."""
    step = f"/deployments/{deployment}/steps/prerequisites"
    winrm = {"username": "CORP\\operator", "password": "Passw0rd!"}
    return [
        ("run user", f"{step}/run", {**winrm, "fix": ""}, "username"),
        ("run password", f"{step}/run", winrm, "password"),
        ("run fix", f"{step}/run", {**winrm, "fix": "install_ad_module"}, "fix"),
        ("resume user", f"/deployments/{deployment}/resume", winrm, "username"),
        ("resume password", f"/deployments/{deployment}/resume", winrm, "password"),
        (
            "connection user",
            f"/deployments/{deployment}/connections",
            {**winrm, "node": "1"},
            "username",
        ),
        (
            "decision reason",
            f"{step}/decide",
            {"decision": "skip", "reason": "not needed"},
            "reason",
        ),
        (
            "decision node",
            f"{step}/decide",
            {"decision": "exclude", "reason": "gone", "nodes": "AMS2"},
            "nodes",
        ),
        ("step note", f"{step}/note", {"reason": "a note"}, "reason"),
        (
            "take-over reason",
            f"/deployments/{deployment}/take-over",
            {"reason": "on call"},
            "reason",
        ),
        (
            "deployment note",
            f"/deployments/{deployment}/notes",
            {"text": "first\r\nsecond line, a longer one"},
            "text",
        ),
        ("token name", "/account/tokens", {"name": "build01"}, "name"),
        ("new user name", "/admin/users/new", _new_user(), "username"),
        ("new user password", "/admin/users/new", _new_user(), "password"),
    ]


def _new_user() -> dict:
    return {"username": "dave", "role": "operator", "password": PASSWORD, "confirm": PASSWORD}


# Passwords are only tried with NUL: they may hold any printable character (never shown).
POST_CASES = [
    (case, char)
    for case, _, _, field in _posts(0)
    for char in ((NUL,) if field == "password" else (NUL, BIDI))
]


@pytest.mark.parametrize(
    ("case", "char"), POST_CASES, ids=[f"{c}-{ord(x):x}" for c, x in POST_CASES]
)
def test_other_form_field_refused(app, signed_in, deployment, case, char):
    client, token = signed_in
    _, url, data, field = next(c for c in _posts(deployment) if c[0] == case)
    before = _snap(app)
    bad = {**data, field: _corrupt(data[field], char), "csrf_token": token}
    _refused(client.post(url, data=bad, follow_redirects=True), char)
    assert _snap(app) == before


@pytest.mark.parametrize("char", [NUL, BIDI], ids=["nul", "bidi"])
def test_login_user_name_refused(app, client, make_user, char):
    make_user("erin", "operator")
    before = _snap(app)
    token = csrf_token(client)
    data = {"username": f"er{char}in", "password": PASSWORD, "csrf_token": token}
    _refused(client.post("/login", data=data), char)
    assert _snap(app) == before
    assert client.get("/").status_code == 302  # not signed in


def test_login_password_with_nul_refused(app, client, make_user):
    make_user("erin", "operator")
    before = _snap(app)
    data = {"username": "erin", "password": f"x{NUL}y", "csrf_token": csrf_token(client)}
    _refused(client.post("/login", data=data), NUL)
    assert _snap(app) == before


def test_reset_password_with_nul_refused(app, signed_in, make_user):
    client, token = signed_in
    make_user("frank", "operator")
    with app.app_context():
        user_id = db.session.scalar(select(User.id).where(User.username == "frank"))
    before = _snap(app)
    bad = f"{PASSWORD}{NUL}"
    data = {"password": bad, "confirm": bad, "csrf_token": token}
    _refused(client.post(f"/admin/users/{user_id}/password", data=data), NUL)
    assert _snap(app) == before


def test_multi_line_notes_keep_their_line_breaks(app, signed_in, deployment):
    client, token = signed_in
    data = {"text": "line 1\r\nline 2\tend", "csrf_token": token}
    client.post(f"/deployments/{deployment}/notes", data=data)
    with app.app_context():
        [note] = db.session.scalars(select(Event).where(Event.kind == "note.added")).all()
        assert note.payload["text"] == "line 1\r\nline 2\tend"


# --- search and query parameters ------------------------------------------------------------

SEARCHES = [f"/history?q={c}" for c in ("%00", "%E2%80%AE")] + [
    "/history.csv?q=%00",
    "/history?operator=%00",
    "/history?ams_version=a%00b",
    "/history.csv?operator=%E2%80%AE",
]


@pytest.mark.parametrize("url", SEARCHES)
def test_search_terms_refused_with_a_400_page(signed_in, url):
    client, _ = signed_in
    response = client.get(url)
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "Nothing was searched" in html
    assert ("U+0000" in html) or ("U+202E" in html)


@pytest.mark.parametrize(
    "url", ["/?page=99999999999999999999", "/history?page=99999999999999999999", "/audit?page=-5"]
)
def test_huge_page_numbers_are_clamped(signed_in, url):
    client, _ = signed_in
    assert client.get(url).status_code == 200


def test_huge_event_cursors_are_clamped(signed_in, deployment):
    client, _ = signed_in
    url = f"/deployments/{deployment}/events.json"
    answer = client.get(f"{url}?after=99999999999999999999&limit=99999999999999999999")
    assert answer.status_code == 200 and answer.get_json()["events"] == []
    assert client.get(url, headers={"Last-Event-ID": "9" * 30}).status_code == 200


# --- the API --------------------------------------------------------------------------------


@pytest.fixture
def api(app, client, make_user):
    """An admin's API token on the test client."""
    make_user("robot", "admin")
    with app.app_context():
        user = db.session.scalar(select(User).where(User.username == "robot"))
        return ApiClient(client, create_token(user, "hostile text")[1])


def _api_deployment(api, guide_key: str) -> int:
    response = api.post("/api/v1/deployments", json={**DEPLOYMENT, "guide_key": guide_key})
    assert response.status_code == 201, response.get_json()
    return response.get_json()["id"]


@pytest.fixture
def api_deployment(app, api):
    return _api_deployment(api, "ams-failover-cluster")


def _api_refused(response, field: str, char: str) -> None:
    assert response.status_code == 422, response.get_json()
    body = response.get_json()
    assert field in body["errors"], body
    assert API_SAYS[char] in " ".join(body["errors"][field]), body


def _api_field(field: str) -> str:
    return re.sub(r"-(\d+)-", r".\1.", field)


@pytest.mark.parametrize("char", [NUL, BIDI], ids=["nul", "bidi"])
@pytest.mark.parametrize(("guide_key", "step_key", "field"), STEP_FIELDS, ids=map(_id, STEP_FIELDS))
def test_api_step_inputs_refused(ctx, api, guide_key, step_key, field, char):
    deployment = _api_deployment(api, guide_key)
    body = {
        k: (int(v) if k in INTEGER_INPUTS else v)
        for k, v in STEP_INPUTS[guide_key][step_key].items()
    }
    before = snapshot()
    body[field] = _corrupt(body.get(field, ""), char)
    url = f"/api/v1/deployments/{deployment}/steps/{step_key}/inputs"
    _api_refused(api.put(url, json=body), field, char)
    assert snapshot() == before


@pytest.mark.parametrize("char", [NUL, BIDI], ids=["nul", "bidi"])
@pytest.mark.parametrize(
    "field", ["name", "domain_fqdn", "kerberos_kdcs", "ca_bundle", "nodes.0.name", "nodes.1.host"]
)
def test_api_new_deployment_refused(ctx, api, field, char):
    body = {**DEPLOYMENT, "nodes": [dict(n) for n in DEPLOYMENT["nodes"]]}
    if field.startswith("nodes."):
        _, index, key = field.split(".")
        node = body["nodes"][int(index)]
        node[key] = _corrupt(node[key], char)
    else:
        body[field] = _corrupt(body.get(field, "") or "", char)
    before = snapshot()
    _api_refused(api.post("/api/v1/deployments", json=body), field, char)
    assert snapshot() == before


API_BODIES = {
    "run": (
        RunIn,
        {"username": "CORP\\operator", "password": "Passw0rd!", "fix": "install_ad_module"},
    ),
    "decision": (
        DecisionIn,
        {
            "decision": "exclude",
            "reason": "gone",
            "nodes": ["NODE3"],
            "username": "CORP\\op",
            "password": "Passw0rd!",
            "fix": "install_ad_module",
        },
    ),
}
API_FIELDS = [
    (route, name, char)
    for route, (_, body) in API_BODIES.items()
    for name in body
    if name != "decision"
    for char in ((NUL,) if name == "password" else (NUL, BIDI))
]


def test_api_request_schemas_were_enumerated():
    for route, (schema, body) in API_BODIES.items():
        strings = {n for n, f in schema().fields.items() if type(f).__name__ in {"String", "List"}}
        assert strings - {"decision"} <= set(body), route


@pytest.mark.parametrize(
    ("route", "field", "char"), API_FIELDS, ids=[f"{r}:{f}-{ord(c):x}" for r, f, c in API_FIELDS]
)
def test_api_run_and_decision_refused(ctx, api, api_deployment, route, field, char):
    body = {k: (list(v) if isinstance(v, list) else v) for k, v in API_BODIES[route][1].items()}
    if field == "nodes":
        body["nodes"] = [_corrupt("NODE3", char)]
        where = "nodes.0"
    else:
        body[field] = _corrupt(body[field], char)
        where = field
    before = snapshot()
    url = f"/api/v1/deployments/{api_deployment}/steps/prerequisites/{route}"
    _api_refused(api.post(url, json=body), where, char)
    assert snapshot() == before
