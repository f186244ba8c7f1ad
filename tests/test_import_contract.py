"""The package layering holds (issue 20): the contracts in pyproject.toml ([tool.importlinter])
pass, and no module imports part of the application inside a function, the usual way to hide an
import cycle. Imports needed only for type checking (under `if TYPE_CHECKING:`) are not imports
at run time and are allowed."""

import ast
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_import_contracts_hold():
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run(
        [str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stdout[-4000:] + result.stderr[-2000:]
    assert "broken" not in result.stdout.lower().split("contracts:")[-1].split("kept")[0]


def _nested_app_imports(path: Path) -> list[str]:
    """`import app...` / `from app... import` statements inside a function of `path`."""
    tree = ast.parse(path.read_text(), filename=str(path))
    found = []
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(func):
            if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] == "app":
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} from {node.module}")
            elif isinstance(node, ast.Import) and any(
                a.name.split(".")[0] == "app" for a in node.names
            ):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} import")
    return found


def test_no_function_imports_part_of_the_application():
    found = [
        hit for path in sorted((ROOT / "app").rglob("*.py")) for hit in _nested_app_imports(path)
    ]
    assert found == [], "\n".join(found)


def _test_module_imports(path: Path) -> list[str]:
    """Imports in `path` of a test module (tests/**/test_*.py), which pulls in its fixtures and may
    load it twice under two names; shared code belongs in helper modules and conftest fixtures."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        modules = [node.module or ""] if isinstance(node, ast.ImportFrom) else []
        modules += [a.name for a in node.names] if isinstance(node, ast.Import) else []
        for module in modules:
            parts = module.split(".")
            if parts[0] == "tests" and parts[-1].startswith("test_"):
                found.append(f"{path.relative_to(ROOT)}:{node.lineno} {module}")
    return found


def test_no_test_module_imports_another():
    found = [
        hit for path in sorted((ROOT / "tests").rglob("*.py")) for hit in _test_module_imports(path)
    ]
    assert found == [], "\n".join(found)
