"""Build ``cmdlets.json``: cmdlet names, parameter sets and aliases from Microsoft's docs.

The catalogue holds structure only (names, parameter-set membership, aliases and a few
flags); no descriptive text from the documentation is copied.  Sources are the platyPS
markdown pages of two public repositories, read either from a bare git directory (via
``git show``) or from a plain checkout folder:

* ``MicrosoftDocs/windows-powershell-docs``: ``docset/winserver2022-ps/<Module>/<Cmdlet>.md``
* ``MicrosoftDocs/PowerShell-Docs``: ``reference/5.1/<Module>/<Cmdlet>.md``

Usage::

    python -m app.lab.catalogue.extract --windows-docs <git dir or folder> \\
        --powershell-docs <git dir or folder> --out app/lab/catalogue/cmdlets.json
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

WINDOWS_DOCS_REPO = "MicrosoftDocs/windows-powershell-docs"
WINDOWS_DOCS_PATH = "docset/winserver2022-ps"
WINDOWS_MODULES = (
    "ActiveDirectory",
    "FailoverClusters",
    "ScheduledTasks",
    "ServerManager",
    "Kds",
    "NetTCPIP",
    "DnsClient",
    "NetSecurity",
    "SmbShare",
)

POWERSHELL_DOCS_REPO = "MicrosoftDocs/PowerShell-Docs"
POWERSHELL_DOCS_PATH = "reference/5.1"
POWERSHELL_MODULES = (
    "Microsoft.PowerShell.Core",
    "Microsoft.PowerShell.Management",
    "Microsoft.PowerShell.Utility",
    "Microsoft.PowerShell.Security",
    "Microsoft.PowerShell.Diagnostics",
    "CimCmdlets",
    "Microsoft.WSMan.Management",
)

# Windows PowerShell 5.1 common parameters (ProgressAction is PowerShell 7.4+, so it is absent).
COMMON_PARAMETERS = (
    "Debug",
    "ErrorAction",
    "ErrorVariable",
    "InformationAction",
    "InformationVariable",
    "OutBuffer",
    "OutVariable",
    "PipelineVariable",
    "Verbose",
    "WarningAction",
    "WarningVariable",
)

# The short aliases Windows PowerShell 5.1 gives the common parameters (not on the cmdlet pages).
COMMON_PARAMETER_ALIASES = {
    "Debug": ["db"],
    "ErrorAction": ["ea"],
    "ErrorVariable": ["ev"],
    "InformationAction": ["infa"],
    "InformationVariable": ["iv"],
    "OutBuffer": ["ob"],
    "OutVariable": ["ov"],
    "PipelineVariable": ["pv"],
    "Verbose": ["vb"],
    "WarningAction": ["wa"],
    "WarningVariable": ["wv"],
}

ALL_SETS = "__AllParameterSets"

_H1 = re.compile(r"^# (\S+)\s*$")
_H2 = re.compile(r"^## (.+?)\s*$")
_H3 = re.compile(r"^### (.+?)\s*$")
_FENCE = re.compile(r"^\s*```")
_PARAM_TOKEN = re.compile(r"(?:^|[\s\[])-([A-Za-z][A-Za-z0-9_]*)\b")
_ALIASES_LINE = re.compile(r"^Aliases:\s*(.*)$")
_CMDLET_ALIASES_INTRO = re.compile(r"PowerShell includes the following aliases? for `([^`]+)`")
_ALIAS_BULLET = re.compile(r"^\s*[-*]\s+`([^`]+)`\s*$")
_CREDSSP = re.compile(
    r"cannot be run remotely without\s+Credential Security Service Provider", re.I
)
_DEFAULT_SUFFIX = re.compile(r"\s*\(Default\)\s*$", re.I)


@dataclass
class Source:
    """A documentation tree inside a git directory or a plain folder."""

    repo: str
    location: Path
    root: str
    commit: str = "HEAD"
    is_git: bool = field(init=False, default=False)

    def __post_init__(self) -> None:
        """Decide whether ``location`` is a git directory and pin the commit to a full sha."""
        self.is_git = (self.location / "HEAD").is_file() and (self.location / "objects").is_dir()
        if self.is_git:
            self.commit = self._git("rev-parse", f"{self.commit}^{{commit}}").strip()
        else:
            self.commit = self._folder_commit()

    def _git(self, *args: str) -> str:
        """Run a git command against the git directory and return its stdout."""
        result = subprocess.run(
            ["git", f"--git-dir={self.location}", *args],
            check=True,
            capture_output=True,
        )
        return result.stdout.decode("utf-8", errors="replace")

    def _folder_commit(self) -> str:
        """Best-effort commit of a plain checkout (empty string when it is not a work tree)."""
        try:
            result = subprocess.run(
                ["git", "-C", str(self.location), "rev-parse", "HEAD"],
                check=True,
                capture_output=True,
            )
        except (OSError, subprocess.CalledProcessError):
            return ""
        return result.stdout.decode().strip()

    def list_markdown(self, module_dir: str) -> list[str]:
        """Return repository-relative paths of the ``.md`` files directly in ``module_dir``."""
        rel = f"{self.root}/{module_dir}"
        if self.is_git:
            out = self._git("ls-tree", "--name-only", f"{self.commit}:{rel}")
            names = [line for line in out.splitlines() if line.endswith(".md")]
        else:
            folder = self.location / rel
            names = [p.name for p in folder.glob("*.md")] if folder.is_dir() else []
        return sorted(f"{rel}/{name}" for name in names)

    def list_dirs(self) -> list[str]:
        """Return the names of the module folders under ``root``."""
        if self.is_git:
            out = self._git("ls-tree", "-d", "--name-only", f"{self.commit}:{self.root}")
            return out.splitlines()
        return sorted(p.name for p in (self.location / self.root).iterdir() if p.is_dir())

    def read(self, rel_path: str) -> str:
        """Return the text of one file, with line endings normalised to ``\\n``."""
        if self.is_git:
            text = self._git("show", f"{self.commit}:{rel_path}")
        else:
            text = (self.location / rel_path).read_text(encoding="utf-8", errors="replace")
        return text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")

    def describe(self) -> dict[str, str]:
        """Return the ``sources`` entry for this tree."""
        return {"repo": self.repo, "commit": self.commit, "path": self.root}


def _front_matter(lines: list[str]) -> dict[str, str]:
    """Parse the simple ``key: value`` yaml front matter of a platyPS page."""
    meta: dict[str, str] = {}
    if not lines or lines[0].strip() != "---":
        return meta
    for line in lines[1:]:
        if line.strip() == "---":
            break
        key, sep, value = line.partition(":")
        if sep:
            meta[key.strip().lower()] = value.strip()
    return meta


def _sections(lines: list[str]) -> dict[str, list[str]]:
    """Split a page into its ``## `` sections (upper-cased heading -> lines), fence-aware."""
    sections: dict[str, list[str]] = {}
    current: list[str] | None = None
    in_fence = False
    for line in lines:
        if _FENCE.match(line):
            in_fence = not in_fence
        match = None if in_fence else _H2.match(line)
        if match:
            current = sections.setdefault(match.group(1).strip().upper(), [])
            continue
        if current is not None:
            current.append(line)
    return sections


