"""Map a CREATE_PIPELINE to a lab handler; vetted scripts are recognised only by exact text."""

import dataclasses
import importlib.resources
import json
import logging
import re
from collections.abc import Callable, Iterable
from pathlib import Path

from psrpcore.types import PSSecureString

from app.lab import files
from app.lab.context import ScriptContext, ScriptFailure
from app.lab.handlers import HANDLERS, REACHES, load_handlers
from app.lab.psrp import PipelineIO, Session
from app.lab.store import LabStore
from app.remote.scripts import strip_comments

log = logging.getLogger(__name__)

APP_DIR = Path(__file__).resolve().parents[1]
UNRECOGNISED = (
    "The lab does not recognise this script: only the project's vetted .ps1 files are simulated "
    "(was the script text assembled at run time?)"
)
BUILTINS: dict[str, Callable] = {
    "pypsrp.copy": files.copy_handler,
    "pypsrp.fetch": files.fetch_handler,
}
_OPEN, _CLOSE = "([{", ")]}"


@dataclasses.dataclass(frozen=True)
class VettedScript:
    """A known script: its name (file stem), where it came from and its declared parameters."""

    name: str
    source: str
    params: tuple[str, ...]
    types: dict[str, str] = dataclasses.field(default_factory=dict)  # lower name -> lower type


def normalise(text: str) -> str:
    """The comparison form: no BOM, LF line endings, no surrounding blank space."""
    return text.lstrip("\ufeff").replace("\r\n", "\n").strip()


def param_names(text: str) -> tuple[str, ...]:
    """Names declared in the script's top-level param() block, in order."""
    head = re.sub(r"(?s)<#.*?#>", "", text)
    head = re.sub(r"(?m)^\s*#.*$", "", head).lstrip()
    while head.startswith("["):  # script attributes such as [CmdletBinding()]
        head = head[len(_balanced(head, 0)) + 2 :].lstrip()
    match = re.match(r"(?i)param\s*\(", head)
    if not match:
        return ()
    block = _balanced(head, match.end() - 1)
    return tuple(n for n in (_param_name(seg) for seg in _split_top(block)) if n)


def param_types(text: str) -> dict[str, str]:
    """Each declared parameter's type constraint (lower case; "" when untyped), by lower name."""
    head = re.sub(r"(?s)<#.*?#>", "", text)
    head = re.sub(r"(?m)^\s*#.*$", "", head).lstrip()
    while head.startswith("["):
        head = head[len(_balanced(head, 0)) + 2 :].lstrip()
    match = re.match(r"(?i)param\s*\(", head)
    if not match:
        return {}
    types = {}
    for segment in _split_top(_balanced(head, match.end() - 1)):
        declared = re.search(r"\[(\w[\w.]*)\]\s*\$(\w+)", re.sub(r"(?m)#.*$", "", segment))
        if declared:
            types[declared.group(2).lower()] = declared.group(1).lower()
    return types


def _balanced(text: str, start: int) -> str:
    depth, quote = 0, None
    for i in range(start, len(text)):
        ch = text[i]
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth -= 1
            if depth == 0:
                return text[start + 1 : i]
    return text[start + 1 :]


def _split_top(block: str) -> list[str]:
    parts, depth, quote, current = [], 0, None, []
    for ch in block:
        if quote:
            quote = None if ch == quote else quote
        elif ch in "'\"":
            quote = ch
        elif ch in _OPEN:
            depth += 1
        elif ch in _CLOSE:
            depth -= 1
        elif ch == "," and depth == 0:
            parts.append("".join(current))
            current = []
            continue
        current.append(ch)
    parts.append("".join(current))
    return parts


def _param_name(segment: str) -> str | None:
    text = re.sub(r"(?m)#.*$", "", segment)
    while (stripped := re.sub(r"\[[^\[\]]*\]", "", text)) != text:
        text = stripped
    match = re.search(r"\$(\w+)", text.split("=", 1)[0])
    return match.group(1) if match else None


