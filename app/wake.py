"""Wake-ups between local processes without Redis: the embedded mode's replacement for a poll tick.

A listener binds a Unix datagram socket in Linux's abstract namespace (no file, no path-length limit,
gone when the process dies) and announces it with an empty marker file, named after the socket, in a
folder the processes share (under instance/). A sender lists that folder and sends a short datagram to
every socket named there; a marker whose socket is gone is removed.

A datagram is only a hint to look now: listeners still poll on a longer interval and read the truth
from the database or the broker folder, so a lost, duplicated or forged datagram (any local user can
send one) costs at most one extra look. Where abstract sockets are unavailable (not Linux), the
listener is inert and its owner just polls.
"""

from __future__ import annotations

import atexit
import contextlib
import logging
import os
import secrets
import select
import socket
from pathlib import Path

log = logging.getLogger(__name__)

PREFIX = "amsw-wake-"
MAX_DATAGRAM = 512


class Listener:
    """One process's wake-up socket, announced in `folder` until close()."""

    def __init__(self, folder: str | os.PathLike | None) -> None:
        """folder None: an inert listener (wait() just sleeps)."""
        self.folder = Path(folder) if folder else None
        self.name = f"{PREFIX}{secrets.token_hex(8)}"
        self.sock: socket.socket | None = None
        if self.folder is None:
            return
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.bind("\0" + self.name)
            sock.setblocking(False)
            (self.folder / self.name).touch()
            self.sock = sock
            atexit.register(self.close)  # a process that exits normally withdraws its marker
        except OSError:
            log.info("No wake-up socket here (%s); polling only", self.folder, exc_info=True)

    def wait(self, timeout: float) -> list[bytes]:
        """Block up to `timeout` seconds for wake-ups; returns every datagram waiting (maybe none)."""
        if self.sock is None:
            select.select([], [], [], timeout)
            return []
        ready, _, _ = select.select([self.sock], [], [], timeout)
        return self.drain() if ready else []

    def drain(self) -> list[bytes]:
        """The datagrams waiting now, without blocking."""
        received = []
        while self.sock is not None:
            try:
                received.append(self.sock.recv(MAX_DATAGRAM))
            except (BlockingIOError, InterruptedError):
                break
        return received

    def interrupt(self) -> None:
        """End a wait() in progress (another thread's), e.g. to stop its owner promptly."""
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.sendto(b"", "\0" + self.name)

    def close(self) -> None:
        atexit.unregister(self.close)
        if self.folder is not None:
            with contextlib.suppress(OSError):
                (self.folder / self.name).unlink()
        if self.sock is not None:
            self.sock.close()
            self.sock = None


_sender: socket.socket | None = None


def wake(folder: str | os.PathLike, message: bytes = b"") -> int:
    """Send `message` to every listener announced in `folder`; returns how many took it.

    Never raises: a missing folder means no listener, a full queue means that listener is awake anyway."""
    global _sender
    try:
        names = [n for n in os.listdir(folder) if n.startswith(PREFIX)]
    except OSError:
        return 0
    if not names:
        return 0
    if _sender is None:
        try:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
            sock.setblocking(False)
        except OSError:
            return 0
        _sender = sock  # sendto is thread-safe; one socket serves every thread of the process
    sent = 0
    for name in names:
        try:
            _sender.sendto(message[:MAX_DATAGRAM], "\0" + name)
            sent += 1
        except (ConnectionRefusedError, FileNotFoundError):
            with contextlib.suppress(OSError):  # its process is gone
                os.unlink(os.path.join(folder, name))
        except OSError:
            pass  # queue full (it has wake-ups waiting) or not supported: it will poll
    return sent
