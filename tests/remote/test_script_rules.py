"""Static rules for the vetted scripts: what would break on Windows PowerShell 5.1.

Each rule is a function ``rule(root) -> list[(line, message)]`` over a tree-sitter parse tree,
run over every app/scripts/*.ps1 (one parametrised test per rule and script) and proven on
in-memory text by a negative test.  Messages say what Windows would do.
"""

from __future__ import annotations

import re
from collections.abc import Callable

import pytest
from tree_sitter import Node

from tests.remote import ps_ast, ps_signatures

Finding = tuple[int, str]

# --- Types -------------------------------------------------------------------------------

# Namespaces whose assemblies every Windows PowerShell 5.1 session has loaded (the .NET
# Framework class library and PowerShell's own engine and CIM assemblies).  Anything else,
# e.g. Microsoft.ActiveDirectory.Management or Microsoft.FailoverClusters.PowerShell, only
# exists once its module has been imported.  Microsoft.PowerShell.Commands.* is deliberately
# absent: those types live in the Utility/Management module assemblies.
ALWAYS_LOADED_NAMESPACES = (
    "System.",
    "Microsoft.Management.Infrastructure.",
    "Microsoft.Win32.",
    "Microsoft.CSharp.",
)
# PowerShell also finds `[Net.WebClient]` as System.Net.WebClient: first segments it may take
# as "System.<segment>".
SYSTEM_RELATIVE_NAMESPACES = frozenset(
    {
        "collections",
        "componentmodel",
        "data",
        "diagnostics",
        "directoryservices",
        "globalization",
        "io",
        "management",
        "net",
        "numerics",
        "reflection",
        "runtime",
        "security",
        "serviceprocess",
        "text",
        "threading",
        "timers",
        "xml",
    }
)


def _always_loaded(type_name: str) -> bool:
    name = type_name.split("[", 1)[0]
    if "." not in name:
        return True  # an accelerator ([string], [PSCustomObject]) or a type the script adds
    if name.startswith(ALWAYS_LOADED_NAMESPACES):
        return True
    return name.split(".", 1)[0].lower() in SYSTEM_RELATIVE_NAMESPACES


def rule_catch_types(root: Node) -> list[Finding]:
    """`catch [T]` only for types of always-loaded assemblies."""
    return [
        (
            ps_ast.line(node),
            f"catch [{name}]: Windows PowerShell 5.1 raises TypeNotFound when a catch clause "
            f"names a type whose module is not loaded, and the script ends there instead of "
            f"handling the error; catch without a type and test $_.Exception.GetType().FullName",
        )
        for name, node, in_catch in ps_ast.type_names(root)
        if in_catch and not _always_loaded(name)
    ]


def rule_module_type_literals(root: Node) -> list[Finding]:
    """No `[Module.Type]` casts, `-is`/`-as` or static calls on types of non-core modules."""
    return [
        (
            ps_ast.line(node),
            f"[{name}]: Windows PowerShell 5.1 raises TypeNotFound (Unable to find type) when "
            f"this runs before the module that defines the type is loaded; compare type names "
            f"as strings instead",
        )
        for name, node, in_catch in ps_ast.type_names(root)
        if not in_catch and not _always_loaded(name)
    ]


# --- PowerShell 7 only syntax and parameters ---------------------------------------------

_PARSE_FAILURE = (
    "Windows PowerShell 5.1 refuses to parse the script (ParseException), so no line of it runs"
)
_UNREADABLE = (
    "tree-sitter-powershell cannot parse this; Windows PowerShell 5.1 may accept it, but these "
    "checks cannot read the script: rewrite the construct (e.g. quote the words of a "
    "`Name, State` command argument) so every rule sees it"
)
_STRINGS_AND_COMMENTS = re.compile(r"'[^']*'|\"(?:`.|[^\"`])*\"|#.*$")
_PS7_OPERATORS = (
    (re.compile(r"\?\?="), "null-coalescing assignment `??=` is PowerShell 7 syntax"),
    (re.compile(r"\?\?"), "null-coalescing `??` is PowerShell 7 syntax"),
    (re.compile(r"\?\.|\?\["), "null-conditional `?.`/`?[]` is PowerShell 7 syntax"),
    (re.compile(r"[\w)\]}'\"]\s+\?\s+\S.*\s:\s"), "the ternary `a ? b : c` is PowerShell 7 syntax"),
)


