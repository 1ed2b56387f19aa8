"""One attempt on a worker: claimed once, run by the subprocess executor, streamed back over Redis.

The job runs exactly as ``executor: subprocess`` runs it on the daemon's host (command list or
shell, cwd, env, timeout with process-group kill and grace, exit code): this module calls that
executor, giving it a log that streams to the attempt's Redis stream and a reporter that
announces the start. Around it: the claim (``SET NX``: a redelivered task never runs the command
twice), the lease renewed while the attempt runs, and the daemon's cancellation (``BLPOP``).
"""

from __future__ import annotations

import asyncio
import collections
import json
import logging
import os
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any, TypeVar

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from firelink_core.plugin_api import (
    AttemptReporter,
    AttemptRequest,
    AttemptResult,
    ExecutorContext,
    SubprocessExecutor,
)

from ._protocol import TOMBSTONE_SECONDS, Keys, encode_result

__all__ = ["run_attempt"]

log = logging.getLogger("firelink.celery.worker")

T = TypeVar("T")
_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OSError)
_ENTRY_MAX = 256 * 1024  # output per stream entry: Redis handles big values, the daemon's reads stay small
_BACKOFF_MAX = 2.0
_CANCEL = b"cancel"
_ENDED = b"ended"  # pushed by the worker itself to end its wait for a cancellation
_ENDED_SECONDS = 60


async def _retrying(call: Callable[[], Awaitable[T]], what: str) -> T:
    """``call()`` until Redis answers: an outage delays the attempt, never loses its messages."""
    delay, warned = 0.1, False
    while True:
        try:
            return await call()
        except _UNREACHABLE as exc:
            if not warned:
                log.warning("Redis unreachable while %s (%s): retrying until it answers", what, exc)
                warned = True
            await asyncio.sleep(delay)
            delay = min(delay * 2, _BACKOFF_MAX)


class _Sender:
    """Writes the attempt's stream in order from one task; output coalesces while a write is in flight.

    Output waiting for Redis is kept up to ``max_bytes`` (its tail): the daemon's log keeps no
    more than that anyway.
    """

    def __init__(self, client: aioredis.Redis, keys: Keys, max_bytes: int) -> None:
        self._client = client
        self._keys = keys
        self._max_bytes = max(max_bytes, _ENTRY_MAX)
        self._queue: collections.deque[list[Any]] = collections.deque()
        self._buffered = 0
        self._dropped = 0
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def log(self, data: bytes) -> None:
        if not data:
            return
        if self._queue and self._queue[-1][0] == "log":
            self._queue[-1][1] += data
        else:
            self._queue.append(["log", bytearray(data)])
        self._buffered += len(data)
        while self._buffered > self._max_bytes and self._queue:
            kind, body = self._queue[0]
            if kind != "log":
                break
            cut = min(len(body), self._buffered - self._max_bytes)
            del body[:cut]
            self._buffered -= cut
            self._dropped += cut
            if not body:
                self._queue.popleft()
        self._kick()

    def event(self, kind: str, data: bytes) -> None:
        self._queue.append([kind, data])
        self._kick()

    def _kick(self) -> None:
        self._idle.clear()
        self._wake.set()

    async def flushed(self) -> None:
        """Wait until everything handed over is in Redis."""
        await self._idle.wait()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue:
                kind, body = self._queue.popleft()
                if kind == "log":
                    self._buffered -= len(body)
                    if self._dropped:
                        dropped, self._dropped = self._dropped, 0
                        await self._add("log", b"[firelink: %d bytes of output dropped while Redis was unreachable]\n" % dropped)
                    for start in range(0, len(body), _ENTRY_MAX):
                        await self._add("log", bytes(body[start : start + _ENTRY_MAX]))
                else:
                    await self._add(kind, body)
            if not self._queue:
                self._idle.set()

    async def _add(self, kind: str, data: bytes) -> None:
        await _retrying(lambda: self._client.xadd(self._keys.stream, {"t": kind, "d": data}), "streaming the attempt")


class _StreamLog:
    """The subprocess executor's log writer, as that executor uses it, writing to the stream.

    Nothing is trimmed here: the daemon writes through the attempt's capped log.
    """

    def __init__(self, sender: _Sender) -> None:
        self._sender = sender
        self._line_start = True

    def will_trim(self, nbytes: int) -> bool:
        return False

    def write(self, data: bytes) -> None:
        if data:
            self._line_start = data.endswith(b"\n")
            self._sender.log(data)

    def note(self, message: str) -> None:
        line = f"[firelink: {message}]\n".encode(errors="replace")
        self.write(line if self._line_start else b"\n" + line)

    def close(self) -> None:
        return None


class _StreamReporter(AttemptReporter):
    """Announces the job's process (with this worker's name) on the stream."""

    def __init__(self, sender: _Sender, worker: str) -> None:
        self._sender = sender
        self._worker = worker

    async def started(self, handle: Mapping[str, Any]) -> None:
        self._sender.event("started", json.dumps({"worker": self._worker, **handle}).encode())

    async def log(self, data: bytes) -> None:
        self._sender.log(data)


