"""The exported runbook parses, carries the vetted scripts byte for byte, and holds no secret."""

import re

import pytest
import tree_sitter_powershell
from tree_sitter import Language, Parser

from app.remote.scripts import SCRIPTS_DIR
from app.runbook.quote import UnsafeValue, literal, quote
from tests.api.conftest import DEPLOYMENT
from tests.conftest import login

PARSER = Parser(Language(tree_sitter_powershell.language()))
FUNCTION = re.compile(rb"^function Invoke-Amsw_([A-Za-z0-9_]+) \{\n", re.MULTILINE)
INPUTS = {
    "prerequisites": {
        "ams_version": "2.1.1069.0",
        "gmsa": "CORP\\amsgmsa$",
        "sql_connection_string": (
            "Server=sql01.corp.example.com;Database=AMS;Integrated Security=true;"
            "Application Name=o'brien\u2019s"
        ),
        "license_key": "LICENSE-" + "Q" * 30,
    },
    "base_cluster": {"cluster_name": "AMSCL", "cluster_address": "10.0.0.50"},
    "quorum": {
        "witness_type": "cloud",
        "cloud_account": "obrien",  # Azure's rule: 3-24 lowercase letters and digits
        "cloud_access_key": "AK-s3cr3t-value",
    },
    "install_ams": {"certificate_thumbprint": "AB" * 20},
    "cluster_role": {"access_point_name": "AMS", "access_point_address": "10.0.0.51"},
    "failover_test": {"move_timeout": 90},
}
SECRETS = ("LICENSE-" + "Q" * 30, "AK-s3cr3t-value", "WinRM-Pa55!")


def functions(text: bytes) -> dict[str, bytes]:
    """Each Invoke-Amsw_<name> body, cut at the closing brace the builder writes after the text."""
    found = {}
    for match in FUNCTION.finditer(text):
        name = match.group(1).decode()
        start = match.end()
        end = text.index(b"\n}\n", start + len(_vetted(name)) - 1)
        found[name] = text[start:end]
    return found


def _vetted(name: str) -> bytes:
    return (SCRIPTS_DIR / f"{name}.ps1").read_bytes()


def _errors(node, out):
    if node.type == "ERROR" or node.is_missing:
        out.append((node.start_point, node.text[:60]))
    for child in node.children:
        _errors(child, out)
    return out


@pytest.fixture
def configured(api, deployment_id):
    for key, body in INPUTS.items():
        response = api.put(f"/api/v1/deployments/{deployment_id}/steps/{key}/inputs", json=body)
        assert response.status_code == 200, (key, response.get_json())
    return deployment_id


def _fetch(api, path: str) -> bytes:
    response = api.get(path)
    assert response.status_code == 200, response.get_data(as_text=True)[:300]
    assert response.headers["Content-Disposition"].startswith("attachment;")
    data = response.get_data()
    assert data.startswith("\ufeff".encode())
    return data[3:]


@pytest.mark.parametrize("step", [None, *INPUTS])
def test_runbook_parses_and_functions_are_the_vetted_scripts(api, configured, step):
    path = f"/api/v1/deployments/{configured}/runbook.ps1"
    if step:
        path = f"/api/v1/deployments/{configured}/steps/{step}/runbook.ps1"
    text = _fetch(api, path)
    tree = PARSER.parse(text)
    assert not tree.root_node.has_error, _errors(tree.root_node, [])[:3]
    bodies = functions(text)
    assert bodies, "no vetted script in the runbook"
    for name, body in bodies.items():
        assert body == _vetted(name), name
    used = set(re.findall(rb"Script = '([a-z0-9_]+)'", text))
    used |= set(re.findall(rb"Get-AmswScriptText -Script '([a-z0-9_]+)'", text))  # task payloads
    assert {u.decode() for u in used} == set(bodies)
    for secret in SECRETS:
        assert secret.encode() not in text
    assert text.index(b"\nStart-Transcript") < text.index(b"\nfunction Invoke-Amsw_")


def test_runbook_values_are_parameters_and_secrets_are_prompted(api, configured):
    text = _fetch(api, f"/api/v1/deployments/{configured}/runbook.ps1").decode()
    assert "[string]$BaseCluster_ClusterName = 'AMSCL'," in text
    assert "[int]$FailoverTest_MoveTimeout = 90," in text
    assert "[string]$Quorum_CloudAccount = 'obrien'," in text
    assert "Application Name=o''brien\u2019\u2019s'," in text  # quotes doubled, as typed
    assert "'Name' = $BaseCluster_ClusterName" in text  # inside the task's Parameters
    assert "Script = 'task_run'" in text
    assert "'ScriptText' = (Get-AmswScriptText -Script 'cluster_create')" in text
    assert "'TaskUser' = $AmswCredential.UserName" in text
    assert "'TaskPassword' = $AmswCredential.Password" in text
    assert "$AmswCredential = Get-Credential" in text
    assert "$AmswSecrets['cloud_access_key'] = Read-Host -AsSecureString" in text
    assert "'AccessKey' = $AmswSecrets['cloud_access_key']" in text


