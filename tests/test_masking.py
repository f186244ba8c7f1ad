"""The one secret-masking rule (app.masking): names, nested values, connection-string passwords."""

import ast
import sys
from pathlib import Path

import pytest
from wtforms.fields.core import UnboundField

from app.guides import GUIDES
from app.masking import MASK, is_secret_name, mask, mask_text

SECRET = "s3cr;t-V4lue"


@pytest.mark.parametrize(
    "name",
    [
        "password",
        "Password",
        "winrm_password",
        "TaskPassword",
        "db-pass",
        "PWD",
        "passphrase",
        "client_secret",
        "api_token",
        "refresh-tokens",
        "credential",
        "StoredCredentials",
        "license_key",
        "cloud_access_key",
        "apiKey",
        "APIKey",
        "private key",
    ],
)
def test_secret_names(name):
    assert is_secret_name(name)


@pytest.mark.parametrize(
    "name",
    [
        "passed",
        "bypass",
        "compass",
        "step_key",
        "key",
        "sql_connection_string",
        "principals",
        "access_point_name",
        "cloud_account",
        "tokenizer",
        "keyword",
        # names about a secret, not holding one (facts and bookkeeping the records must keep)
        "has_private_key",
        "secrets_held",
        "credentials_wiped",
        "credentials_refused",
        "secret_fields",
        "secret_parameters",
        "token_id",
        "no_stored_passwords",
    ],
)
def test_ordinary_names(name):
    assert not is_secret_name(name)


def test_declared_names_are_secret_whatever_they_are_called():
    assert not is_secret_name("witness_sas")
    assert is_secret_name("witness_sas", declared=("witness_sas",))
    assert is_secret_name("Witness_SAS", declared=("witness_sas",))
    assert mask({"witness_sas": SECRET, "share": "x"}, ("witness_sas",)) == {"share": "x"}


def _form_fields(step) -> list[str]:
    form = step.form_class
    return [n for n in dir(form) if isinstance(getattr(form, n, None), UnboundField)]


STEPS = [(g.key, s) for g in GUIDES.values() for s in g.steps]


@pytest.mark.parametrize("step", [s for _, s in STEPS], ids=[f"{g}:{s.key}" for g, s in STEPS])
def test_the_rule_knows_every_declared_secret_field_and_no_other_input(step):
    """Events and results carry no step context: the names alone must say what is secret."""
    for name in step.secret_fields:
        assert is_secret_name(name), name
    fields = _form_fields(step) if step.form_class else []
    assert [f for f in fields if is_secret_name(f)] == sorted(step.secret_fields)


CONNECTION_STRINGS = [
    ("Server=SQL1;Database=AMS;Password=hunter2", "Server=SQL1;Database=AMS;Password=" + MASK),
    ("Server=SQL1;password=hunter2;Database=AMS", f"Server=SQL1;password={MASK};Database=AMS"),
    ("Server=SQL1;PWD=hunter2", f"Server=SQL1;PWD={MASK}"),
    ("Server=SQL1;Pwd=hun;ter;2;Database=AMS", f"Server=SQL1;Pwd={MASK};Database=AMS"),
    ("Server=SQL1; Pwd = hunter2 ; Database=AMS", f"Server=SQL1; Pwd = {MASK}; Database=AMS"),
    ('Server=SQL1;Password = "a;b";Database=AMS', f'Server=SQL1;Password = "{MASK}";Database=AMS'),
    ("Server=SQL1;Password='a;b''c';Database=AMS", f"Server=SQL1;Password='{MASK}';Database=AMS"),
    ('Server=SQL1;Password="a""b;c"', f'Server=SQL1;Password="{MASK}"'),
    ("Driver={ODBC};Pwd={a;b};Database=AMS", f"Driver={{ODBC}};Pwd={{{MASK}}};Database=AMS"),
    ('Server=SQL1;Password="never closed;Database=AMS', f'Server=SQL1;Password="{MASK}'),
    ("Server=SQL1;User ID=sa;Password=", f"Server=SQL1;User ID=sa;Password={MASK}"),
    (
        "Data Source=SQL1;OldPassword=x;Initial Catalog=A",
        f"Data Source=SQL1;OldPassword={MASK};Initial Catalog=A",
    ),
    (
        "Parameters\\ConnectionString is 'Server=SQL1;Password=hunter2'.",
        f"Parameters\\ConnectionString is 'Server=SQL1;Password={MASK}",
    ),
    ("line one\nServer=S;Pwd=x\nline three", f"line one\nServer=S;Pwd={MASK}\nline three"),
    ("Server=SQL1;Database=AMS;Integrated Security=true", None),
    ("no connection string, a password is not = anything here", None),
    ("-PrincipalsAllowedToRetrieveManagedPassword AMS1$", None),
]


@pytest.mark.parametrize(("text", "masked"), CONNECTION_STRINGS)
def test_connection_string_passwords_are_masked(text, masked):
    assert mask_text(text) == (text if masked is None else masked)


@pytest.mark.parametrize("text", [t for t, _ in CONNECTION_STRINGS])
def test_masking_twice_changes_nothing_more(text):
    once = mask_text(text)
    assert mask_text(once) == once


def test_nested_values_lose_secret_keys_and_passwords_at_any_depth():
    value = {
        "inputs": {"sql_connection_string": f"Server=S;Pwd={SECRET}", "license_key": SECRET},
        "checks": [
            {"evidence": f"uses 'Server=S;Password=\"{SECRET}\"'.", "status": "fail"},
            ("tuple", {"db_password": SECRET}),
        ],
        "count": 3,
        "when": None,
    }
    masked = mask(value)
    assert SECRET not in repr(masked) and "s3cr" not in repr(masked)
    assert masked["inputs"] == {"sql_connection_string": f"Server=S;Pwd={MASK}"}
    assert masked["checks"][0]["evidence"] == f"uses 'Server=S;Password=\"{MASK}\"'."
    assert masked["checks"][1] == ["tuple", {}]
    assert masked["count"] == 3 and masked["when"] is None
    assert value["inputs"]["license_key"] == SECRET  # a copy: the value itself is untouched


def test_the_rule_imports_nothing_of_the_app():
    """Models, events, the engine and the remote layer may all apply it."""
    tree = ast.parse(Path("app/masking.py").read_text())
    modules = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    roots = {m.split(".")[0] for m in modules if m}
    assert roots <= set(sys.stdlib_module_names) | {"__future__"}
