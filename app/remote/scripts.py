"""Vetted PowerShell scripts, loaded by name from app/scripts/<name>.ps1 and never built from strings.

Script text is read once and cached. A name that is not the stem of a file in the scripts folder (or
in an extra folder a test registers with `register_dir`) is refused, so no caller can run text of its
own making: user values reach a script only through `add_parameters`.
"""

from __future__ import annotations

import functools
import re
import threading
from importlib import resources
from pathlib import Path

SCRIPTS_DIR = Path(__file__).resolve().parent.parent / "scripts"
_NAME = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_lock = threading.Lock()
_cache: dict[str, str] = {}
_extra_dirs: list[Path] = []
PYPSRP_SCRIPTS = "pypsrp.pwsh_scripts"  # package data of the installed pypsrp (never copied here)


class UnknownScript(LookupError):
    """The name does not match a vetted script file."""


def register_dir(path: str | Path) -> None:
    """Add a folder of vetted scripts: the test processes and test workers register their test-only
    scripts with this (tests/execution/testscripts.py); the product registers none."""
    folder = Path(path).resolve()
    with _lock:
        if folder not in _extra_dirs:
            _extra_dirs.append(folder)


def _folders() -> list[Path]:
    return [SCRIPTS_DIR, *_extra_dirs]


def _find(name: str) -> Path:
    if not _NAME.match(name or "") or name.endswith(".ps1"):
        raise UnknownScript(f"Not a vetted script name: {name!r}")
    for folder in _folders():
        path = folder / f"{name}.ps1"
        if path.is_file() and path.resolve().parent == folder.resolve():
            return path
    raise UnknownScript(f"No vetted script named {name!r} in {', '.join(map(str, _folders()))}")


def load(name: str) -> str:
    """The exact text of the vetted script `name` (cached after the first read)."""
    with _lock:
        text = _cache.get(name)
    if text is not None:
        return text
    text = _find(name).read_text(encoding="utf-8-sig")
    with _lock:
        _cache[name] = text
    return text


def expand_parameters(name: str, params: dict) -> dict:
    """Parameters as sent: `task_run` also receives the vetted text of the script it runs, loaded
    here by name (never built), so one generic wrapper serves every script."""
    if name != "task_run":
        return params
    inner = str(params.get("ScriptName") or "")
    if inner == "task_run":
        raise UnknownScript("task_run cannot run itself")
    return {**params, "ScriptText": load(inner)}


def all_scripts() -> dict[str, Path]:
    """Every vetted script by name; app/scripts wins over extra folders on a name clash."""
    found: dict[str, Path] = {}
    for folder in reversed(_folders()):
        for path in sorted(folder.glob("*.ps1")):
            found[path.stem] = path
    return dict(sorted(found.items()))


@functools.cache
def copy_script() -> str:
    """pypsrp's own file-copy script, as its Client.copy sends it (the only script not ours we run).

    Read from pypsrp's package data rather than run through Client.copy, which copies the same way
    but opens a transport of its own (not this node's Connection, with its Kerberos cache and CA
    bundle), reports no progress and folds the node's error records into one exception text."""
    raw = resources.files(PYPSRP_SCRIPTS).joinpath("copy.ps1").read_text(encoding="utf-8-sig")
    return strip_comments(raw)


def strip_comments(text: str) -> str:
    """The script's lines trimmed, without blank lines, `#` lines and `<# ... #>` blocks (a block
    opens on a line starting `<#` and closes on one ending `#>`), as pypsrp sends its scripts."""
    kept, in_block = [], False
    for line in (raw.strip() for raw in text.splitlines()):
        if in_block:
            in_block = not line.endswith("#>")
        elif line.startswith("<#"):
            in_block = True
        elif line and not line.startswith("#"):
            kept.append(line)
    return "\n".join(kept)


def clear_cache() -> None:
    """Forget cached texts (tests that rewrite a script file)."""
    with _lock:
        _cache.clear()