def test_each_change_is_followed_by_its_verification(api, configured):
    text = _fetch(api, f"/api/v1/deployments/{configured}/steps/base_cluster/runbook.ps1").decode()
    create = text.index("-Title 'Create the cluster' -Actions")
    verify = text.index("-Title 'Verify: Verify the new cluster' -Actions")
    guard = text.index("if (Confirm-AmswChange -Title 'Create the cluster')")
    assert guard < create < verify
    failover = _fetch(api, f"/api/v1/deployments/{configured}/steps/failover_test/runbook.ps1")
    blocks = failover.decode().split("if (Confirm-AmswChange")[1:]
    assert blocks and all("-Title 'Verify: " in block for block in blocks)


def test_runbook_download_from_the_screens(app, client, make_user, api, configured):
    login(client, make_user("rita", "reviewer"))
    response = client.get(f"/deployments/{configured}/runbook.ps1")
    assert response.status_code == 200
    assert not PARSER.parse(response.get_data()[3:]).root_node.has_error
    assert client.get(f"/deployments/{configured}/steps/nope/runbook.ps1").status_code == 404


def test_runbook_of_an_unconfigured_deployment_still_parses(api, deployment_id):
    text = _fetch(api, f"/api/v1/deployments/{deployment_id}/runbook.ps1")
    assert not PARSER.parse(text).root_node.has_error
    assert b"Write-Warning" in text


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("plain", "'plain'"),
        ("it's", "'it''s'"),
        ("\u2018a\u2019\u201a\u201b", "'\u2018\u2018a\u2019\u2019\u201a\u201a\u201b\u201b'"),
        ("$(Remove-Item C:\\)", "'$(Remove-Item C:\\)'"),
        ('"; exit', "'\"; exit'"),
        ("", "''"),
    ],
)
def test_quote_makes_single_quoted_literals(value, expected):
    assert quote(value) == expected
    snippet = f"$x = {quote(value)}\n".encode()
    tree = PARSER.parse(snippet)
    assert not tree.root_node.has_error
    strings = [n for n in _walk(tree.root_node) if n.type == "verbatim_string_characters"]
    assert len(strings) == 1 and strings[0].text == expected.encode()


def _walk(node):
    yield node
    for child in node.children:
        yield from _walk(child)


@pytest.mark.parametrize("value", ["a\nb", "a\rb", "nul\x00", "bidi\u202e", "ls\u2028"])
def test_quote_refuses_control_characters(value):
    with pytest.raises(UnsafeValue):
        quote(value)


def test_literals_for_structures():
    assert literal(["a", 1, True, None]) == "@('a', 1, $true, $null)"
    assert literal({"k": "v'"}) == "@{'k' = 'v'''}"
    with pytest.raises(UnsafeValue):
        literal(float("nan"))


def test_reviewer_token_may_export_the_runbook(client, make_token, api):
    deployment_id = api.post("/api/v1/deployments", json=DEPLOYMENT).get_json()["id"]
    headers = {"Authorization": f"Bearer {make_token('reviewer')}"}
    response = client.get(f"/api/v1/deployments/{deployment_id}/runbook.ps1", headers=headers)
    assert response.status_code == 200


FARM_INPUTS = {
    "prerequisites": INPUTS["prerequisites"] | {"ams_version": "3.0.1638.0"},
    "first_node": {"certificate_thumbprint": "CD" * 20, "https_port": 443},
    "host_config": {"external_host_name": "ams.corp.example.com"},
    "ip_detection": {"balancer_layer": "application", "known_proxies": "10.0.0.60"},
    "farm_test": {"balancer_address": "ams.corp.example.com"},
}


def test_the_farm_guide_has_a_runbook_of_its_own(api):
    """A load-balancer deployment's runbook: its own steps' vetted scripts, parsed, no secret."""
    created = api.post("/api/v1/deployments", json={**DEPLOYMENT, "guide_key": "ams-load-balancer"})
    assert created.status_code == 201, created.get_json()
    farm = created.get_json()["id"]
    for key, body in FARM_INPUTS.items():
        response = api.put(f"/api/v1/deployments/{farm}/steps/{key}/inputs", json=body)
        assert response.status_code == 200, (key, response.get_json())
    text = _fetch(api, f"/api/v1/deployments/{farm}/runbook.ps1")
    tree = PARSER.parse(text)
    assert not tree.root_node.has_error, _errors(tree.root_node, [])[:3]
    bodies = functions(text)
    for name, body in bodies.items():
        assert body == _vetted(name), name
    assert {"lb_health_probe", "lb_host_config_read"} <= set(bodies), sorted(bodies)
    assert not {"cluster_create", "role_create", "quorum_set"} & set(bodies)
    assert b"LICENSE-" not in text