class ScriptCatalog:
    """Every vetted script text the lab will simulate, keyed by its normalised text."""

    def __init__(self, extra_dirs: Iterable[str | Path] = ()) -> None:
        self._by_text: dict[str, VettedScript] = {}
        for folder in (APP_DIR, *map(Path, extra_dirs)):
            for path in sorted(Path(folder).rglob("*.ps1")):
                self.add(path.stem, path.read_text(encoding="utf-8-sig"), str(path))
        self._add_pypsrp_scripts()

    def add(self, name: str, text: str, source: str = "") -> None:
        """Register one script text under a name."""
        self._by_text[normalise(text)] = VettedScript(
            name, source, param_names(text), param_types(text)
        )

    def match(self, text: str) -> VettedScript | None:
        """The vetted script whose text this is, if any."""
        return self._by_text.get(normalise(text))

    @property
    def names(self) -> list[str]:
        """Names of all known scripts."""
        return sorted({s.name for s in self._by_text.values()})

    def _add_pypsrp_scripts(self) -> None:
        package = importlib.resources.files("pypsrp.pwsh_scripts")
        for stem in ("copy", "fetch"):
            text = package.joinpath(f"{stem}.ps1").read_text(encoding="utf-8-sig")
            for variant in (text, strip_comments(text)):
                self.add(f"pypsrp.{stem}", variant, f"pypsrp/pwsh_scripts/{stem}.ps1")


@dataclasses.dataclass
class Invocation:
    """The script text, its parameters, and whether pypsrp's execute_ps wrapper was used."""

    text: str
    parameters: list
    wrapped: bool


def identify(metadata) -> Invocation | None:
    """Find the script in a pipeline: a script command, or execute_ps' Invoke-Expression."""
    commands = list(getattr(metadata, "commands", []) or [])
    for command in commands:
        if not command.is_script and command.command_text.lower() == "invoke-expression":
            text = next((v for n, v in command.parameters if (n or "").lower() == "command"), "")
            return Invocation(str(text), [], True)
    if commands and commands[0].is_script:
        return Invocation(str(commands[0].command_text), list(commands[0].parameters), False)
    return None


