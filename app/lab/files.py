"""pypsrp's Client.copy and Client.fetch modelled against a node's simulated file store."""

import base64
import hashlib
import ntpath
import os
import re
import tempfile

from app.lab.context import ScriptContext, ScriptFailure

_VARIABLE = re.compile(r"%([^%]+)%")


def resolve_path(raw: str, username: str, expand: bool) -> str:
    """Resolve a path the way the remote session would (relative to the user's Documents)."""
    path = _expand(raw, username) if expand else raw
    path = path.replace("/", "\\")
    if not (re.match(r"^[A-Za-z]:\\", path) or path.startswith("\\\\")):
        path = ntpath.join(_profile(username) + "\\Documents", path)
    path = ntpath.normpath(path)
    return path[0].upper() + path[1:] if re.match(r"^[a-z]:", path) else path


def find_file(files: dict, path: str) -> str | None:
    """The stored key matching `path` case-insensitively (NTFS is case-preserving only)."""
    lowered = path.lower()
    return next((key for key in files if key.lower() == lowered), None)


def copy_handler(ctx: ScriptContext) -> None:
    """copy.ps1: base64 chunks arrive as input, the last one is the SHA1 hex of the file."""
    dest = resolve_path(str(ctx.args[0]), ctx.username, _truthy(ctx.args, 1))
    temp, sha256, size = _receive_chunks(ctx)
    try:
        blob = ctx.store.put_blob_file(temp, sha256)
    except BaseException:
        os.unlink(temp)
        raise
    with ctx.store.transaction() as state:
        files = state.setdefault("nodes", {}).setdefault(ctx.node, {}).setdefault("files", {})
        files.pop(find_file(files, dest), None)
        files[dest] = {"sha256": sha256, "size": size, "blob": blob}
    ctx.output(dest)


def fetch_handler(ctx: ScriptContext) -> None:
    """fetch.ps1: output the whole file as one base64 string, then its SHA1 hex."""
    src = resolve_path(str(ctx.args[0]), ctx.username, _truthy(ctx.args, 1))
    files = ctx.store.peek("nodes", ctx.node, "files", default={})
    key = find_file(files, src)
    if key is None:
        if any(k.lower().startswith(src.lower().rstrip("\\") + "\\") for k in files):
            raise ScriptFailure(f"The path at '{src}' is a directory, src must be a file")
        raise ScriptFailure(f"The path at '{src}' does not exist")
    data = ctx.store.blob_path(files[key]["blob"]).read_bytes()
    ctx.output(base64.b64encode(data).decode("ascii"))
    ctx.output(hashlib.sha1(data, usedforsecurity=False).hexdigest())


def _receive_chunks(ctx: ScriptContext) -> tuple:
    ctx.store.files_dir.mkdir(parents=True, exist_ok=True)
    fd, temp = tempfile.mkstemp(dir=ctx.store.files_dir, prefix=".incoming-")
    sha1, sha256, size, previous = hashlib.sha1(usedforsecurity=False), hashlib.sha256(), 0, None
    try:
        with os.fdopen(fd, "wb") as handle:
            for item in ctx.input():
                if previous is not None:
                    handle.write(previous)
                    sha1.update(previous)
                    sha256.update(previous)
                    size += len(previous)
                previous = base64.b64decode(str(item))
        _check_hash(previous, sha1.hexdigest())
    except BaseException:
        os.unlink(temp)
        raise
    return temp, sha256.hexdigest(), size


def _check_hash(trailer: bytes | None, actual: str) -> None:
    expected = (trailer or b"").decode("utf-8", "replace")
    if actual != expected:
        raise ScriptFailure(
            f"Transport failure, hash mismatch\r\nActual: {actual}\r\nExpected: {expected}"
        )


def _expand(raw: str, username: str) -> str:
    profile = _profile(username)
    env = {
        "TEMP": profile + "\\AppData\\Local\\Temp",
        "TMP": profile + "\\AppData\\Local\\Temp",
        "USERPROFILE": profile,
        "USERNAME": _short(username),
        "SYSTEMROOT": "C:\\Windows",
        "WINDIR": "C:\\Windows",
        "SYSTEMDRIVE": "C:",
        "PROGRAMDATA": "C:\\ProgramData",
        "PROGRAMFILES": "C:\\Program Files",
        "APPDATA": profile + "\\AppData\\Roaming",
        "LOCALAPPDATA": profile + "\\AppData\\Local",
    }
    return _VARIABLE.sub(lambda m: env.get(m.group(1).upper(), m.group(0)), raw)


def _profile(username: str) -> str:
    return "C:\\Users\\" + _short(username)


def _short(username: str) -> str:
    return username.split("\\")[-1].split("@")[0]


def _truthy(args: list, index: int) -> bool:
    return len(args) > index and args[index] in (True, "True", "true", 1)
