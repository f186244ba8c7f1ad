"""Every cmdlet a vetted script calls exists on Windows PowerShell 5.1 with the parameters used.

The signatures come from app/lab/catalogue/cmdlets.json (Microsoft's 5.1 and Windows Server
2022 reference pages, regenerated with ``python -m app.lab.catalogue.extract``).  A name is
checked when it is Verb-Noun or a documented cmdlet alias and the script does not define it
as a function; `& $variable`, `& (expression)` and native programs are out of scope.
Parameters bind as 5.1 binds them (exact name or alias, else an unambiguous prefix; see
tests/remote/ps_signatures.py).  A splat `@name` is checked key by key when the script only
ever fills ``$name`` with literal keys; any other splat is reported as unchecked.
"""

from __future__ import annotations

import re
import warnings
from dataclasses import dataclass, field

import pytest

from tests.remote import ps_ast, ps_signatures

# Cmdlets of third-party modules: not in Microsoft's reference, so their parameters are not
# checked here; the script must import the module itself.
EXTERNAL_CMDLETS = {
    "get-amshostconfig": "LithnetAccessManager",
    "set-amshostconfig": "LithnetAccessManager",
}


class UncheckedCall(UserWarning):
    """A call the catalogue check could not verify statically (listed, not refused)."""


@dataclass
class Report:
    """What the check found in one script."""

    problems: list[str] = field(default_factory=list)
    unchecked: list[str] = field(default_factory=list)


def _imported_modules(root) -> set[str]:
    modules: set[str] = set()
    for call in ps_ast.invocations(root):
        if call.name.lower() != "import-module":
            continue
        named = {p.name.lower(): p.value for p in call.parameters}
        value = named.get("name")
        if value is None:
            elements = call.node.child_by_field_name("command_elements")
            positional = [
                c
                for c in (elements.named_children if elements else [])
                if c.type not in {"command_argument_sep", "command_parameter"}
            ]
            value = positional[0] if positional else None
        name = ps_ast.literal_string(value)
        if name:
            modules.add(name.lower())
    return modules


def check(source: str | bytes, label: str = "<text>", first_line: int = 1) -> Report:
    """Check every literal cmdlet call of one script against the 5.1 catalogue.

    ``first_line`` is where the text starts in its file (for a script embedded in another).
    """
    root = ps_ast.parse(source)
    report = Report()
    shift = first_line - 1
    functions = ps_ast.defined_functions(root)
    tables = ps_ast.hashtable_variables(root)
    imported = _imported_modules(root)
    for call in ps_ast.invocations(root):
        low = call.name.lower()
        if low in functions:
            continue
        signature = ps_signatures.signature(call.name)
        if signature is None:
            if not ps_ast.VERB_NOUN.match(call.name):
                continue  # a native program, a path or an undocumented alias
            where = f"{label}:{call.line + shift}: {call.written}"
            if low in EXTERNAL_CMDLETS:
                module = EXTERNAL_CMDLETS[low]
                if module.lower() not in imported:
                    report.problems.append(
                        f"{where}: comes from module {module}, which the script never "
                        f"imports; Windows PowerShell 5.1 only finds it if autoloading does"
                    )
                report.unchecked.append(f"{where}: third-party module {module}")
                continue
            report.problems.append(
                f"{where}: not a Windows PowerShell 5.1 / Server 2022 cmdlet in the catalogue; "
                f"Windows would stop with CommandNotFoundException (if the module is real, add "
                f"it to app/lab/catalogue/extract.py and regenerate cmdlets.json)"
            )
            continue
        for param in call.parameters:
            if not re.match(r"^[A-Za-z_]", param.name):
                continue
            result = signature.resolve(param.name)
            if result.problem:
                report.problems.append(
                    f"{label}:{param.line + shift}: {signature.name} -{param.name}: {result.problem}"
                )
        for variable, splat_line in call.splats:
            where = f"{label}:{splat_line + shift}: {signature.name} @{variable}"
            table = tables.get(variable.lower())
            if table is None or not table.assigned or not table.literal:
                report.unchecked.append(f"{where}: splatted keys are not all literal")
                continue
            for key, key_line in table.keys:
                result = signature.resolve(key)
                if not result.problem:
                    continue
                if key.lower() in table.guarded:
                    report.unchecked.append(
                        f"{where}: key {key!r} (line {key_line + shift}) is only set on PowerShell 6+"
                    )
                    continue
                report.problems.append(
                    f"{where}: key {key!r} (line {key_line + shift}): {result.problem}"
                )
    return report


def check_file(path) -> Report:
    """Check a script and the scripts it embeds in here-strings (task_run.ps1's bootstrap)."""
    data = path.read_bytes()
    report = check(data, path.name)
    for embedded in ps_ast.embedded_scripts(ps_ast.parse(data)):
        inner = check(embedded.text, f"{path.name} (embedded)", embedded.first_line)
        report.problems += inner.problems
        report.unchecked += inner.unchecked
    return report


def _rel(path) -> str:
    return path.name


def test_there_are_scripts_to_check():
    assert ps_ast.app_scripts()


def test_catalogue_records_its_sources():
    repos = {s["repo"]: s for s in ps_signatures.sources()}
    assert set(repos) == {"MicrosoftDocs/windows-powershell-docs", "MicrosoftDocs/PowerShell-Docs"}
    for source in repos.values():
        assert re.fullmatch(r"[0-9a-f]{40}", source["commit"]), source