def _code_blocks(lines: list[str]) -> Iterator[tuple[str | None, list[str]]]:
    """Yield ``(nearest ### heading, block lines)`` for each fenced block in ``lines``."""
    heading: str | None = None
    block: list[str] | None = None
    for line in lines:
        if _FENCE.match(line):
            if block is None:
                block = []
            else:
                yield heading, block
                block = None
            continue
        if block is not None:
            block.append(line)
            continue
        match = _H3.match(line)
        if match:
            heading = match.group(1)


@dataclass
class Cmdlet:
    """The structural facts recorded for one cmdlet."""

    name: str
    module: str
    doc: str
    parameter_sets: dict[str, list[str]]
    default_set: str | None
    common: bool
    aliases: dict[str, list[str]]
    cmdlet_aliases: list[str]
    remote_needs_credssp: bool
    undeclared: list[str]

    def to_json(self) -> dict[str, object]:
        """Return the catalogue entry, omitting empty optional keys."""
        entry: dict[str, object] = {
            "common": self.common,
            "doc": self.doc,
            "module": self.module,
            "parameter_sets": self.parameter_sets,
        }
        if self.default_set:
            entry["default_parameter_set"] = self.default_set
        if self.aliases:
            entry["aliases"] = self.aliases
        if self.cmdlet_aliases:
            entry["cmdlet_aliases"] = self.cmdlet_aliases
        if self.remote_needs_credssp:
            entry["remote_needs_credssp"] = True
        if self.undeclared:
            entry["parameters_not_in_syntax"] = self.undeclared
        return entry


