"""Where script text comes from: our vetted files, pypsrp's packaged copy script, no test switch."""

import ast
from pathlib import Path

from pypsrp._utils import get_pwsh_script  # a test may check against pypsrp's own (private) helper

from app.lab.dispatch import ScriptCatalog
from app.remote import scripts

APP = Path(__file__).resolve().parents[2] / "app"


def _modules():
    for path in sorted(APP.rglob("*.py")):
        yield path, ast.parse(path.read_text(encoding="utf-8"))


def test_copy_script_is_pypsrps_own_text_as_sent():
    """The lab knows pypsrp's copy.ps1 by its packaged text; ours is that text without comments."""
    text = scripts.copy_script()
    assert ScriptCatalog().match(text).name == "pypsrp.copy"
    lines = text.splitlines()
    assert lines and all(line == line.strip() and line for line in lines)
    assert not any(line.startswith(("#", "<#")) for line in lines)


def test_copy_script_is_byte_for_byte_what_pypsrp_itself_sends():
    """Not only what the lab accepts (its catalogue strips comments with the same function): the
    text pypsrp's Client.copy sends, as its own helper prepares it."""
    assert scripts.copy_script() == get_pwsh_script("copy.ps1")


def test_no_private_pypsrp_module_is_imported():
    private = [
        f"{path.relative_to(APP)}: {node.module}"
        for path, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("pypsrp._")
    ]
    assert not private


def test_no_product_module_reads_an_amsw_switch():
    """AMSW_* settings are read in config.py only (outside app/); tests register scripts in code."""
    named = [
        f"{path.relative_to(APP)}:{node.lineno}: {node.value}"
        for path, tree in _modules()
        for node in ast.walk(tree)
        if isinstance(node, ast.Constant)
        and isinstance(node.value, str)
        and node.value.startswith("AMSW_")
    ]
    assert not named
