"""What the daemon and the workers say to each other in Redis: key names, stream entries, the task.

Per attempt (``task_id``), under ``firelink:attempt:<task_id>:``:

- ``claim``: set once with ``SET NX`` by the worker that runs the attempt (its node name), so
  a redelivered task never runs the command twice; the daemon replaces it by a tombstone
  (``done``, ``cancelled``) that outlives any redelivery.
- ``lease``: renewed by that worker while the attempt runs; its expiry means the worker is lost.
- ``stream``: the attempt's events in order (``started``, ``log`` chunks, ``end``), read by
  the daemon with a blocking ``XREAD``.
- ``control``: a list the worker waits on with ``BLPOP``; the daemon pushes ``cancel``.
- ``pos``: the last stream entry the daemon wrote to the attempt's log (for re-attaching).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from firelink_core.plugin_api import AttemptResult

__all__ = [
    "CANCELLED",
    "DONE",
    "TASK_NAME",
    "TOMBSTONE_SECONDS",
    "Keys",
    "decode_result",
    "encode_result",
    "task_id",
]

TASK_NAME = "firelink.attempt"
DONE = "done"
CANCELLED = "cancelled"
TOMBSTONE_SECONDS = 7 * 86400
"""How long an ended attempt's claim is kept: longer than any redelivery (Celery's Redis
visibility timeout is one hour by default), so a late duplicate is always recognised."""


def task_id(run_id: str, attempt: int) -> str:
    """The Celery task id of one attempt: derived, so recovery finds it from the run alone."""
    return f"firelink-{run_id}-{attempt}"


class Keys:
    """The Redis keys of one attempt."""

    def __init__(self, task: str) -> None:
        base = f"firelink:attempt:{task}:"
        self.claim = base + "claim"
        self.lease = base + "lease"
        self.stream = base + "stream"
        self.control = base + "control"
        self.pos = base + "pos"

    @property
    def transient(self) -> tuple[str, ...]:
        """Everything but the claim: deleted once the daemon recorded the attempt's end."""
        return (self.lease, self.stream, self.control, self.pos)


def encode_result(result: AttemptResult) -> bytes:
    return json.dumps(
        {"exit_code": result.exit_code, "signal": result.signal, "timed_out": result.timed_out, "error": result.error}
    ).encode()


def decode_result(data: bytes | str) -> AttemptResult:
    fields: Mapping[str, Any] = json.loads(data)
    return AttemptResult(
        exit_code=fields.get("exit_code"),
        signal=fields.get("signal"),
        timed_out=bool(fields.get("timed_out")),
        error=fields.get("error"),
    )
