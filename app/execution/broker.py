"""kombu's filesystem transport with atomic message files (the embedded broker of `make run`).

kombu creates a message file and then writes into it, so a worker polling at that moment can take the
file while it is still empty and die on a JSONDecodeError ("Unrecoverable error"). Here the message is
written under a name that no consumer matches and then renamed into place, which is atomic on one
filesystem, so a consumer sees either no file or the whole message.
"""

from __future__ import annotations

import os
import time
import uuid

from kombu.exceptions import ChannelError
from kombu.transport import filesystem
from kombu.utils.encoding import str_to_bytes
from kombu.utils.json import dumps

TRANSPORT = "app.execution.broker:Transport"


class Channel(filesystem.Channel):
    """Writes `<name>.<queue>.msg` via a temporary `<name>.tmp` file in the same folder."""

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


class Transport(filesystem.Transport):
    """The filesystem transport using the atomic Channel."""

    Channel = Channel
