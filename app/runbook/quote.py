"""PowerShell literals for values that end up in a generated script.

Every string becomes a single-quoted literal. PowerShell treats the typographic quotes U+2018..U+201B
as single quotes too, so each of them is doubled like ' itself; nothing inside a single-quoted literal
is expanded. Control characters are refused outright (the validators never let them through).
"""

from __future__ import annotations

import re
import unicodedata
from typing import Any

SINGLE_QUOTES = "'\u2018\u2019\u201a\u201b"
IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,63}$")


class UnsafeValue(ValueError):
    """A value that cannot be written into a runbook."""


def quote(value: str) -> str:
    """A single-quoted PowerShell string literal."""
    if not isinstance(value, str):
        raise UnsafeValue(f"Not a string: {type(value).__name__}")
    for ch in value:
        if unicodedata.category(ch) in {"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"}:
            raise UnsafeValue(f"Control or invisible character U+{ord(ch):04X} in a runbook value.")
    return "'" + "".join(ch * 2 if ch in SINGLE_QUOTES else ch for ch in value) + "'"


def identifier(name: str) -> str:
    """A name used as a variable, parameter or hashtable key; refused unless plain."""
    if not IDENTIFIER.match(name or ""):
        raise UnsafeValue(f"Not a plain identifier: {name!r}")
    return name


def literal(value: Any) -> str:
    """Any JSON-like value as a PowerShell expression (strings quoted, lists @(...), dicts @{...})."""
    if value is None:
        return "$null"
    if isinstance(value, bool):
        return "$true" if value else "$false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if value != value or value in (float("inf"), float("-inf")):
            raise UnsafeValue("Not a finite number.")
        return repr(value)
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, list | tuple):
        return "@(" + ", ".join(literal(v) for v in value) + ")"
    if isinstance(value, dict):
        items = "; ".join(f"{quote(str(k))} = {literal(v)}" for k, v in value.items())
        return "@{" + items + "}"
    raise UnsafeValue(f"Cannot write a {type(value).__name__} into a runbook.")