def _ps7_operator(source_lines: list[str], first: int, last: int) -> tuple[int, str] | None:
    """The first PowerShell 7 operator on lines ``first..last`` (1-based), outside strings."""
    for number in range(first, last + 1):
        code = _STRINGS_AND_COMMENTS.sub("''", source_lines[number - 1])
        for pattern, description in _PS7_OPERATORS:
            if pattern.search(code):
                return number, description
    return None


def rule_parses_on_51(root: Node) -> list[Finding]:
    """The script parses, and uses no PowerShell 7 operator."""
    findings: list[Finding] = []
    source_lines = ps_ast.text(root).split("\n")
    outermost = [
        n
        for n in ps_ast.error_nodes(root)
        if not any(a.type == "ERROR" for a in ps_ast.ancestors(n))
    ]
    for node in outermost:
        first, last = node.start_point[0] + 1, node.end_point[0] + 1
        found = _ps7_operator(source_lines, first, last)
        if found:
            findings.append((found[0], f"{found[1]}: {_PARSE_FAILURE}"))
        else:
            snippet = ps_ast.text(node).strip()[:60] or f"(missing {node.type!r})"
            findings.append((first, f"{snippet!r}: {_UNREADABLE}"))
    for node in ps_ast.walk(root):
        if node.is_named:
            continue
        if node.type in {"&&", "||"}:
            findings.append(
                (
                    ps_ast.line(node),
                    f"pipeline chain `{node.type}` is PowerShell 7 syntax: {_PARSE_FAILURE}",
                )
            )
        elif node.type in {"??", "??=", "?.", "?["}:
            findings.append(
                (ps_ast.line(node), f"`{node.type}` is PowerShell 7 syntax: {_PARSE_FAILURE}")
            )
    return sorted(set(findings))


# Parameters PowerShell 6/7 added to cmdlets that exist in 5.1 (a written prefix counts).
PS7_ONLY_PARAMETERS = {
    "ForEach-Object": ("Parallel", "ThrottleLimit", "TimeoutSeconds", "AsJob", "UseNewRunspace"),
    "Invoke-WebRequest": (
        "SkipCertificateCheck",
        "SkipHttpErrorCheck",
        "SkipHeaderValidation",
        "Authentication",
        "Token",
        "NoProxy",
        "SslProtocol",
        "StatusCodeVariable",
        "MaximumRetryCount",
        "RetryIntervalSec",
        "Resume",
    ),
    "Invoke-RestMethod": (
        "SkipCertificateCheck",
        "SkipHttpErrorCheck",
        "SkipHeaderValidation",
        "Authentication",
        "Token",
        "NoProxy",
        "SslProtocol",
        "StatusCodeVariable",
        "ResponseHeadersVariable",
        "MaximumRetryCount",
        "RetryIntervalSec",
        "Resume",
    ),
    "ConvertTo-Json": ("EnumsAsStrings", "AsArray", "EscapeHandling"),
    "ConvertFrom-Json": ("AsHashtable", "Depth", "NoEnumerate"),
    "Get-Content": ("AsByteStream",),
    "Set-Content": ("AsByteStream",),
    "Add-Content": ("AsByteStream",),
}
# The encodings a 5.1 -Encoding accepts (FileSystemCmdletProviderEncoding and the Out-File /
# Export-Csv sets); PowerShell 7 adds utf8NoBOM, utf8BOM, ansi, latin1 and code page numbers.
ENCODINGS_51 = frozenset(
    {
        "unknown",
        "string",
        "unicode",
        "byte",
        "bigendianunicode",
        "bigendianutf32",
        "utf8",
        "utf7",
        "utf32",
        "ascii",
        "default",
        "oem",
    }
)


def _ps7_parameter(cmdlet: str, written: str) -> str | None:
    low = written.lower()
    if len(low) < 2:
        return None
    signature = ps_signatures.signature(cmdlet)
    if signature is not None and not signature.resolve(written).problem:
        return None  # 5.1 binds it to one of its own parameters
    for param in PS7_ONLY_PARAMETERS.get(signature.name if signature else cmdlet, ()):
        if param.lower().startswith(low):
            return param
    return None