@pytest.mark.parametrize(
    "cmdlet",
    [
        "Get-WinEvent",
        "Get-KdsRootKey",
        "Get-ADServiceAccount",
        "Get-ClusterGroup",
        "Register-ScheduledTask",
        "Install-WindowsFeature",
        "Get-CimInstance",
        "Test-NetConnection",
        "Set-Acl",
        "ForEach-Object",
    ],
)
def test_catalogue_covers_the_modules_the_scripts_use(cmdlet):
    assert ps_signatures.signature(cmdlet) is not None


@pytest.mark.parametrize("path", ps_ast.app_scripts(), ids=_rel)
def test_every_imported_module_is_in_the_catalogue(path):
    modules = {m.lower() for m in ps_signatures.modules()}
    external = {m.lower() for m in EXTERNAL_CMDLETS.values()}
    missing = sorted(_imported_modules(ps_ast.parse_file(path)) - modules - external)
    assert not missing, f"{path.name} imports modules the catalogue lacks: {missing}"


@pytest.mark.parametrize("path", ps_ast.app_scripts(), ids=_rel)
def test_script_calls_match_the_51_signatures(path):
    report = check_file(path)
    for item in report.unchecked:
        warnings.warn(UncheckedCall(item), stacklevel=1)
    assert not report.problems, "\n".join(report.problems)


# Negative tests: the checker itself, on in-memory PowerShell text.


def _problems(source: str) -> list[str]:
    return check(source).problems


def test_unknown_cmdlet_is_reported():
    problems = _problems("param()\nGet-NoSuchThing -Name x\n")
    assert len(problems) == 1
    assert "<text>:2: Get-NoSuchThing" in problems[0]
    assert "CommandNotFoundException" in problems[0]


@pytest.mark.parametrize(
    ("source", "cmdlet", "param"),
    [
        ("@(1) | ConvertTo-Json -AsArray -Depth 2", "ConvertTo-Json", "AsArray"),
        ("'{}' | ConvertFrom-Json -AsHashtable", "ConvertFrom-Json", "AsHashtable"),
        ("Get-Content -Path x -AsByteStream", "Get-Content", "AsByteStream"),
        ("1..3 | ForEach-Object -Parallel { $_ }", "ForEach-Object", "Parallel"),
        (
            "Invoke-WebRequest -Uri x -SkipCertificateCheck",
            "Invoke-WebRequest",
            "SkipCertificateCheck",
        ),
    ],
)
def test_powershell_7_only_parameters_are_reported(source, cmdlet, param):
    problems = _problems(source)
    assert len(problems) == 1, problems
    assert f"<text>:1: {cmdlet} -{param}:" in problems[0]
    assert "NamedParameterNotFound" in problems[0]


@pytest.mark.parametrize("source", ["Get-ChildItem -F x", "Get-ChildItem -Fi x"])
def test_ambiguous_prefix_is_reported(source):
    # -Fi matches -File and -Filter, both declared by Get-ChildItem: 5.1 refuses it.
    problems = _problems(source)
    assert len(problems) == 1 and "AmbiguousParameter" in problems[0], problems


@pytest.mark.parametrize(
    "source",
    [
        "Get-Content -LiteralPath x -Raw",
        "Get-Content -Lit x -ra",  # unambiguous prefixes
        "Get-Content -PSPath x -Head 3",  # parameter aliases
        "Get-Service -Name x -ea SilentlyContinue -WarningAction Stop -Verbose -ov out",
        "Set-Content -Path x -Value y -WhatIf -cf:$false",
        "FailoverClusters\\Get-ClusterNode -Name x",
        "gc -Path x -Tail 1",  # documented cmdlet alias
        "& $tool -NotAParameter 1",
        "& netsh.exe http show sslcert",
        "function Get-Thing([string]$Weird) { }\nGet-Thing -Weird 1",
    ],
)
def test_valid_calls_pass(source):
    assert _problems(source) == []


def test_prefix_preferring_the_cmdlets_own_parameter_over_a_common_one():
    # -Wa matches -Wait (declared) and -WarningAction/-WarningVariable (common): 5.1 binds -Wait.
    assert _problems("Get-Content -Path x -Wa") == []


def test_literal_splat_keys_are_checked():
    source = "$p = @{ InputObject = 1; AsArray = $true }\n$p.Depth = 3\nConvertTo-Json @p\n"
    problems = _problems(source)
    assert len(problems) == 1 and "'AsArray'" in problems[0] and "<text>:3:" in problems[0]


def test_non_literal_splat_is_listed_not_refused():
    report = check("$p = $PSBoundParameters\nGet-Item @p\n")
    assert report.problems == []
    assert report.unchecked and "@p" in report.unchecked[0]


def test_splat_key_set_only_on_powershell_7_is_listed_not_refused():
    source = (
        "$r = @{ Uri = 'x' }\n"
        "if ($PSVersionTable.PSVersion.Major -ge 6) { $r.SkipCertificateCheck = $true }\n"
        "Invoke-WebRequest @r\n"
    )
    report = check(source)
    assert report.problems == []
    assert any("SkipCertificateCheck" in u for u in report.unchecked)


def test_embedded_scripts_are_checked_with_their_outer_line_numbers(tmp_path):
    script = tmp_path / "outer.ps1"
    script.write_text(
        "param()\n$inner = @'\nparam($x)\nConvertTo-Json -AsArray\n'@\n", encoding="utf-8"
    )
    problems = check_file(script).problems
    assert len(problems) == 1 and problems[0].startswith(
        "outer.ps1 (embedded):4: ConvertTo-Json -AsArray"
    )


def test_third_party_cmdlet_needs_its_module_imported():
    assert _problems("Get-AmsHostConfig") != []
    assert _problems("Import-Module LithnetAccessManager\nGet-AmsHostConfig") == []