def _parse_syntax(
    name: str, lines: list[str], problems: list[str]
) -> tuple[dict[str, list[str]], str | None, bool]:
    """Return parameter sets, the default set name and common-parameter support."""
    sets: dict[str, list[str]] = {}
    default_set: str | None = None
    common = False
    for heading, block in _code_blocks(lines):
        text = " ".join(block)
        if "<CommonParameters>" in text:
            common = True
        body = text.replace("<CommonParameters>", " ")
        stripped = body.strip()
        if stripped.split(" ", 1)[0].lower() != name.lower():
            problems.append(f"{name}: SYNTAX block does not start with the cmdlet name")
        params: list[str] = []
        for match in _PARAM_TOKEN.finditer(body):
            if match.group(1) not in params:
                params.append(match.group(1))
        set_name = ALL_SETS
        if heading:
            set_name = _DEFAULT_SUFFIX.sub("", heading).strip() or ALL_SETS
            if _DEFAULT_SUFFIX.search(heading):
                default_set = set_name
        if set_name in sets:
            problems.append(f"{name}: duplicate parameter set {set_name!r}; merged")
            sets[set_name] = sets[set_name] + [p for p in params if p not in sets[set_name]]
        else:
            sets[set_name] = params
    if not sets:
        problems.append(f"{name}: no SYNTAX code block")
    return {key: sorted(value) for key, value in sets.items()}, default_set, common


def _parse_parameters(lines: list[str]) -> tuple[list[str], dict[str, list[str]]]:
    """Return the documented parameter names and their aliases from ``## PARAMETERS``."""
    names: list[str] = []
    aliases: dict[str, list[str]] = {}
    current: str | None = None
    in_fence = False
    for line in lines:
        if _FENCE.match(line):
            in_fence = not in_fence
            continue
        if not in_fence:
            match = _H3.match(line)
            if match:
                heading = match.group(1).strip()
                current = heading[1:].strip() if heading.startswith("-") else None
                if current and current not in names:
                    names.append(current)
            continue
        alias_match = _ALIASES_LINE.match(line.strip())
        if current and alias_match:
            for alias in re.split(r"[,\s]+", alias_match.group(1)):
                alias = alias.strip()
                if alias and alias.lower() != "none" and alias not in aliases.get(current, []):
                    aliases.setdefault(current, []).append(alias)
    return names, {key: sorted(value) for key, value in aliases.items()}


def _parse_cmdlet_aliases(lines: list[str]) -> list[str]:
    """Return the alias names listed after "includes the following aliases for `X`:"."""
    found: list[str] = []
    collecting = False
    for line in lines:
        if _CMDLET_ALIASES_INTRO.search(line):
            collecting = True
            continue
        if not collecting:
            continue
        match = _ALIAS_BULLET.match(line)
        if match:
            found.append(match.group(1).strip())
        elif line.strip():
            collecting = False
    return sorted(set(found), key=str.lower)


def parse_page(rel_path: str, text: str, folder: str, problems: list[str]) -> Cmdlet | None:
    """Parse one platyPS page; return ``None`` for module landing pages and about topics."""
    lines = text.split("\n")
    meta = _front_matter(lines)
    sections = _sections(lines)
    if "SYNTAX" not in sections:
        return None
    name = meta.get("title") or ""
    for line in lines:
        match = _H1.match(line)
        if match:
            if name and match.group(1) != name:
                problems.append(f"{rel_path}: title {name!r} differs from heading; heading used")
            name = match.group(1)
            break
    if not name:
        name = Path(rel_path).stem
    if name != Path(rel_path).stem:
        problems.append(f"{rel_path}: cmdlet name {name!r} differs from the file name")
    sets, default_set, common = _parse_syntax(name, sections["SYNTAX"], problems)
    documented, aliases = _parse_parameters(sections.get("PARAMETERS", []))
    # Parameter names are case-insensitive; prefer the spelling of the PARAMETERS heading.
    spelling = {p.lower(): p for p in documented}
    for set_name, params in sets.items():
        respelt = [spelling.get(p.lower(), p) for p in params]
        if respelt != params:
            problems.append(f"{name}: SYNTAX spells {set_name!r} parameters in another case")
        sets[set_name] = sorted(respelt)
    in_syntax = {p for params in sets.values() for p in params}
    undeclared = sorted(p for p in documented if p not in in_syntax)
    missing_docs = sorted(p for p in in_syntax if p not in spelling.values())
    if missing_docs:
        problems.append(f"{name}: in SYNTAX but not under PARAMETERS: {', '.join(missing_docs)}")
    if undeclared:
        problems.append(f"{name}: under PARAMETERS but not in SYNTAX: {', '.join(undeclared)}")
    return Cmdlet(
        name=name,
        module=meta.get("module name") or folder,
        doc=rel_path,
        parameter_sets=sets,
        default_set=default_set,
        common=common,
        aliases=aliases,
        cmdlet_aliases=_parse_cmdlet_aliases(sections.get("NOTES", [])),
        remote_needs_credssp=bool(_CREDSSP.search(" ".join(lines))),
        undeclared=undeclared,
    )