def rule_no_ps7_parameters(root: Node) -> list[Finding]:
    """No parameter or -Encoding value that only PowerShell 6/7 knows."""
    findings: list[Finding] = []
    tables = ps_ast.hashtable_variables(root)
    for call in ps_ast.invocations(root):
        signature = ps_signatures.signature(call.name)
        cmdlet = signature.name if signature else call.name
        if ps_ast.is_ps6_only(call.node):
            continue
        for param in call.parameters:
            ps7 = _ps7_parameter(cmdlet, param.name)
            if ps7:
                findings.append(
                    (
                        param.line,
                        f"{cmdlet} -{param.name}: -{ps7} is PowerShell 7 only; Windows PowerShell "
                        f"5.1 stops with ParameterBindingException (NamedParameterNotFound)",
                    )
                )
            if "encoding".startswith(param.name.lower()) and len(param.name) >= 3:
                value = ps_ast.literal_string(param.value)
                if value is not None and value.lower() not in ENCODINGS_51:
                    findings.append(
                        (
                            param.line,
                            f"{cmdlet} -Encoding {value}: Windows PowerShell 5.1 does not know this "
                            f"encoding and stops with ParameterBindingException (utf8 there "
                            f"writes a BOM; use [System.IO.File]::WriteAllText for BOM-less UTF-8)",
                        )
                    )
        for variable, splat_line in call.splats:
            table = tables.get(variable.lower())
            for key, _ in table.keys if table else []:
                ps7 = _ps7_parameter(cmdlet, key)
                if ps7 and key.lower() not in table.guarded:
                    findings.append(
                        (
                            splat_line,
                            f"{cmdlet} @{variable} key {key!r}: -{ps7} is PowerShell 7 only; Windows "
                            f"PowerShell 5.1 stops with ParameterBindingException",
                        )
                    )
    return findings


# --- ConvertTo-Json -Depth -----------------------------------------------------------------


def rule_convertto_json_depth(root: Node) -> list[Finding]:
    """Every ConvertTo-Json names -Depth."""
    findings: list[Finding] = []
    signature = ps_signatures.signature("ConvertTo-Json")
    assert signature is not None
    tables = ps_ast.hashtable_variables(root)
    for call in ps_ast.invocations(root):
        if ps_signatures.signature(call.name) is not signature:
            continue
        bound = {signature.resolve(p.name).parameter for p in call.parameters}
        for variable, _ in call.splats:
            table = tables.get(variable.lower())
            bound |= {signature.resolve(k).parameter for k, _ in (table.keys if table else [])}
        if "Depth" not in bound:
            findings.append(
                (
                    call.line,
                    "ConvertTo-Json without -Depth: Windows PowerShell 5.1 stops at depth 2 and "
                    "silently writes deeper objects as their type name; pass -Depth",
                )
            )
    return findings


# --- $ErrorActionPreference ----------------------------------------------------------------

_EAP = re.compile(
    r"^\$(?:global:|script:)?ErrorActionPreference\s*=\s*"
    r"(?:'Stop'|\"Stop\"|\[System\.Management\.Automation\.ActionPreference\]::Stop)\s*;?$",
    re.I,
)
# Statements allowed before it: Set-StrictMode and the other preference variables.
_BEFORE_EAP = re.compile(r"^(?:Set-StrictMode\b|\$(?:global:|script:)?\w+Preference\s*=)", re.I)


def rule_error_action_stop(root: Node) -> list[Finding]:
    """`$ErrorActionPreference = 'Stop'` is the first statement after the param block."""
    statements = [
        c
        for top in root.children
        if top.type == "statement_list"
        for c in top.named_children
        if c.type not in {"comment", "empty_statement"}
    ]
    for statement in statements:
        source = ps_ast.text(statement).strip()
        if _EAP.match(source):
            return []
        if not _BEFORE_EAP.match(source):
            return [
                (
                    ps_ast.line(statement),
                    "the script does not set $ErrorActionPreference = 'Stop' right after its param "
                    "block: Windows PowerShell 5.1 defaults to Continue, so after a "
                    "non-terminating error the script goes on and can report success",
                )
            ]
    return [
        (
            1,
            "no $ErrorActionPreference = 'Stop' at the top: Windows PowerShell 5.1 defaults to "
            "Continue, so after a non-terminating error the script goes on",
        )
    ]


