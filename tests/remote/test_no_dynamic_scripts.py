"""Vetted scripts only: every .ps1 opens with a param() block and parses; Python never builds script text."""

import ast
import re
from pathlib import Path

import pytest

from tests.remote.ps_ast import PARSER

ROOT = Path(__file__).resolve().parents[2]
APP = ROOT / "app"
SCRIPTS = sorted((APP / "scripts").glob("*.ps1")) + sorted(
    (ROOT / "tests" / "execution" / "scripts").glob("*.ps1")
)
RUNNER = APP / "remote" / "runner.py"
SCRIPT_LOADERS = {"load", "copy_script"}
FORBIDDEN_CALLS = {"execute_ps", "execute_cmd"}
VETTED = "vetted_text"  # the only variable runner.py may hand to add_script


def _rel(path: Path) -> str:
    return str(path.relative_to(ROOT))


def test_there_are_scripts_to_check():
    assert any(p.parent == APP / "scripts" for p in SCRIPTS)


@pytest.mark.parametrize("path", SCRIPTS, ids=_rel)
def test_script_opens_with_a_param_block(path):
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    code = [line.strip() for line in lines if line.strip() and not line.strip().startswith("#")]
    assert code, f"{path.name} is empty"
    while code and re.match(r"^\[(CmdletBinding|OutputType)\b.*\]$", code[0], re.I):
        code.pop(0)  # script-level attributes belong to the param() block
    assert code, f"{path.name} has no param() block"
    assert re.match(r"(?i)^param\s*\(", code[0]), (
        f"{path.name}: the first statement must be param(...)"
    )
    text = path.read_text(encoding="utf-8-sig")
    assert "<#" not in text.split("param", 1)[0], "block comments before param() are not allowed"


@pytest.mark.parametrize("path", SCRIPTS, ids=_rel)
def test_script_parses(path):
    tree = PARSER.parse(path.read_bytes())
    assert not tree.root_node.has_error, f"{path.name} does not parse as PowerShell"


def test_parser_rejects_broken_script():
    assert PARSER.parse(b"param(\n  [string]$Name\n\nif ($x) { ").root_node.has_error


def _python_files():
    return sorted(p for p in APP.rglob("*.py") if "__pycache__" not in p.parts)


def _is_loader(node: ast.AST) -> bool:
    """scripts.load(name) or scripts.copy_script()."""
    return (
        isinstance(node, ast.Call)
        and isinstance(node.func, ast.Attribute)
        and node.func.attr in SCRIPT_LOADERS
        and isinstance(node.func.value, ast.Name)
        and node.func.value.id == "scripts"
    )


def _loader_names(tree: ast.AST) -> set[str]:
    """Names that are only ever assigned from a script loader in this module."""
    assigned: dict[str, list[ast.AST]] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Assign):
            for target in node.targets:
                if isinstance(target, ast.Name):
                    assigned.setdefault(target.id, []).append(node.value)
    return {name for name, values in assigned.items() if all(_is_loader(v) for v in values)}


def test_add_script_only_takes_loaded_script_text():
    offenders = []
    for path in _python_files():
        tree = ast.parse(path.read_text(encoding="utf-8"), str(path))
        loaded = _loader_names(tree)
        for node in ast.walk(tree):
            if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
                continue
            if node.func.attr in FORBIDDEN_CALLS and path.parts[-3:-1] != ("app", "lab"):
                offenders.append(f"{_rel(path)}:{node.lineno} calls {node.func.attr}()")
            if node.func.attr != "add_script":
                continue
            arg = node.args[0] if node.args else None
            ok = path == RUNNER and (
                _is_loader(arg) or (isinstance(arg, ast.Name) and arg.id in loaded | {VETTED})
            )
            if not ok:
                offenders.append(
                    f"{_rel(path)}:{node.lineno} add_script({ast.unparse(arg) if arg else ''})"
                )
    assert not offenders, "script text must come from app.remote.scripts:\n" + "\n".join(offenders)


def test_runner_script_text_comes_from_the_loader():
    """In runner.py `vetted_text` is only ever assigned from scripts.load() and passed on unchanged."""
    tree = ast.parse(RUNNER.read_text(encoding="utf-8"))
    assigned = [
        n.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Assign)
        and any(isinstance(t, ast.Name) and t.id == VETTED for t in n.targets)
    ]
    assert assigned and all(_is_loader(v) for v in assigned)
    for node in ast.walk(tree):
        if isinstance(node, ast.AugAssign) and getattr(node.target, "id", None) == VETTED:
            pytest.fail("vetted_text modified in place")
        if isinstance(node, ast.Call) and getattr(node.func, "attr", None) == "_invoke":
            assert any(isinstance(a, ast.Name) and a.id == VETTED for a in node.args)
        if isinstance(node, (ast.JoinedStr, ast.BinOp)) and VETTED in ast.unparse(node):
            pytest.fail("script text built by formatting or concatenation")


def test_all_scripts_lists_every_file():
    from app.remote import scripts

    names = scripts.all_scripts()
    for path in (APP / "scripts").glob("*.ps1"):
        assert names[path.stem] == path
        assert scripts.load(path.stem) == path.read_text(encoding="utf-8-sig")