def _module_folder(source: Source, module: str, problems: list[str]) -> str | None:
    """Find the folder for ``module`` (the docs spell some folders in another case)."""
    dirs = source.list_dirs()
    if module in dirs:
        return module
    for candidate in dirs:
        if candidate.lower() == module.lower():
            problems.append(f"{source.repo}: module {module} is in folder {candidate}")
            return candidate
    problems.append(f"{source.repo}: no folder for module {module}")
    return None


def collect(
    sources: Iterable[tuple[Source, Iterable[str]]], problems: list[str]
) -> dict[str, Cmdlet]:
    """Parse every cmdlet page of the requested modules of each source."""
    cmdlets: dict[str, Cmdlet] = {}
    for source, modules in sources:
        for module in modules:
            folder = _module_folder(source, module, problems)
            if folder is None:
                continue
            for rel_path in source.list_markdown(folder):
                cmdlet = parse_page(rel_path, source.read(rel_path), folder, problems)
                if cmdlet is None:
                    continue
                if cmdlet.name in cmdlets:
                    problems.append(f"{cmdlet.name}: duplicate in {rel_path}; first kept")
                    continue
                cmdlets[cmdlet.name] = cmdlet
    return cmdlets


def render(sources: list[Source], cmdlets: dict[str, Cmdlet]) -> str:
    """Serialise the catalogue with sorted keys and one cmdlet per line."""
    compact = {"sort_keys": True, "separators": (",", ":")}
    body = ",\n".join(
        f"  {json.dumps(name)}: {json.dumps(cmdlets[name].to_json(), **compact)}"
        for name in sorted(cmdlets)
    )
    lines = [
        "{",
        ' "cmdlets": {',
        body,
        " },",
        f' "common_parameter_aliases": {json.dumps(COMMON_PARAMETER_ALIASES, sort_keys=True)},',
        f' "common_parameters": {json.dumps(list(COMMON_PARAMETERS))},',
        f' "sources": {json.dumps([s.describe() for s in sources], **compact)}',
        "}",
    ]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--windows-docs", type=Path, required=True, help="git dir or folder")
    parser.add_argument("--powershell-docs", type=Path, required=True, help="git dir or folder")
    parser.add_argument("--windows-commit", default="HEAD", help="commit to read (git dir only)")
    parser.add_argument("--powershell-commit", default="HEAD", help="commit to read (git only)")
    parser.add_argument("--out", type=Path, default=Path(__file__).with_name("cmdlets.json"))
    parser.add_argument("--problems", action="store_true", help="print parsing problems")
    args = parser.parse_args(argv)

    windows = Source(WINDOWS_DOCS_REPO, args.windows_docs, WINDOWS_DOCS_PATH, args.windows_commit)
    powershell = Source(
        POWERSHELL_DOCS_REPO, args.powershell_docs, POWERSHELL_DOCS_PATH, args.powershell_commit
    )
    problems: list[str] = []
    cmdlets = collect([(windows, WINDOWS_MODULES), (powershell, POWERSHELL_MODULES)], problems)
    args.out.write_text(render([windows, powershell], cmdlets), encoding="utf-8")

    counts: dict[str, int] = {}
    for cmdlet in cmdlets.values():
        counts[cmdlet.module] = counts.get(cmdlet.module, 0) + 1
    for module, count in sorted(counts.items()):
        print(f"{module}: {count}")
    print(f"total: {len(cmdlets)} cmdlets, {len(problems)} parsing notes -> {args.out}")
    if args.problems:
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