# --- Enum-typed properties in JSON output ----------------------------------------------------

# Properties that hold an enum (or, for OwnerNode, a ClusterNode object) on the objects the
# scripts read: ConvertTo-Json in Windows PowerShell 5.1 writes an enum as its number and an
# object as a nested object, not as the name the wizard expects.
ENUM_PROPERTIES = {
    "state": "ClusterNode/ClusterGroup/ClusterResource State, ScheduledTask State",
    "status": "ServiceController Status (ServiceControllerStatus)",
    "starttype": "ServiceController StartType (ServiceStartMode)",
    "installstate": "Get-WindowsFeature InstallState",
    "quorumtype": "Get-ClusterQuorum QuorumType",
    "ownernode": "ClusterGroup OwnerNode: a ClusterNode object, not an enum",
    "commandstate": "the CommandState of a job or scheduled run",
    "result": "Test-Cluster / task run Result",
    "logontype": "ScheduledTask principal LogonType",
    "runlevel": "ScheduledTask principal RunLevel",
}
_AUTOMATIC = frozenset(
    {"", "_", "psitem", "true", "false", "null", "psboundparameters", "args", "input", "this"}
    | {"matches", "lastexitcode", "error", "psversiontable", "host", "pwd", "pscmdlet"}
)
_EMITTING_COMMANDS = frozenset({"foreach-object", "%", "foreach", "write-output", "echo"})
_SELECT = frozenset({"select-object", "select"})
_PASS_THROUGH = frozenset(
    {"where-object", "where", "?", "sort-object", "sort", "write-output", "echo"}
    | {"tee-object", "tee"}
)
_CONTROL = frozenset(
    {"if_statement", "elseif_clause", "while_statement", "do_statement", "foreach_statement"}
    | {"for_statement", "switch_statement", "switch_clause"}
)
_BODY = frozenset(
    {"statement_block", "else_clause", "elseif_clauses", "switch_body", "switch_clauses"}
)
_OPERATOR_EXPRESSIONS = frozenset(
    {"logical_expression", "bitwise_expression", "comparison_expression", "additive_expression"}
    | {"multiplicative_expression", "format_expression", "range_expression"}
)


def _command_name(command: Node) -> str:
    name = command.child_by_field_name("command_name")
    return ps_ast.text(name).rsplit("\\", 1)[-1].lower()


def _passes_through(command: Node) -> bool:
    name = _command_name(command)
    if name in _SELECT:
        elements = command.child_by_field_name("command_elements")
        written = [
            ps_ast.text(c).lstrip("-").lower()
            for c in (elements.named_children if elements else [])
            if c.type != "command_argument_sep"
        ]
        return all(w in {"first", "last", "skip", "unique"} or w.isdigit() for w in written)
    return name in _PASS_THROUGH


_STRING_CASTS = frozenset({"[string]", "[string[]]", "[system.string]", "[system.string[]]"})
_CHANGING_NODES = frozenset(
    {"expandable_string_literal", "expandable_here_string_literal", "argument_list"}
    | {"assignment_expression", "function_statement"}
)


def _changes_value(parent: Node, child: Node) -> bool:
    """Whether ``parent`` turns the value of its ``child`` into something else (or drops it)."""
    kind = parent.type
    first = parent.child(0)
    if kind in {"member_access", "invokation_expression"}:
        return first == child  # a member of it is read, or a method called (.ToString())
    if kind == "cast_expression":
        return ps_ast.text(first).replace(" ", "").lower() in _STRING_CASTS
    if kind == "expression_with_unary_operator":
        # -not $x, !$x, -$x change it; the unary comma and casts do not
        return first is not None and first.type != "cast_expression" and ps_ast.text(first) != ","
    if kind in _OPERATOR_EXPRESSIONS:
        return parent.child_count > 1  # -eq, -f, -join, -replace...: a new value
    if kind in _CONTROL:
        return child.type not in _BODY  # a condition or the collection of a loop
    if kind == "flow_control_statement":
        return ps_ast.text(parent).lower().startswith("throw")
    if kind == "command_elements":
        command = parent.parent
        name = _command_name(command) if command is not None else ""
        return name not in _EMITTING_COMMANDS | _SELECT  # an argument, not output
    if kind == "pipeline_chain":
        later = [c for c in parent.named_children if c.start_byte > child.start_byte]
        return any(c.type == "command" and not _passes_through(c) for c in later)
    return kind in _CHANGING_NODES