def plain(value):
    """psrpcore values as plain JSON-friendly Python data."""
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, PSSecureString):
        return value.decrypt()
    for kind in (str, int, float):
        if isinstance(value, kind):
            return kind(value)
    if isinstance(value, dict):
        return {str(plain(k)): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    return str(value)


# What PowerShell makes of a SecureString bound to a [string] parameter: SecureString does not
# override Object.ToString, so the value becomes the type's name (rule secure_string_as_text).
SECURE_STRING_TEXT = "System.Security.SecureString"


def _bound(value, declared_type: str):
    if isinstance(value, PSSecureString) and declared_type in ("string", "system.string"):
        return SECURE_STRING_TEXT
    return plain(value)


def bind(
    declared: tuple[str, ...], parameters: list, types: dict[str, str] | None = None
) -> tuple[dict, list]:
    """Named parameters by their declared spelling, then positional ones in declared order."""
    lookup = {name.lower(): name for name in declared}
    types = types or {}
    params, args = {}, []
    for name, value in parameters:
        if name:
            key = name.lstrip("-")
            params[lookup.get(key.lower(), key)] = _bound(value, types.get(key.lower(), ""))
        else:
            args.append(plain(value))
    free = [name for name in declared if name not in params]
    params.update(zip(free, args, strict=False))
    return params, args


class Dispatcher:
    """The pipeline runner given to every shell: identify, apply faults, call the handler."""

    def __init__(
        self,
        store: LabStore,
        catalog: ScriptCatalog,
        on_reboot: Callable[[str, float], None] = lambda node, seconds: None,
        check_password: Callable[[str, str], bool] | None = None,
        shell_alive: Callable[[str, str], bool] = lambda node, shell_id: True,
    ) -> None:
        self.shell_alive = shell_alive
        self.store = store
        self.catalog = catalog
        self.on_reboot = on_reboot
        self.check_password = check_password
        load_handlers()

    def __call__(self, io: PipelineIO, metadata, session: Session) -> None:
        invocation = identify(metadata)
        script = self.catalog.match(invocation.text) if invocation else None
        if script is None:
            io.fail(UNRECOGNISED, "LabScriptNotRecognised")
            return
        func = BUILTINS.get(script.name) or HANDLERS.get(script.name)
        if func is None:
            io.fail(f"no lab model for script {script.name}", "LabNoModel")
            return
        params, args = bind(script.params, invocation.parameters, script.types)
        ctx = ScriptContext(
            io,
            script=script.name,
            node=session.node,
            params=params,
            args=args,
            store=self.store,
            auth=session.auth,
            username=session.username,
            as_text=invocation.wrapped,
            reaches=REACHES.get(script.name, ()),
        )
        ctx.dispatcher = self
        ctx.text = invocation.text
        ctx.shell_id = io.shell.shell_id
        try:
            self._run(func, ctx)
        except ScriptFailure as exc:
            io.fail(str(exc))

    def run_in_task(self, ctx: ScriptContext, text: str, parameters: dict, user: str) -> "TaskIO":
        """Run vetted `text` as a scheduled task would: its own logon as `user` (which holds
        network credentials), no live streams (only what it writes to its result file).

        Returns the task's IO: its output objects, warnings and terminating error, if any."""
        script = self.catalog.match(text)
        func = HANDLERS.get(script.name) if script else None
        if func is None:
            raise ScriptFailure(UNRECOGNISED)
        params, args = bind(script.params, [(k, v) for k, v in (parameters or {}).items()])
        task_io = TaskIO(ctx.io.stop_event)
        inner = ScriptContext(
            task_io,
            script=script.name,
            node=ctx.node,
            params=params,
            args=args,
            store=self.store,
            auth="task",
            username=user,
            reaches=REACHES.get(script.name, ()),
        )
        inner.dispatcher = self
        inner.text = text
        inner.shell_id = None  # a task's processes belong to Task Scheduler, not to a shell
        try:
            self._run(func, inner)
        except ScriptFailure as exc:
            task_io.failure = str(exc)
        return task_io

    def _run(self, func: Callable, ctx: ScriptContext) -> None:
        faults = self.store.peek("faults", default={}) or {}
        slow = float((faults.get("slow") or {}).get(ctx.node) or 0)
        if slow > 0:
            ctx.spend(slow, ctx.script, f"Working on {ctx.node} (lab fault: slow node)")
        if _targets((faults.get("crash_halfway") or {}).get(ctx.node), ctx.script):
            self._crash(ctx)
        reboot = _reboot_spec((faults.get("reboot_mid_action") or {}).get(ctx.node), ctx.script)
        if reboot is not None:
            self._reboot(func, ctx, reboot)
            return
        result = func(ctx)
        check_reaches(ctx)
        if result is not None:
            ctx.output(json.dumps(result))

    def _crash(self, ctx: ScriptContext) -> None:
        self._consume("crash_halfway", ctx.node)
        for percent in (0, 25, 50):
            ctx.progress(ctx.script, f"Step {percent // 25 + 1} of 4", percent)
            ctx.sleep(0.05)
        raise ScriptFailure(
            f"{ctx.script} crashed halfway on {ctx.node} (lab fault crash_halfway): the process "
            "terminated unexpectedly before making any change."
        )

    def _reboot(self, func: Callable, ctx: ScriptContext, spec: dict) -> None:
        self._consume("reboot_mid_action", ctx.node)
        ctx.progress(ctx.script, f"{ctx.node} is restarting", 50)
        if spec["apply_effect"]:
            func(ctx)
        ctx.io.abandon()
        self.on_reboot(ctx.node, spec["seconds"])

    def _consume(self, kind: str, node: str) -> None:
        with self.store.transaction() as state:
            (state.get("faults", {}).get(kind) or {}).pop(node, None)


class LabModelError(RuntimeError):
    """A handler broke the lab's own contract (a bug in the lab, never a Windows behaviour)."""


def check_reaches(ctx: ScriptContext) -> None:
    """Rule second_hop: a handler run without delegation must have asked about every resource its
    script reaches, so no model can forget the second hop."""
    if ctx.delegating:
        return
    skipped = [r for r in ctx.reaches if r not in ctx.consulted]
    if skipped:
        raise LabModelError(
            f"lab model of {ctx.script} reached {', '.join(skipped)} without ctx.reach(): "
            "the second hop rule would not apply"
        )


class TaskIO:
    """The streams of a script run by a scheduled task: collected, never live."""

    def __init__(self, stop_event) -> None:
        self.stop_event = stop_event
        self.outputs: list = []
        self.warnings: list[str] = []
        self.failure: str | None = None

    def output(self, value) -> None:
        self.outputs.append(value)

    def warning(self, message: str) -> None:
        self.warnings.append(message)

    def error(self, message: str) -> None:
        self.warnings.append(message)

    def verbose(self, message: str) -> None:
        pass

    def information(self, message: str, source: str = "") -> None:
        pass

    def progress(self, activity: str, status: str, percent: int = -1) -> None:
        pass

    def read_input(self):
        return iter(())

    def abandon(self) -> None:
        pass


def _targets(value, script: str) -> bool:
    if isinstance(value, dict):
        value = value.get("script")
    return value in (script, "*")


def _reboot_spec(value, script: str) -> dict | None:
    if not _targets(value, script):
        return None
    spec = value if isinstance(value, dict) else {}
    return {
        "seconds": float(spec.get("seconds", 3)),
        "apply_effect": bool(spec.get("apply_effect", True)),
    }
