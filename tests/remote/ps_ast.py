"""Shared tree-sitter-powershell helpers for the static checks of the vetted scripts.

The parser is tree-sitter-powershell; it follows the PowerShell 7 grammar loosely, so the
checks built on it treat its tree as evidence, not as the Windows PowerShell 5.1 parser.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import tree_sitter_powershell
from tree_sitter import Language, Node, Parser

ROOT = Path(__file__).resolve().parents[2]
SCRIPTS_DIR = ROOT / "app" / "scripts"
PARSER = Parser(Language(tree_sitter_powershell.language()))

# A cmdlet-style name: Verb-Noun (optionally module-qualified, which `command_name` strips).
VERB_NOUN = re.compile(r"^[A-Za-z]+-[A-Za-z][A-Za-z0-9]*$")
# `if ($PSVersionTable.PSVersion.Major -ge 6)` and the like: the branch never runs on 5.1.
_PS6_OR_LATER = re.compile(
    r"\$PSVersionTable\.PSVersion\.Major\s*(?:-ge\s*(?:[6-9]|\d\d)|-gt\s*(?:[5-9]|\d\d))\b", re.I
)
_PS5_OR_EARLIER = re.compile(
    r"\$PSVersionTable\.PSVersion\.Major\s*(?:-lt\s*(?:[6-9]|\d\d)|-le\s*5|-eq\s*5)\b", re.I
)


def app_scripts() -> list[Path]:
    """The vetted scripts the wizard runs on Windows PowerShell 5.1 nodes."""
    return sorted(SCRIPTS_DIR.glob("*.ps1"))


def parse(source: str | bytes) -> Node:
    """Return the root node of ``source`` (text or bytes, a leading BOM is dropped)."""
    data = source.encode("utf-8") if isinstance(source, str) else source
    return PARSER.parse(data.removeprefix(b"\xef\xbb\xbf")).root_node


def parse_file(path: Path) -> Node:
    """Return the root node of a script file."""
    return parse(path.read_bytes())


def walk(node: Node) -> Iterator[Node]:
    """Every node under ``node`` (itself included), in source order."""
    stack = [node]
    while stack:
        current = stack.pop()
        yield current
        stack.extend(reversed(current.children))


def text(node: Node | None) -> str:
    """The source text of ``node`` ('' for None)."""
    return node.text.decode("utf-8", errors="replace") if node is not None and node.text else ""


def line(node: Node) -> int:
    """The 1-based line ``node`` starts on."""
    return node.start_point[0] + 1


def ancestors(node: Node) -> Iterator[Node]:
    """The parents of ``node``, nearest first."""
    current = node.parent
    while current is not None:
        yield current
        current = current.parent


def literal_string(node: Node | None) -> str | None:
    """The value of a bare word or a quoted string without expansions, else None."""
    if node is None:
        return None
    if re.fullmatch(r"\d+", text(node).strip()):
        return text(node).strip()
    if (
        node.type in {"generic_token", "simple_name", "key_expression", "member_name"}
        and node.named_child_count <= 1
    ):
        return text(node).strip()
    strings = [
        n
        for n in walk(node)
        if n.type in {"verbatim_string_characters", "expandable_string_literal"}
    ]
    if len(strings) != 1:
        return None
    if any(n.type in {"variable", "sub_expression"} for n in walk(strings[0])):
        return None
    raw = text(strings[0]).strip()
    if len(raw) >= 2 and raw[0] == raw[-1] and raw[0] in "'\"":
        raw = raw[1:-1]
    return raw


@dataclass
class Parameter:
    """One `-Name` written on a command line."""

    name: str  # without the dash
    line: int
    node: Node
    value: Node | None  # the next argument (also the `-Name:value` form), None if none follows


@dataclass
class Invocation:
    """One command invocation whose name is written literally."""

    name: str  # as written, without a module qualifier
    written: str  # as written, with any qualifier
    line: int
    node: Node
    parameters: list[Parameter] = field(default_factory=list)
    splats: list[tuple[str, int]] = field(default_factory=list)  # (variable name, line)

    def parameter_names(self) -> list[str]:
        """The written parameter names, without dashes."""
        return [p.name for p in self.parameters]


def _elements(command: Node) -> list[Node]:
    elements = command.child_by_field_name("command_elements")
    return list(elements.children) if elements is not None else []


def invocations(root: Node) -> Iterator[Invocation]:
    """Commands called by a literal name; `& $var`, `& (expr)` and script blocks are skipped."""
    for node in walk(root):
        if node.type != "command":
            continue
        name_node = node.child_by_field_name("command_name")
        if name_node is None:
            continue
        if name_node.type == "command_name_expr":
            inner = [c for c in name_node.named_children if c.type == "command_name"]
            if len(inner) != 1:
                continue  # & $variable, & (Join-Path ...), & { ... }
            name_node = inner[0]
        written = text(name_node)
        invocation = Invocation(
            name=written.rsplit("\\", 1)[-1], written=written, line=line(node), node=node
        )
        children = [c for c in _elements(node) if c.type != "command_argument_sep"]
        for index, child in enumerate(children):
            if child.type == "command_parameter":
                after = children[index + 1] if index + 1 < len(children) else None
                value = after if after is not None and after.type != "command_parameter" else None
                invocation.parameters.append(
                    Parameter(
                        text(child).lstrip("-\u2013\u2014").rstrip(":"), line(child), child, value
                    )
                )
            elif text(child).startswith("@") and re.fullmatch(r"@\w+", text(child)):
                invocation.splats.append((text(child)[1:], line(child)))
        yield invocation


def defined_functions(root: Node) -> set[str]:
    """Lower-cased names of the functions the script defines itself."""
    return {
        text(c).lower()
        for n in walk(root)
        if n.type == "function_statement"
        for c in n.children
        if c.type == "function_name"
    }


@dataclass
class HashtableVariable:
    """What a script assigns to one variable it later splats."""

    keys: list[tuple[str, int]] = field(default_factory=list)  # (key, line)
    literal: bool = True  # False once any assignment or key is not a literal
    guarded: set[str] = field(default_factory=set)  # keys only set in a PS6+ branch
    assigned: bool = False


def _assignment_target(assignment: Node) -> Node | None:
    left = assignment.child(0)
    if left is None:
        return None
    cores = [n for n in walk(left) if n.type in {"variable", "member_access", "element_access"}]
    return cores[0] if cores else None


def _variable_name(node: Node) -> str:
    return re.sub(r"^[$@]|^\$\{|\}$", "", text(node)).split(":")[-1].lower()


def hashtable_variables(root: Node) -> dict[str, HashtableVariable]:
    """For each variable: the literal keys assigned to it through `@{...}`, `.Key =`, `['Key'] =`."""
    found: dict[str, HashtableVariable] = {}
    for node in walk(root):
        if node.type == "assignment_expression":
            target = _assignment_target(node)
            value = node.child_by_field_name("value")
            if target is None:
                continue
            operator = text(node.child(1)).strip()
            if target.type == "variable":
                info = found.setdefault(_variable_name(target), HashtableVariable())
                info.assigned = True
                hashes = (
                    [n for n in walk(value) if n.type == "hash_literal_expression"] if value else []
                )
                top = hashes[0] if hashes else None
                if top is None or text(value).strip()[:1] not in {"@", "["}:
                    info.literal = False
                    continue
                if operator not in {"=", "+="}:
                    info.literal = False
                for entry in (c for c in walk(top) if c.type == "hash_entry"):
                    if entry.parent is None or entry.parent.parent != top:
                        continue
                    key = literal_string(entry.child_by_field_name("key") or entry.child(0))
                    if key is None:
                        info.literal = False
                    else:
                        info.keys.append((key, line(entry)))
                        if is_ps6_only(entry):
                            info.guarded.add(key.lower())
            elif target.type in {"member_access", "element_access"}:
                base = target.child(0)
                if base is None or base.type != "variable":
                    continue
                info = found.setdefault(_variable_name(base), HashtableVariable())
                if target.type == "member_access":
                    key = literal_string(target.child(target.child_count - 1))
                else:
                    inner = list(target.named_children[1:])
                    key = literal_string(inner[0]) if inner else None
                if key is None:
                    info.literal = False
                else:
                    info.keys.append((key, line(target)))
                    if is_ps6_only(target):
                        info.guarded.add(key.lower())
        elif node.type == "invokation_expression":
            # $params.Add('Key', value)
            base = node.child(0)
            member = [c for c in node.children if c.type == "member_name"]
            if base is None or base.type != "variable" or not member:
                continue
            if text(member[0]).lower() not in {"add", "remove"}:
                continue
            info = found.setdefault(_variable_name(base), HashtableVariable())
            args = [n for n in walk(node) if n.type == "argument_expression_list"]
            first = args[0].named_children[0] if args and args[0].named_children else None
            key = literal_string(first)
            if key is None:
                info.literal = False
            elif text(member[0]).lower() == "add":
                info.keys.append((key, line(node)))
    return found


def _condition(node: Node) -> str:
    return " ".join(text(c) for c in node.children if c.type == "pipeline")


def is_ps6_only(node: Node) -> bool:
    """True when ``node`` sits in a branch that only runs on PowerShell 6 or later."""
    for parent in ancestors(node):
        if parent.type != "statement_block" or parent.parent is None:
            continue
        owner = parent.parent
        if owner.type in {"if_statement", "elseif_clause"}:
            blocks = [c for c in owner.children if c.type == "statement_block"]
            if blocks and blocks[0] == parent and _PS6_OR_LATER.search(_condition(owner)):
                return True
        if owner.type == "else_clause" and owner.parent is not None:
            statement = owner.parent
            if statement.type == "if_statement" and _PS5_OR_EARLIER.search(_condition(statement)):
                return True
    return False


def error_nodes(root: Node) -> list[Node]:
    """The ERROR and MISSING nodes tree-sitter put in the tree (outermost first)."""
    return [n for n in walk(root) if n.type == "ERROR" or n.is_missing]


def type_names(root: Node) -> Iterator[tuple[str, Node, bool]]:
    """(full type name, type_literal node, is in a `catch [...]` list) for every type literal."""
    for node in walk(root):
        if node.type != "type_literal":
            continue
        spec = next((c for c in node.named_children if c.type == "type_spec"), None)
        names = [c for c in walk(spec) if c.type == "type_name"] if spec else []
        name = text(names[0]) if names else text(spec)
        in_catch = node.parent is not None and node.parent.type == "catch_type_list"
        yield re.sub(r"\s+", "", name), node, in_catch


@dataclass
class Embedded:
    """A PowerShell script held in a verbatim here-string (task_run.ps1's bootstrap)."""

    text: str
    first_line: int  # the line of the outer script the here-string's first line is on


def embedded_scripts(root: Node) -> list[Embedded]:
    """Verbatim here-strings whose first statement is `param(`: scripts run on the node too."""
    found: list[Embedded] = []
    for node in walk(root):
        if node.type != "verbatim_here_string_characters":
            continue
        raw = text(node)
        body = re.sub(r"^@'[ \t]*\r?\n", "", raw)
        body = re.sub(r"\r?\n'@$", "", body)
        if re.match(r"\s*(\[CmdletBinding[^\]]*\]\s*)?param\s*\(", body, re.I):
            found.append(Embedded(body + "\n", line(node) + 1))
    return found