def _emits(node: Node, stop: Node) -> bool:
    """Whether the value of ``node`` reaches the output of ``stop`` unchanged."""
    child = node
    for parent in ps_ast.ancestors(node):
        if child == stop:
            return True
        if _changes_value(parent, child):
            return False
        child = parent
    return child == stop


def _variable(node: Node) -> str:
    """The lower-cased name of a script variable ('' for $env:X and other drive variables)."""
    name = re.sub(r"^[$@]\{?|\}$", "", ps_ast.text(node)).lower()
    scope, _, rest = name.rpartition(":")
    return rest if scope in {"", "script", "global", "local", "private"} else ""


def _json_regions(root: Node) -> list[Node]:
    """Nodes whose output ends up in ConvertTo-Json, closed over variables and functions."""
    signature = ps_signatures.signature("ConvertTo-Json")
    functions = {
        ps_ast.text(c).lower(): n
        for n in ps_ast.walk(root)
        if n.type == "function_statement"
        for c in n.children
        if c.type == "function_name"
    }
    regions: list[Node] = []
    for call in ps_ast.invocations(root):
        if ps_signatures.signature(call.name) is not signature:
            continue
        chain = call.node.parent
        if chain is not None and chain.type == "pipeline_chain":
            regions.extend(c for c in chain.named_children if c.end_byte <= call.node.start_byte)
        for param in call.parameters:
            if signature.resolve(param.name).parameter == "InputObject" and param.value:
                regions.append(param.value)
    seen_vars: set[str] = set()
    seen_functions: set[str] = set()
    index = 0
    while index < len(regions):
        region = regions[index]
        index += 1
        new_vars = (
            {
                _variable(n)
                for n in ps_ast.walk(region)
                if n.type == "variable" and _emits(n, region)
            }
            - _AUTOMATIC
            - seen_vars
        )
        for call in ps_ast.invocations(region):
            low = call.name.lower()
            if low in functions and low not in seen_functions and _emits(call.node, region):
                seen_functions.add(low)
                body = [c for c in functions[low].children if c.type == "script_block"]
                regions.extend(body)
        seen_vars |= new_vars
        if not new_vars:
            continue
        for node in ps_ast.walk(root):
            if node.type == "assignment_expression":
                value = node.child_by_field_name("value")
                left = node.child(0)
                cores = (
                    [
                        n
                        for n in ps_ast.walk(left)
                        if n.type in {"variable", "member_access", "element_access"}
                    ]
                    if left
                    else []
                )
                if not cores or value is None:
                    continue
                target = cores[0]
                base = target if target.type == "variable" else target.child(0)
                if base is not None and base.type == "variable" and _variable(base) in new_vars:
                    regions.append(value)
            elif node.type == "invokation_expression":
                base = node.child(0)
                member = [c for c in node.children if c.type == "member_name"]
                if (
                    base is not None
                    and base.type == "variable"
                    and _variable(base) in new_vars
                    and member
                    and ps_ast.text(member[0]).lower() in {"add", "insert"}
                ):
                    regions.extend(
                        a
                        for lst in ps_ast.walk(node)
                        if lst.type == "argument_expression_list"
                        for a in lst.named_children
                    )
    return regions


