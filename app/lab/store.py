"""The lab's simulated state: one JSON dict on disk, shared by the server and CLI processes."""

import contextlib
import copy
import fcntl
import hashlib
import json
import os
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

DEFAULT_PATH = Path("instance") / "lab" / "state.json"


class LabStore:
    """JSON state at `path`; transactions are serialised by an fcntl lock plus a thread lock."""

    def __init__(self, path: str | os.PathLike = DEFAULT_PATH) -> None:
        self.path = Path(path)
        self.folder = self.path.parent
        self.files_dir = self.folder / "files"
        self._lock = threading.RLock()
        self._cache: dict = {}
        self._cache_key: tuple | None = None

    def read(self) -> dict:
        """A deep copy of the current state (an empty dict when nothing was saved yet)."""
        return copy.deepcopy(self._current())

    def peek(self, *keys: str, default=None):
        """A read-only look at one nested value without copying the whole state."""
        value = self._current()
        for key in keys:
            if not isinstance(value, dict) or key not in value:
                return default
            value = value[key]
        return copy.deepcopy(value)

    @contextlib.contextmanager
    def transaction(self) -> Iterator[dict]:
        """Yield the mutable state; it is saved atomically when the block exits without error."""
        with self._lock, self._file_lock():
            self._cache_key = None
            state = copy.deepcopy(self._current())
            yield state
            self._save(state)

    def replace(self, state: dict) -> None:
        """Overwrite the whole state (used by reset)."""
        with self.transaction() as current:
            current.clear()
            current.update(copy.deepcopy(state))

    def put_blob(self, data: bytes) -> str:
        """Store bytes content-addressed under files/ and return the path relative to it."""
        name = hashlib.sha256(data).hexdigest()
        target = self.files_dir / name
        if not target.exists():
            self._write_atomic(target, data)
        return name

    def put_blob_file(self, source: Path, sha256: str) -> str:
        """Move an already written temp file into the blob folder under its hash."""
        self.files_dir.mkdir(parents=True, exist_ok=True)
        os.replace(source, self.files_dir / sha256)
        return sha256

    def blob_path(self, relative: str) -> Path:
        """Absolute path of a stored blob."""
        return self.files_dir / relative

    def _current(self) -> dict:
        key = self._stat_key()
        if key != self._cache_key:
            with self._lock:
                self._cache = self._load()
                self._cache_key = key
        return self._cache

    def _stat_key(self) -> tuple | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _load(self) -> dict:
        try:
            return json.loads(self.path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            return {}

    def _save(self, state: dict) -> None:
        data = json.dumps(state, indent=1, sort_keys=True).encode("utf-8")
        self._write_atomic(self.path, data)
        self._cache = state
        self._cache_key = self._stat_key()

    @contextlib.contextmanager
    def _file_lock(self) -> Iterator[None]:
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.path.with_suffix(".lock"), "a+b") as handle:
            fcntl.flock(handle, fcntl.LOCK_EX)
            try:
                yield
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)

    @staticmethod
    def _write_atomic(target: Path, data: bytes) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, temp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.replace(temp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(temp)
            raise
