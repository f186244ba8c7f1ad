"""The one second-hop detector (app.remote.errors.is_second_hop) against what Windows prints.

The texts are Windows' own wording as the sources in app/remote/errors.py report it, in the shapes
our scripts surface them (an exception's message, a cmdlet's error record).
"""

import ast
from pathlib import Path
from types import SimpleNamespace

import pytest

from app.guides.shared import flow
from app.lab.context import SECOND_HOP_ERRORS, ScriptFailure
from app.lab.handlers.cluster import double_hop_guard
from app.remote import errors
from app.steps import ActionResult

# Only an identity that did not arrive produces these: they count from any command.
MISSING_IDENTITY = [
    'Exception calling "Open" with "0" argument(s): "Login failed for user \'NT AUTHORITY\\ANONYMOUS LOGON\'."',
    "Sqlcmd: Error: Microsoft ODBC Driver 17 for SQL Server : Login failed for user 'NT AUTHORITY\\ANONYMOUS LOGON'..",
    "Unable to contact the server. This may be because this server does not exist, it is currently down, or it does not have the Active Directory Web Services running.",
    'Exception calling "FindOne" with "0" argument(s): "An operations error occurred.\r\n"',
    "Connecting to remote server sql1 failed with the following error message : A specified logon session does not exist. It may already have been terminated.",
]
# A plain denial: the second hop only from a command that reaches past the node.
DENIALS = [
    "New-Cluster : Access is denied. (Exception from HRESULT: 0x80070005 (E_ACCESSDENIED))",
    "Test-Cluster : You do not have administrative privileges on the server 'AMS2'.",
    "There was an error adding node 'AMS2' to the cluster\n    You do not have administrative privileges on the server 'AMS2'.\n    Requested registry access is not allowed.",
    "copy-item : Access is denied",
    "Access to the path '\\\\fs1\\witness\\probe.txt' is denied.",
    "Access to a CIM resource was not available to the client.",
]
# Never the second hop: the identity arrived (or nothing was denied).
UNRELATED = [
    "Login failed for user 'CORP\\svc-ams$'.",
    "The scheduled task could not log on as CORP\\bob: the user name or password is incorrect (0x8007052E).",
    "The user name or password is incorrect.",
    "Cannot find path 'C:\\Temp\\missing.msi' because it does not exist.",
    "The system cannot find the file specified.",
    "A network-related or instance-specific error occurred while establishing a connection to SQL Server. The server was not found or was not accessible.",
    'Cannot open database "AccessManager" requested by the login. The login failed.',
    "",
    None,
]


@pytest.mark.parametrize("text", MISSING_IDENTITY)
def test_a_missing_identity_counts_from_any_command(text):
    assert errors.is_second_hop(text)
    assert errors.is_second_hop(text, reaches_past_node=True)
    assert errors.mentions_access_denied(text) == errors.ACCESS_DENIED


@pytest.mark.parametrize("text", DENIALS)
def test_a_bare_denial_counts_only_past_the_node(text):
    assert errors.is_second_hop(text, reaches_past_node=True)
    assert not errors.is_second_hop(text)
    assert errors.mentions_access_denied(text) == errors.ACCESS_DENIED


@pytest.mark.parametrize("text", UNRELATED)
def test_other_failures_never_count(text):
    assert not errors.is_second_hop(text, reaches_past_node=True)
    assert errors.mentions_access_denied(text) is None


@pytest.mark.parametrize("resource", sorted(SECOND_HOP_ERRORS))
def test_the_labs_second_hop_texts_are_recognised(resource):
    """The lab's rule second_hop fails with these; a share names no anonymous logon, as on Windows."""
    text = SECOND_HOP_ERRORS[resource]
    assert errors.is_second_hop(text, reaches_past_node=True)
    assert errors.is_second_hop(text) == (resource != "share")


def test_the_labs_cluster_cmdlet_refusal_is_recognised():
    ctx = SimpleNamespace(auth="ntlm", can_reach=lambda resource: False)
    with pytest.raises(ScriptFailure) as failure:
        double_hop_guard(ctx, "New-Cluster", "AMSCLUSTER")
    assert errors.is_second_hop(str(failure.value))


@pytest.mark.parametrize(
    ("script", "message", "expected"),
    [
        ("task_run", "Access is denied.", True),
        ("cluster_create", DENIALS[0], True),  # over CredSSP it runs by its own name
        ("cluster_validate", DENIALS[1], True),
        ("ams_detect", "Access is denied.", False),  # a local read: the node's own rights
        ("cluster_detect", DENIALS[0], False),
        ("ams_detect", MISSING_IDENTITY[0], True),
        ("task_run", UNRELATED[1], False),
    ],
)
def test_the_guides_read_a_failed_action_with_the_same_detector(script, message, expected):
    result = ActionResult("AMS1", script, "failed", None, "access_denied", message)
    assert flow.is_double_hop(result) is expected


def _literal_scripts(tree: ast.AST) -> set[str]:
    """Scripts a guide module sends by app.wizard.route: the script argument of as_operator /
    as_service_account (a literal or a module constant), and the script of a fix marked
    `"route": "operator"`."""
    constants = {
        target.id: node.value.value
        for node in ast.walk(tree)
        if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
        for target in node.targets
        if isinstance(target, ast.Name)
    }
    found = set()
    for node in ast.walk(tree):
        if (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("as_operator", "as_service_account")
            and len(node.args) >= 2
        ):
            arg = node.args[1]
            if isinstance(arg, ast.Constant):
                found.add(arg.value)
            elif isinstance(arg, ast.Name) and arg.id in constants:
                found.add(constants[arg.id])
        if isinstance(node, ast.Dict):
            pairs = {
                k.value: v.value
                for k, v in zip(node.keys, node.values, strict=True)
                if isinstance(k, ast.Constant) and isinstance(v, ast.Constant)
            }
            if pairs.get("route") == "operator" and "script" in pairs:
                found.add(pairs["script"])
    return found


def test_every_script_the_guides_send_past_the_node_is_known_to_flow():
    guides = Path(flow.__file__).resolve().parents[1]
    sent = set()
    for path in sorted(guides.rglob("*.py")):
        sent |= _literal_scripts(ast.parse(path.read_text(encoding="utf-8")))
    assert {"cluster_create", "prereq_sql_facts", "prereq_set_gmsa_principals"} <= sent
    assert sent <= flow.REACHES_PAST_NODE, sent - flow.REACHES_PAST_NODE