def rule_enum_properties_as_strings(root: Node) -> list[Finding]:
    """Enum-valued properties that reach ConvertTo-Json are cast to [string]."""
    findings: set[Finding] = set()
    for region in _json_regions(root):
        for node in ps_ast.walk(region):
            if node.type == "member_access":
                member = ps_ast.text(node.child(node.child_count - 1)).lower()
                if member in ENUM_PROPERTIES and _emits(node, region):
                    findings.add(
                        (
                            ps_ast.line(node),
                            f"{ps_ast.text(node)} reaches ConvertTo-Json as is "
                            f"({ENUM_PROPERTIES[member]}): Windows PowerShell 5.1 writes an enum "
                            f"as its number and an object as a nested object; write "
                            f"[string]{ps_ast.text(node)}",
                        )
                    )
            elif node.type == "command" and _command_name(node) in _SELECT:
                if not _emits(node, region):
                    continue
                elements = node.child_by_field_name("command_elements")
                for token in ps_ast.walk(elements) if elements else []:
                    value = (
                        ps_ast.literal_string(token)
                        if token.type in {"generic_token", "string_literal"}
                        else None
                    )
                    if value and value.lower() in ENUM_PROPERTIES:
                        findings.add(
                            (
                                ps_ast.line(token),
                                f"Select-Object {value} reaches ConvertTo-Json as is "
                                f"({ENUM_PROPERTIES[value.lower()]}): Windows PowerShell 5.1 "
                                f"writes an enum as its number; use "
                                f"@{{n='{value}'; e={{[string]$_.{value}}}}}",
                            )
                        )
    return sorted(findings)


# --- The rules over the scripts ----------------------------------------------------------------

RULES: dict[str, Callable[[Node], list[Finding]]] = {
    "catch_types": rule_catch_types,
    "module_type_literals": rule_module_type_literals,
    "parses_on_51": rule_parses_on_51,
    "no_ps7_parameters": rule_no_ps7_parameters,
    "convertto_json_depth": rule_convertto_json_depth,
    "error_action_stop": rule_error_action_stop,
    "enum_properties_as_strings": rule_enum_properties_as_strings,
}


def findings(source: str | bytes, rule: str) -> list[Finding]:
    """Run one rule over PowerShell text."""
    return RULES[rule](ps_ast.parse(source))


def findings_in_file(path, rule: str) -> list[Finding]:
    """Run one rule over a script and over the scripts it embeds in here-strings."""
    data = path.read_bytes()
    found = findings(data, rule)
    for embedded in ps_ast.embedded_scripts(ps_ast.parse(data)):
        found += [
            (line + embedded.first_line - 1, f"(embedded script) {message}")
            for line, message in findings(embedded.text, rule)
        ]
    return found


@pytest.mark.parametrize("rule", sorted(RULES))
@pytest.mark.parametrize("path", ps_ast.app_scripts(), ids=lambda p: p.name)
def test_script_follows_rule(path, rule):
    found = findings_in_file(path, rule)
    assert not found, "\n".join(f"{path.name}:{line}: {rule}: {msg}" for line, msg in found)


# --- Negative tests: each rule on in-memory text ---------------------------------------------


def _lines(source: str, rule: str) -> list[int]:
    return [line for line, _ in findings(source, rule)]


@pytest.mark.parametrize(
    "type_name",
    [
        "Microsoft.ActiveDirectory.Management.ADIdentityNotFoundException",
        "Microsoft.FailoverClusters.PowerShell.ClusterCmdletException",
    ],
)
def test_catch_of_a_module_type_is_refused(type_name):
    source = f"param()\ntry {{ Get-Thing }}\ncatch [{type_name}] {{ }}\n"
    found = findings(source, "catch_types")
    assert [line for line, _ in found] == [3]
    assert "TypeNotFound" in found[0][1]


@pytest.mark.parametrize(
    "type_name",
    [
        "System.Management.Automation.ItemNotFoundException",
        "Microsoft.Management.Infrastructure.CimException",
        "System.Net.WebException",
        "Net.WebException",
        "System.UnauthorizedAccessException",
    ],
)
def test_catch_of_an_always_loaded_type_is_allowed(type_name):
    assert _lines(f"try {{ }} catch [{type_name}] {{ }}", "catch_types") == []


@pytest.mark.parametrize(
    "source",
    [
        "$id = [Microsoft.ActiveDirectory.Management.ADAccount]$x",
        "if ($e -is [Microsoft.ActiveDirectory.Management.ADIdentityNotFoundException]) { }",
        "[Microsoft.FailoverClusters.PowerShell.ClusterGroupState]::Online",
    ],
)
def test_module_type_literal_is_refused(source):
    assert _lines(f"param()\n{source}\n", "module_type_literals") == [2]


