"""kombu's filesystem transport made safe and prompt (the embedded broker of `make run`).

Atomic: kombu creates a message file and then writes into it, so a worker polling at that moment can
take the file while it is still empty and die on a JSONDecodeError ("Unrecoverable error"). Here the
message is written under a name that no consumer matches and then renamed into place, which is atomic
on one filesystem, so a consumer sees either no file or the whole message.

Prompt: kombu's consumer sleeps `polling_interval` between looks at the folder, so every hop waited
half of it on average, and a short interval kept an idle worker busy. Here a consumer waits on a wake-up
socket (app.wake) that every put signals, and polls only as a fallback.
"""

from __future__ import annotations

import os
import time
import uuid
from queue import Empty

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

from app import wake

TRANSPORT = "app.execution.broker:Transport"


def wake_folder(transport_options: dict) -> str | None:
    """Where the consumers' wake-up markers live: beside the queue folder (None without one)."""
    if queue := transport_options.get("data_folder_in"):
        return os.path.join(os.path.dirname(os.path.normpath(queue)), "wake")
    return None


class Channel(filesystem.Channel):
    """Writes `<name>.<queue>.msg` via a temporary `<name>.tmp` file in the same folder, then wakes
    the consumers."""

    def _put(self, queue, payload, **kwargs):
        name = f"{round(time.monotonic() * 1000)}_{uuid.uuid4()}"
        final = os.path.join(self.data_folder_out, f"{name}.{queue}.msg")
        temp = os.path.join(self.data_folder_out, f"{name}.tmp")
        try:
            with open(temp, "wb") as handle:
                handle.write(str_to_bytes(dumps(payload)))
            os.replace(temp, final)
        except OSError as exc:
            raise ChannelError(f"Cannot add file {final!r} to directory") from exc
        if folder := wake_folder(self.transport_options):
            wake.wake(folder)


class Transport(filesystem.Transport):
    """The filesystem transport using the atomic Channel; consumers wait on a wake-up socket."""

    Channel = Channel
    _listener: wake.Listener | None = None

    def drain_events(self, connection, timeout=None):
        """Deliver one message; between empty looks, wait for a wake-up or the polling interval.

        When a consumer holds as many unacknowledged messages as its prefetch allows, the loop
        that called this must get control back after one pause: Celery's blocking loop (the one
        it runs for this transport) performs the acknowledgements its pool threads asked for
        between two calls, so until this returns no finished task frees its slot, and a batch
        sent just after a full one waited for the loop's 2 s timeout (0.7-0.9 s on average; 8
        nodes of 1 s took 1.8 s instead of 1.1 s)."""
        started = time.monotonic()
        while True:
            try:
                return self.cycle.get(self._deliver, timeout=timeout)
            except Empty:
                left = None if timeout is None else timeout - (time.monotonic() - started)
                if left is not None and left <= 0:
                    raise TimeoutError() from None
                pause = self.polling_interval  # the fallback, should a wake-up be lost
                self._wake_listener().wait(pause if left is None else min(pause, left))
                if self._prefetch_full():
                    raise TimeoutError() from None

    def _prefetch_full(self) -> bool:
        """Some channel may take no more messages until acknowledgements are performed."""
        return any(not channel.qos.can_consume() for channel in self.channels)

    def _wake_listener(self) -> wake.Listener:
        if self._listener is None:
            self._listener = wake.Listener(wake_folder(self.client.transport_options))
        return self._listener

    def close_connection(self, connection):
        super().close_connection(connection)
        if self._listener is not None:
            self._listener.close()
            self._listener = None
