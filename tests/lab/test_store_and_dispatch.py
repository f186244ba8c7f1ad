"""LabStore persistence and the script catalogue's recognition rules (no network)."""

import json

import pytest

from app.lab.dispatch import ScriptCatalog, bind, normalise, param_names
from app.lab.files import resolve_path
from app.lab.store import LabStore
from app.remote.scripts import strip_comments
from tests.lab.conftest import SCRIPTS, script_text


def test_read_is_a_snapshot(store):
    snapshot = store.read()
    snapshot["nodes"]["node1"]["files"]["x"] = 1
    assert store.read()["nodes"]["node1"]["files"] == {}


def test_transaction_saves_atomically_and_other_instances_see_it(store):
    with store.transaction() as state:
        state["faults"]["slow"] = {"node1": 2}
    other = LabStore(store.path)
    assert other.read()["faults"]["slow"] == {"node1": 2}
    assert json.loads(store.path.read_text())["faults"]["slow"] == {"node1": 2}
    assert not list(store.folder.glob(".tmp-*")), "no temp file left behind"


def test_failed_transaction_changes_nothing(store):
    with pytest.raises(RuntimeError), store.transaction() as state:
        state["faults"]["unreachable"] = ["node1"]
        raise RuntimeError("boom")
    assert store.read()["faults"] == {}


def test_blobs_are_content_addressed(store):
    name = store.put_blob(b"abc")
    assert store.blob_path(name).read_bytes() == b"abc"
    assert store.put_blob(b"abc") == name


@pytest.mark.parametrize(
    ("text", "names"),
    [
        ("param(\n [string]$Name,\n [int]$Count = 1\n)\n$Name", ("Name", "Count")),
        ("[CmdletBinding()]\nparam([Parameter(Mandatory)][string[]]$A = @('x,y'), $B)", ("A", "B")),
        ("# header\n<# help #>\nParam ($Only)", ("Only",)),
        ("Function F { param($Inner) }\n$x = 1", ()),
    ],
)
def test_param_names(text, names):
    assert param_names(text) == names


def test_bind_maps_positional_to_declared_order_and_names_case_insensitively():
    params, args = bind(("Name", "Count"), [("count", 2), (None, "Ada")])
    assert params == {"Count": 2, "Name": "Ada"} and args == ["Ada"]


def test_catalog_recognises_exact_text_only():
    catalog = ScriptCatalog([SCRIPTS])
    text = script_text("lab_echo")
    assert catalog.match(text).name == "lab_echo"
    assert catalog.match(text.replace("\n", "\r\n")).name == "lab_echo"
    assert catalog.match(text.replace("Hello", "Hi")) is None
    assert catalog.match(text + "\nGet-Date") is None
    assert {"pypsrp.copy", "pypsrp.fetch", "lab_echo"} <= set(catalog.names)


def test_catalog_knows_pypsrp_scripts_as_sent():
    import importlib.resources

    raw = importlib.resources.files("pypsrp.pwsh_scripts").joinpath("copy.ps1").read_text()
    assert ScriptCatalog().match(strip_comments(raw)).name == "pypsrp.copy"
    assert normalise("\ufeffa\r\nb\n") == "a\nb"


@pytest.mark.parametrize(
    ("raw", "expand", "expected"),
    [
        ("C:/Temp/../Data/x.bin", False, "C:\\Data\\x.bin"),
        ("c:\\a.txt", False, "C:\\a.txt"),
        ("x.txt", False, "C:\\Users\\bob\\Documents\\x.txt"),
        ("%TEMP%\\y", True, "C:\\Users\\bob\\AppData\\Local\\Temp\\y"),
        ("%TEMP%\\y", False, "C:\\Users\\bob\\Documents\\%TEMP%\\y"),
    ],
)
def test_resolve_path(raw, expand, expected):
    assert resolve_path(raw, "CORP\\bob", expand) == expected