def test_core_type_literals_are_allowed():
    source = "[string]$a; [System.Net.ServicePointManager]::SecurityProtocol; [Security.Principal.WindowsIdentity]::GetCurrent()"
    assert _lines(source, "module_type_literals") == []


@pytest.mark.parametrize(
    ("source", "word"),
    [
        ("$a = $b ?? 'x'", "??"),
        ("$a ??= 1", "??="),
        ("$c = ${a}?.Name", "?."),
        ("$c = ${a}?[0]", "?."),
        ("$c = ($a -eq 1) ? 'y' : 'n'", "ternary"),
        ("Get-Item x && Get-Item y", "&&"),
        ("Get-Item x || Get-Item y", "||"),
    ],
)
def test_powershell_7_syntax_is_refused(source, word):
    found = findings(f"param()\n{source}\n", "parses_on_51")
    assert found, source
    assert all(line == 2 for line, _ in found), found
    assert any(word in msg for _, msg in found), found
    assert all("ParseException" in msg for _, msg in found)


@pytest.mark.parametrize("source", ["if ($x) { ", "Get-Service | Select-Object Name, Status"])
def test_a_script_the_parser_cannot_read_is_refused(source):
    found = findings(f"param()\n{source}\n", "parses_on_51")
    assert found and all("tree-sitter-powershell cannot parse" in msg for _, msg in found), found


def test_strings_with_question_marks_parse():
    assert _lines("$x = 'a ?? b'; $y = \"c ? d : e\"; Write-Output ?", "parses_on_51") == []


@pytest.mark.parametrize(
    ("source", "param"),
    [
        ("1..3 | ForEach-Object -Parallel { $_ }", "Parallel"),
        ("Invoke-WebRequest -Uri x -SkipCertificateCheck", "SkipCertificateCheck"),
        ("Invoke-RestMethod -Uri x -SkipCert", "SkipCertificateCheck"),
        ("$o | ConvertTo-Json -Depth 3 -EnumsAsStrings", "EnumsAsStrings"),
        ("$o | ConvertTo-Json -Depth 3 -AsArray", "AsArray"),
        ("'{}' | ConvertFrom-Json -AsHashtable", "AsHashtable"),
        ("Get-Content -Path x -AsByteStream", "AsByteStream"),
        (
            "$p = @{ Uri = 'x'; SkipCertificateCheck = $true }\nInvoke-WebRequest @p",
            "SkipCertificateCheck",
        ),
    ],
)
def test_powershell_7_parameters_are_refused(source, param):
    found = findings(source, "no_ps7_parameters")
    assert len(found) == 1 and f"-{param} is PowerShell 7 only" in found[0][1], found


@pytest.mark.parametrize("encoding", ["utf8NoBOM", "utf8BOM", "ansi", "'latin1'", "65001"])
def test_powershell_7_encodings_are_refused(encoding):
    found = findings(f"Set-Content -Path x -Value y -Encoding {encoding}", "no_ps7_parameters")
    assert len(found) == 1 and "-Encoding" in found[0][1], found


def test_version_guarded_and_51_parameters_are_allowed():
    source = (
        "Set-Content -Path x -Value y -Encoding UTF8\n"
        "$o | ConvertTo-Json -Depth 4 -Compress\n"
        "1..3 | ForEach-Object -Process { $_ }\n"
        "$r = @{ Uri = 'x' }\n"
        "if ($PSVersionTable.PSVersion.Major -ge 6) { $r.SkipCertificateCheck = $true }\n"
        "if ($PSVersionTable.PSVersion.Major -ge 7) { 1..3 | ForEach-Object -Parallel { $_ } }\n"
        "Invoke-WebRequest @r\n"
    )
    assert findings(source, "no_ps7_parameters") == []


def test_convertto_json_without_depth_is_refused():
    source = "param()\n$a | ConvertTo-Json -Compress\n$b | ConvertTo-Json -Depth 5\n$p = @{ Depth = 3 }\n$c | ConvertTo-Json @p\nConvertTo-Json -InputObject $d -Dep 4\n"
    found = findings(source, "convertto_json_depth")
    assert [line for line, _ in found] == [2]
    assert "depth 2" in found[0][1]