class _WorkerContext(ExecutorContext):
    def __init__(self) -> None:
        self.logger = logging.getLogger("firelink.celery.worker.subprocess")
        self.state_dir = Path.cwd()
        self.config_dir = None  # a relative cwd is relative to the worker's own folder


def _request(payload: Mapping[str, Any]) -> AttemptRequest:
    command = payload["command"]
    return AttemptRequest(
        run_id=payload["run_id"],
        job=payload["job"],
        attempt=int(payload["attempt"]),
        command=tuple(command) if isinstance(command, list) else command,
        shell=bool(payload["shell"]),
        env=payload["env"],
        cwd=payload.get("cwd"),
        timeout=payload.get("timeout"),
        kill_grace=float(payload["kill_grace"]),
        options={"inherit_env": payload.get("inherit_env", True)},
        log_path=Path(os.devnull),  # unused: output goes to the stream
        log_max_bytes=int(payload["log_max_bytes"]),
        labels=payload.get("labels") or {},
    )


async def run_attempt(payload: Mapping[str, Any], *, task_id: str, worker: str, redis_url: str) -> str:
    """Run the attempt of ``payload`` unless another delivery of its task got there first; say how it went."""
    keys = Keys(task_id)
    client = aioredis.Redis.from_url(redis_url)
    blocking = aioredis.Redis.from_url(redis_url)  # its own connection: BLPOP holds one
    try:
        claimed = await _retrying(
            lambda: client.set(keys.claim, worker, nx=True, ex=TOMBSTONE_SECONDS), "claiming the attempt"
        )
        if not claimed:
            holder = await _retrying(lambda: client.get(keys.claim), "reading the claim")
            text = holder.decode(errors="replace") if holder else "gone"
            log.warning("task %s: not run, the attempt was already claimed (%s): a redelivered task", task_id, text)
            return f"skipped: already claimed ({text})"
        lease = float(payload["lease"])
        await _retrying(lambda: client.set(keys.lease, worker, ex=max(1, round(lease))), "taking the lease")
        return await _run_claimed(payload, keys, client, blocking, worker, lease)
    finally:
        await client.aclose()
        await blocking.aclose()


async def _run_claimed(
    payload: Mapping[str, Any], keys: Keys, client: aioredis.Redis, blocking: aioredis.Redis, worker: str, lease: float
) -> str:
    request = _request(payload)
    sender = _Sender(client, keys, request.log_max_bytes)
    executor = SubprocessExecutor(_WorkerContext())
    await executor.start()
    helpers = [asyncio.create_task(sender.run()), asyncio.create_task(_renew(client, keys, worker, lease))]
    # The subprocess executor itself, given a log that streams: the same process handling as a local run.
    run = asyncio.create_task(executor.run_logged(request, _StreamReporter(sender, worker), _StreamLog(sender)))
    listener = asyncio.create_task(_cancel_on_request(blocking, keys, run))
    try:
        try:
            result = await run
        except asyncio.CancelledError:
            result = AttemptResult(error="cancelled by the daemon")
        except Exception as exc:  # noqa: BLE001 - reported as the attempt's failure, never lost
            log.exception("task %s: the attempt failed on the worker", keys.claim)
            result = AttemptResult(error=f"worker failure ({type(exc).__name__}: {exc})")
        sender.event("end", encode_result(result))
        await sender.flushed()
    finally:
        # The listener is woken, not cancelled: a BLPOP cancelled mid-read can leave its
        # connection hanging, and the worker's thread with it.
        try:
            # With an expiry: the daemon may have deleted the attempt's keys already.
            wake = client.pipeline().rpush(keys.control, _ENDED).expire(keys.control, _ENDED_SECONDS)
            await asyncio.wait_for(wake.execute(), _BACKOFF_MAX)
            await asyncio.wait_for(asyncio.shield(listener), _BACKOFF_MAX)
        except (*_UNREACHABLE, asyncio.TimeoutError):
            pass
        for helper in (*helpers, listener):
            helper.cancel()
        await asyncio.gather(*helpers, listener, return_exceptions=True)
    return "ok" if result.ok else "failed"


async def _renew(client: aioredis.Redis, keys: Keys, worker: str, lease: float) -> None:
    seconds = max(1, round(lease))
    while True:
        await asyncio.sleep(lease / 3)
        try:
            await client.set(keys.lease, worker, ex=seconds)
        except _UNREACHABLE:
            continue  # renewed on the next turn; the daemon, cut off too, waits a full lease once back


async def _cancel_on_request(client: aioredis.Redis, keys: Keys, run: asyncio.Task[Any]) -> None:
    """Cancel ``run`` (the subprocess executor then kills the process group) when the daemon asks."""
    delay = 0.1
    while True:
        try:
            popped = await client.blpop([keys.control], timeout=0)
        except _UNREACHABLE:
            await asyncio.sleep(delay)
            delay = min(delay * 2, _BACKOFF_MAX)
            continue
        if popped is not None:
            if popped[1] == _CANCEL:
                run.cancel()
            return
