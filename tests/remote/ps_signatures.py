"""Windows PowerShell 5.1 parameter binding by name, over app/lab/catalogue/cmdlets.json.

`resolve` follows the 5.1 binder's rules for a written `-Name`: an exact parameter name or
alias wins; otherwise the name is a prefix, which must select one parameter (names and
aliases both count); when several match, the cmdlet's own parameters are preferred over the
common, ShouldProcess and transaction ones, and if that still leaves more than one the
binder stops with AmbiguousParameter.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import cache

from app.lab import catalogue

# Bound by the engine, not declared by the cmdlet: they lose a prefix tie to a declared one.
ENGINE_PARAMETERS = frozenset({"whatif", "confirm", "usetransaction"})


@dataclass(frozen=True)
class Resolution:
    """The outcome of binding one written parameter name."""

    written: str
    parameter: str | None  # canonical name when bound
    problem: str | None  # why Windows PowerShell 5.1 refuses it


class Signature:
    """The 5.1 parameters of one cmdlet: names, aliases and common parameters."""

    def __init__(self, name: str, entry: dict, common: list[str], common_aliases: dict):
        self.name = name
        self.module = entry.get("module", "")
        self.declared: dict[str, str] = {}
        for params in entry.get("parameter_sets", {}).values():
            for param in params:
                self.declared.setdefault(param.lower(), param)
        for param in entry.get("parameters_not_in_syntax", []):
            self.declared.setdefault(param.lower(), param)
        self.common: dict[str, str] = {}
        self.aliases: dict[str, str] = {}
        for param, aliases in entry.get("aliases", {}).items():
            for alias in aliases:
                self.aliases.setdefault(alias.lower(), param)
        if entry.get("common", True):
            for param in common:
                self.common[param.lower()] = param
                for alias in common_aliases.get(param, []):
                    self.aliases.setdefault(alias.lower(), param)

    def _all(self) -> dict[str, str]:
        return {**self.common, **self.declared}

    def _is_declared(self, canonical: str) -> bool:
        low = canonical.lower()
        return low in self.declared and low not in ENGINE_PARAMETERS

    def resolve(self, written: str) -> Resolution:
        """Bind ``written`` (without the dash) the way Windows PowerShell 5.1 would."""
        low = written.lower()
        names = self._all()
        if low in names:
            return Resolution(written, names[low], None)
        if low in self.aliases:
            return Resolution(written, self.aliases[low], None)
        matches: list[str] = []
        for key, canonical in [*names.items(), *self.aliases.items()]:
            if key.startswith(low) and canonical not in matches:
                matches.append(canonical)
        if not matches:
            return Resolution(
                written,
                None,
                f"Windows PowerShell 5.1 stops with ParameterBindingException "
                f"(NamedParameterNotFound): {self.name} has no parameter -{written}",
            )
        if len(matches) > 1:
            declared = [m for m in matches if self._is_declared(m)]
            if len(declared) != 1:
                choices = ", ".join(f"-{m}" for m in sorted(matches))
                return Resolution(
                    written,
                    None,
                    f"Windows PowerShell 5.1 stops with ParameterBindingException "
                    f"(AmbiguousParameter): -{written} of {self.name} matches {choices}",
                )
            matches = declared
        return Resolution(written, matches[0], None)


@cache
def _loaded() -> tuple[dict[str, Signature], dict[str, str], dict]:
    data = catalogue.load()
    common = list(data["common_parameters"])
    common_aliases = data.get("common_parameter_aliases", {})
    signatures = {
        name.lower(): Signature(name, entry, common, common_aliases)
        for name, entry in data["cmdlets"].items()
    }
    aliases = {
        alias.lower(): name
        for name, entry in data["cmdlets"].items()
        for alias in entry.get("cmdlet_aliases", [])
    }
    return signatures, aliases, data


def signature(name: str) -> Signature | None:
    """The catalogue signature of a cmdlet (or of one of its documented aliases), or None."""
    signatures, aliases, _ = _loaded()
    low = name.lower()
    if low in signatures:
        return signatures[low]
    if low in aliases:
        return signatures[aliases[low].lower()]
    return None


def sources() -> list[dict]:
    """The documentation commits the catalogue was built from."""
    return list(_loaded()[2]["sources"])


def modules() -> set[str]:
    """The module names the catalogue holds cmdlets of."""
    return {entry.module for entry in _loaded()[0].values()}