@pytest.mark.parametrize(
    "source",
    [
        "param([string]$a)\nImport-Module X\n$ErrorActionPreference = 'Stop'\n",
        "param([string]$a)\nGet-Thing\n",
        "param([string]$a)\n$ErrorActionPreference = 'Continue'\n",
        "param([string]$a)\nif ($a) { $ErrorActionPreference = 'Stop' }\n",
    ],
)
def test_missing_error_action_stop_is_refused(source):
    found = findings(source, "error_action_stop")
    assert found and "Continue" in found[0][1]


@pytest.mark.parametrize(
    "source",
    [
        "[CmdletBinding()]\nparam([string]$a)\n\n# note\n$ErrorActionPreference = 'Stop'\nGet-Thing\n",
        "param()\nSet-StrictMode -Version 2\n$ProgressPreference = 'SilentlyContinue'\n$ErrorActionPreference = \"Stop\"\n",
    ],
)
def test_error_action_stop_at_the_top_is_accepted(source):
    assert findings(source, "error_action_stop") == []


@pytest.mark.parametrize(
    ("source", "line"),
    [
        ("[PSCustomObject]@{ state = $g.State } | ConvertTo-Json -Depth 3", 1),
        ("$r = [ordered]@{}\n$r.owner = $g.OwnerNode\n$r | ConvertTo-Json -Depth 3", 2),
        (
            "$n = @(Get-ClusterNode | ForEach-Object { @{ s = $_.State } })\n@{ nodes = $n } | ConvertTo-Json -Depth 4",
            1,
        ),
        (
            "function F($g) { [ordered]@{ t = $g.QuorumType } }\n$x = F $q\nConvertTo-Json -InputObject @{ x = $x } -Depth 3",
            1,
        ),
        ("@{ s = if ($svc) { $svc.Status } else { 'none' } } | ConvertTo-Json -Depth 2", 1),
        ("Get-Service | Select-Object -Property 'Name', 'Status' | ConvertTo-Json -Depth 2", 1),
        (
            "$list = New-Object System.Collections.ArrayList\n[void]$list.Add(@{ r = $t.RunLevel })\n$list | ConvertTo-Json -Depth 3",
            2,
        ),
    ],
)
def test_enum_property_in_json_output_is_refused(source, line):
    found = findings(source, "enum_properties_as_strings")
    assert [f[0] for f in found] == [line], found
    assert "5.1 writes an enum as its number" in found[0][1]


def test_stringified_enum_properties_are_accepted():
    source = (
        "$svc = Get-Service x\n"
        '$r = [ordered]@{ a = [string]$svc.Status; b = "$($svc.StartType)"; c = $svc.Status.ToString() }\n'
        "$r.d = [string]$g.OwnerNode.Name\n"
        "$r.e = ($f.InstallState -eq 'Installed')\n"
        "$r.f = '{0}' -f $q.QuorumType\n"
        "$r.g = @($n | Where-Object { $_.State -eq 'Up' } | ForEach-Object { [string]$_.Name })\n"
        "$r.h = if ($svc.Status -eq 'Running') { 'ok' } else { 'no' }\n"
        "Write-Progress -Activity a -Status $g.State\n"
        "$r | ConvertTo-Json -Depth 3\n"
    )
    assert findings(source, "enum_properties_as_strings") == []


def test_embedded_scripts_are_checked(tmp_path):
    script = tmp_path / "outer.ps1"
    script.write_text(
        "param()\n$ErrorActionPreference = 'Stop'\n$b = @'\nparam($x)\n$x | ConvertTo-Json\n'@\n",
        encoding="utf-8",
    )
    assert findings_in_file(script, "convertto_json_depth") != []
    lines = [line for line, _ in findings_in_file(script, "error_action_stop")]
    assert lines == [5]  # the embedded script's first statement after param()


def test_enum_property_not_sent_to_json_is_ignored():
    assert findings("$s = $svc.Status\nWrite-Output $s\n", "enum_properties_as_strings") == []
