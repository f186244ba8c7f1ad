"""The one secret-masking rule for everything the wizard outputs: pages, API, exports, events.

A value is hidden when its key names a secret (`is_secret_name`: a declared secret field, such as
a step's `secret_fields`, or a name made of a secret word), and a password written into text
(`Password=...`, `Pwd=...` in a connection string, in any case and spacing, quoted or not) has
its value masked wherever the text appears, even in a row written before the input rules refused
passwords. (The values of the secrets a running action holds are masked by the worker, which
knows them: app.execution.worker.redaction.)

Imports nothing of the app, Flask or the database, so every layer (models, events, the engine,
the remote layer) can apply the same rule.
"""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import Iterable
from typing import Any

MASK = "********"

# Whole words of a name (snake_case, kebab-case, camelCase or spaced) that make it a secret.
SECRET_WORDS = frozenset(
    {
        "password",
        "passwords",
        "passwd",
        "pass",
        "pwd",
        "passphrase",
        "secret",
        "secrets",
        "token",
        "tokens",
        "credential",
        "credentials",
        "apikey",
    }
)
# ...and "<qualifier> key" pairs: license_key, cloud_access_key, api_key, private_key.
SECRET_KEY_QUALIFIERS = frozenset({"license", "access", "api", "private", "secret", "account"})

_WORD = re.compile(r"[A-Z]+(?![a-z])|[A-Z]?[a-z]+|\d+")
# Password=value or Pwd=value: value "double-quoted" or 'single-quoted' (a doubled quote inside
# stays in the value), {braced} (ODBC), or bare up to the next ';' that starts another keyword=
# (a bare password with a ';' in it is masked whole) or the line end. An unclosed quote runs to
# the end of the text.
_CONNECTION_PASSWORD = re.compile(
    r"""(?P<key>(?:password|pwd)\s*=\s*)
        (?P<value>"(?:[^"]|"")*"?|'(?:[^']|'')*'?|\{(?:[^}]|\}\})*\}?
                  |[^;\r\n]*(?:;(?![^;=\r\n]*=)[^;\r\n]*)*)""",
    re.IGNORECASE | re.VERBOSE,
)


@functools.lru_cache(maxsize=4096)
def _words(name: str) -> tuple[str, ...]:
    return tuple(w.lower() for w in _WORD.findall(name))


def is_secret_name(name: object, declared: Iterable[str] = ()) -> bool:
    """Whether a key names a secret: one of `declared` (a step's secret_fields), or a name with a
    secret word (password, secret, token, credential...) or a "<qualifier> key" pair."""
    return _is_secret(str(name), frozenset(d.lower() for d in declared))


# Names that say something about a secret without holding one: has_private_key, secrets_held,
# credentials_wiped, secret_fields (a list of field names), token_id.
ABOUT_PREFIXES = frozenset({"has", "no", "is"})
ABOUT_SUFFIXES = frozenset(
    {"allowed", "wiped", "refused", "held", "fields", "names", "parameters", "count", "id"}
)


def _is_secret(text: str, declared: frozenset[str]) -> bool:
    if text.lower() in declared:
        return True
    words = _words(text)
    if len(words) > 1 and (words[0] in ABOUT_PREFIXES or words[-1] in ABOUT_SUFFIXES):
        return False
    if SECRET_WORDS.intersection(words):
        return True
    return any(a in SECRET_KEY_QUALIFIERS and b == "key" for a, b in itertools.pairwise(words))


def mask_text(text: str) -> str:
    """`text` with the value of every connection-string password masked (idempotent)."""
    if "=" not in text:
        return text
    return _CONNECTION_PASSWORD.sub(_masked_password, text)


def _masked_password(match: re.Match) -> str:
    """The keyword and MASK in the value's own quotes (so masking again changes nothing)."""
    value = match.group("value")
    opening = value[:1] if value[:1] in ('"', "'", "{") else ""
    closing = {'"': '"', "'": "'", "{": "}"}.get(opening, "")
    closed = closing if len(value) > 1 and value.endswith(closing) else ""
    return match.group("key") + opening + MASK + closed


def mask(value: Any, declared: Iterable[str] = ()) -> Any:
    """A copy of `value` for output: keys naming a secret dropped at any depth, text masked
    (mask_text); tuples become lists, anything else is returned as is."""
    return _mask(value, frozenset(d.lower() for d in declared))


def _mask(value: Any, declared: frozenset[str]) -> Any:
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {k: _mask(v, declared) for k, v in value.items() if not _is_secret(str(k), declared)}
    if isinstance(value, list | tuple):
        return [_mask(v, declared) for v in value]
    return value
