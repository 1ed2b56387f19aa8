"""The daemon's side of the wire: the only daemon module that imports ``celery`` and ``redis``.

The executor imports it when an attempt first needs a broker, so ``firelink validate`` and
``firelink plugins`` never load Celery. Sending goes through Celery; everything else (the
attempt's stream, claim, lease and cancellation, see ``_protocol``) is plain Redis, read with
blocking calls.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import redis.asyncio as aioredis
from kombu.exceptions import OperationalError
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

from firelink_core.plugin_api import AttemptResult, format_duration

from ._app import make_app
from ._options import CeleryOptions, redact
from ._protocol import CANCELLED, DONE, TASK_NAME, TOMBSTONE_SECONDS, Keys, decode_result

__all__ = ["Channel", "LogRelay"]

_UNREACHABLE = (RedisConnectionError, RedisTimeoutError, OperationalError, OSError)
_BACKOFF_MAX = 2.0
_READ_COUNT = 1000
_SEND_THREADS = 4
_CANCEL_MARGIN = 10.0  # beyond kill_grace, for the worker to report the end of a cancelled job


async def _stop(task: asyncio.Task[Any] | None, lease: float) -> None:
    """Cancel a ``follow`` task and give it a lease to end: it ends by itself within one once
    the claim says the attempt ended, should the cancellation be lost in a Redis call."""
    if task is not None and not task.done():
        task.cancel()
        await asyncio.wait([task], timeout=lease + 1)


class LogRelay:
    """The attempt's output as it arrives, and firelink's own lines, into ``reporter.log``."""

    def __init__(self, write: Callable[[bytes], Awaitable[None]]) -> None:
        self._write = write
        self._line_start = True

    async def output(self, data: bytes) -> None:
        if data:
            self._line_start = data.endswith(b"\n")
            await self._write(data)

    async def note(self, message: str) -> None:
        line = f"[firelink: {message}]\n".encode(errors="replace")
        await self.output(line if self._line_start else b"\n" + line)


class Channel:
    """One broker and its Redis, shared by every attempt sent through them."""

    def __init__(self, options: CeleryOptions, logger: logging.Logger) -> None:
        self._broker = options.broker
        self._app = make_app(options.broker)
        self._redis = aioredis.Redis.from_url(options.redis)
        self._where = redact(options.broker)
        self._logger = logger
        self._down_since: float | None = None
        # Sends block while the broker is slow: their own threads, never the loop's default
        # pool that storage and the engine need meanwhile.
        self._threads = ThreadPoolExecutor(max_workers=_SEND_THREADS, thread_name_prefix="firelink-celery-send")

    async def close(self) -> None:
        await self._redis.aclose()
        await self._in_thread(self._app.close)
        self._threads.shutdown(wait=False)

    def _in_thread(self, fn: Callable[..., Any], *args: Any) -> asyncio.Future[Any]:
        return asyncio.get_running_loop().run_in_executor(self._threads, fn, *args)

    # broker outages ----------------------------------------------------------
    async def _unreachable(self, exc: BaseException, delay: float) -> float:
        """Say once per outage that attempts wait, then wait ``delay``; returns the next delay."""
        if self._down_since is None:
            self._down_since = time.monotonic()
            self._logger.warning(
                "celery executor: the broker %s is unreachable (%s): attempts wait until it answers",
                self._where, exc,
            )
        await asyncio.sleep(delay)
        return min(delay * 2, _BACKOFF_MAX)

    def _reachable(self) -> None:
        if self._down_since is not None:
            self._logger.warning(
                "celery executor: the broker %s answers again (after %s)",
                self._where, format_duration(round(time.monotonic() - self._down_since, 1)),
            )
            self._down_since = None

    async def _call(self, call: Callable[[], Awaitable[Any]]) -> Any:
        delay = 0.1
        while True:
            try:
                result = await call()
            except _UNREACHABLE as exc:
                delay = await self._unreachable(exc, delay)
                continue
            self._reachable()
            return result

    # sending -----------------------------------------------------------------
    async def send(self, task_id: str, queue: str, payload: Mapping[str, Any], relay: LogRelay) -> None:
        """Put the attempt's task on ``queue``, waiting out a broker outage (said once in the log).

        Sent again after an outage that hid whether the first send arrived: a duplicate is
        harmless, the attempt's claim lets one delivery run.
        """
        noted = False
        delay = 0.1
        while True:
            try:
                await self._in_thread(self._publish, task_id, queue, payload)
            except _UNREACHABLE as exc:
                if not noted:
                    await relay.note(f"the broker {self._where} is unreachable: waiting to send the attempt")
                    noted = True
                await self._reset_app()
                delay = await self._unreachable(exc, delay)
                continue
            self._reachable()
            return

    async def _reset_app(self) -> None:
        """A new Celery app after a failed send: the old one's pooled connections may be dead
        ones that block for a socket timeout each once the broker is back."""
        old, self._app = self._app, make_app(self._broker)
        await self._in_thread(old.close)

    def _publish(self, task_id: str, queue: str, payload: Mapping[str, Any]) -> None:
        # argsrepr: the job's env must not reach anything that shows task arguments.
        self._app.send_task(
            TASK_NAME, args=[dict(payload)], task_id=task_id, queue=queue, retry=False,
            argsrepr="(firelink attempt)", kwargsrepr="{}",
        )

    # following ---------------------------------------------------------------
    async def claim(self, keys: Keys) -> str | None:
        """Who holds the attempt: a worker's name, ``done``/``cancelled``, or ``None`` (not claimed)."""
        value = await self._call(lambda: self._redis.get(keys.claim))
        return value.decode() if value is not None else None

    async def position(self, keys: Keys) -> str:
        """The last stream entry already in the attempt's log (``0``: none)."""
        value = await self._call(lambda: self._redis.get(keys.pos))
        return value.decode() if value is not None else "0"

    async def follow(
        self,
        keys: Keys,
        queue: str,
        lease: float,
        relay: LogRelay,
        started: Callable[[Mapping[str, Any]], Awaitable[None]],
        *,
        since: str = "0",
    ) -> AttemptResult:
        """Relay the attempt's stream after entry ``since`` until its end, and return that end.

        Blocks in ``XREAD`` for up to one lease at a time. When a lease passes with nothing
        read, the lease key tells whether the worker still runs the attempt; it is judged lost
        only after the daemon has been connected to Redis for a whole lease, so an outage of
        Redis itself never fails an attempt.
        """
        last = since
        delay = 0.1
        connected_at: float | None = time.monotonic()
        waiting_noted = False
        worker = "?"
        while True:
            try:
                reply = await self._redis.xread({keys.stream: last}, count=_READ_COUNT, block=max(1, int(lease * 1000)))
            except _UNREACHABLE as exc:
                connected_at = None
                delay = await self._unreachable(exc, delay)
                continue
            self._reachable()
            delay = 0.1
            if connected_at is None:
                connected_at = time.monotonic()
            if not reply:
                claim, leased = await self._call(lambda: self._redis.pipeline().get(keys.claim).exists(keys.lease).execute())
                if claim is None:
                    if not waiting_noted:
                        await relay.note(f"queued on {queue}: waiting for a worker")
                        waiting_noted = True
                elif claim.decode() in (DONE, CANCELLED):
                    return AttemptResult(error=f"the attempt was ended elsewhere ({claim.decode()})")
                elif not leased and time.monotonic() - connected_at >= lease:
                    reason = (
                        f"worker {claim.decode()} was lost during the attempt: its lease went unrenewed for "
                        f"{format_duration(lease)} (killed, crashed or cut off from Redis); not run again"
                    )
                    await relay.note(reason)
                    return AttemptResult(error=reason)
                continue
            end: AttemptResult | None = None
            for entry_id, fields in reply[0][1]:
                kind, data = fields[b"t"], fields[b"d"]
                if kind == b"log":
                    await relay.output(data)
                elif kind == b"started":
                    info = json.loads(data)
                    worker = info.get("worker", worker)
                    await started(info)
                elif kind == b"end":
                    end = decode_result(data)
                last = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
            # The position lets a restarted daemon re-attach without writing output twice; what it
            # read is trimmed from the stream, so Redis holds only output not yet in the log.
            await self._call(
                lambda position=last: self._redis.pipeline().set(keys.pos, position).xtrim(keys.stream, minid=position).execute()
            )
            if end is not None:
                return end

    # ending ------------------------------------------------------------------
    async def cancel(
        self,
        keys: Keys,
        queue: str,
        lease: float,
        kill_grace: float,
        relay: LogRelay,
        following: asyncio.Task[AttemptResult] | None = None,
    ) -> None:
        """Stop the attempt wherever it is: never to start if no worker claimed it, else killed there.

        ``following``: the attempt's ``follow`` task when one runs; it goes on relaying the
        job's last output until the worker reports the end (else a new one is started).
        """
        if await self._call(lambda: self._redis.set(keys.claim, CANCELLED, nx=True, ex=TOMBSTONE_SECONDS)):
            await _stop(following, lease)
            await self._forget(keys)
            return
        await self._call(lambda: self._redis.rpush(keys.control, "cancel"))
        if following is None:

            async def ignore(_: Mapping[str, Any]) -> None:
                return None

            since = await self.position(keys)
            following = asyncio.create_task(self.follow(keys, queue, lease, relay, ignore, since=since))
        try:
            await asyncio.wait_for(asyncio.shield(following), kill_grace + _CANCEL_MARGIN)
        except asyncio.TimeoutError:
            self._logger.warning("celery executor: task %s did not report its end after the cancellation", keys.claim)
        await _stop(following, lease)
        await self.finish(keys)

    async def finish(self, keys: Keys) -> None:
        """The attempt's end is recorded: keep only a tombstone that turns away any redelivery."""
        await self._call(lambda: self._redis.set(keys.claim, DONE, ex=TOMBSTONE_SECONDS))
        await self._forget(keys)

    async def _forget(self, keys: Keys) -> None:
        await self._call(lambda: self._redis.delete(*keys.transient))
