"""The ``celery`` executor: each attempt runs on a Celery worker, as the subprocess executor runs it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from firelink_core.plugin_api import (
    AttemptRecord,
    AttemptReporter,
    AttemptRequest,
    AttemptResult,
    Executor,
    ExecutorContext,
    Problem,
)

from ._options import CONFIG_SCHEMA, CeleryOptions, check_options, parse_options
from ._protocol import CANCELLED, DONE, Keys, task_id

if TYPE_CHECKING:  # the bridge imports celery and redis: the first attempt loads them, validation never does
    from ._client import Channel, LogRelay

__all__ = ["CeleryExecutor"]


class CeleryExecutor(Executor):
    """Sends each attempt as a Celery task to the job's queue; a worker runs it and streams it back.

    The task id is derived from the run and attempt and stored in the attempt's handle with
    the queue, then the worker's name once one runs it. Output arrives over Redis as the job
    prints it and goes into the attempt's capped log. Cancellation reaches the worker, which
    kills the job's process group; timeouts are enforced there, like a local run.
    """

    type_name = "celery"
    description = "Runs each attempt on a Celery worker (Redis broker), as a local process there"
    config_schema: Mapping[str, Any] = CONFIG_SCHEMA

    @classmethod
    def check(cls, options: Mapping[str, Any], *, config_dir: Path | None = None) -> list[Problem]:
        return check_options(options)

    def __init__(self, context: ExecutorContext) -> None:
        super().__init__(context)
        self._channels: dict[tuple[str, str], Channel] = {}

    async def stop(self) -> None:
        channels, self._channels = list(self._channels.values()), {}
        for channel in channels:
            await channel.close()

    def _channel(self, options: CeleryOptions) -> Channel:
        key = (options.broker, options.redis)
        channel = self._channels.get(key)
        if channel is None:
            # Celery is imported on first use, so validating a config never needs it.
            from ._client import Channel

            channel = self._channels[key] = Channel(options, self.context.logger)
        return channel

    @staticmethod
    def _relay(reporter: AttemptReporter) -> LogRelay:
        from ._client import LogRelay

        return LogRelay(reporter.log)

    # running ----------------------------------------------------------------
    async def run(self, request: AttemptRequest, reporter: AttemptReporter) -> AttemptResult:
        relay = self._relay(reporter)
        try:
            options = parse_options(request.options)
        except ValueError as exc:
            await relay.note(f"error: {exc}")
            return AttemptResult(error=str(exc))
        channel = self._channel(options)
        task = task_id(request.run_id, request.attempt)
        keys = Keys(task)
        handle = {"task_id": task, "queue": options.queue}
        # Stored before sending: a daemon that crashes from here on re-attaches by this id.
        await reporter.started(handle)
        following: asyncio.Task[AttemptResult] | None = None
        try:
            await channel.send(task, options.queue, _payload(request, options), relay)
            following = _following(channel, keys, options, relay, self._on_worker(reporter, handle))
            result = await asyncio.shield(following)
        except asyncio.CancelledError:
            await relay.note("cancelled: asking the worker to stop the job")
            await asyncio.shield(channel.cancel(keys, options.queue, options.lease, request.kill_grace, relay, following))
            raise
        await channel.finish(keys)
        return result

    @staticmethod
    def _on_worker(reporter: AttemptReporter, handle: Mapping[str, Any]) -> Any:
        async def started(info: Mapping[str, Any]) -> None:
            await reporter.started({**handle, "worker": info.get("worker"), "remote_pgid": info.get("pgid")})

        return started

    # recovery ---------------------------------------------------------------
    async def recover(
        self, request: AttemptRequest, attempt: AttemptRecord, reporter: AttemptReporter, *, reattach: bool
    ) -> AttemptResult | None:
        """Find the attempt's task by the id in its handle.

        With ``reattach``: a task still running (or ended while the daemon was down) is
        followed from where the log stopped and its real result returned; a task no worker
        took yet is sent again (a duplicate is turned away by the claim) and followed.
        Without: the task is stopped (never to start, or killed on its worker) and ``None``
        returned, as for a task that ended and was recorded.
        """
        handle = attempt.handle or {}
        task = handle.get("task_id")
        if not isinstance(task, str):
            return None
        try:
            options = parse_options(request.options)
        except ValueError as exc:
            self.context.logger.warning("celery executor: cannot recover run %s: %s", request.run_id, exc)
            return None
        channel = self._channel(options)
        keys = Keys(task)
        relay = self._relay(reporter)
        claim = await channel.claim(keys)
        if claim in (DONE, CANCELLED):
            return None
        if not reattach:
            await channel.cancel(keys, options.queue, options.lease, request.kill_grace, relay)
            return None
        if claim is None:
            await relay.note(f"task {task} not taken by a worker before the daemon restarted: sending it again")
            await channel.send(task, options.queue, _payload(request, options), relay)
        else:
            await relay.note(f"re-attached to task {task} on worker {claim} after a daemon restart")
        since = await channel.position(keys)
        following = _following(channel, keys, options, relay, self._on_worker(reporter, handle), since=since)
        try:
            result = await asyncio.shield(following)
        except asyncio.CancelledError:
            await asyncio.shield(channel.cancel(keys, options.queue, options.lease, request.kill_grace, relay, following))
            raise
        await channel.finish(keys)
        return result


def _following(
    channel: Channel,
    keys: Keys,
    options: CeleryOptions,
    relay: LogRelay,
    started: Callable[[Mapping[str, Any]], Awaitable[None]],
    *,
    since: str = "0",
) -> asyncio.Task[AttemptResult]:
    """The attempt's stream followed in a task of its own, awaited through ``asyncio.shield``.

    A cancellation of the attempt then always lands on that await, never inside a Redis call
    in flight: one delivered there was seen lost (the daemon never asked the worker to stop
    and the job ran its full length). The cancel path hands this same task to
    ``Channel.cancel``, which lets it relay the job's last output and its end.
    """
    return asyncio.create_task(channel.follow(keys, options.queue, options.lease, relay, started, since=since))


def _payload(request: AttemptRequest, options: CeleryOptions) -> dict[str, Any]:
    """The task's argument: what the worker needs to run the attempt as a local run would."""
    return {
        "run_id": request.run_id,
        "job": request.job,
        "attempt": request.attempt,
        "command": list(request.command) if isinstance(request.command, tuple) else request.command,
        "shell": request.shell,
        "env": dict(request.env),
        "cwd": request.cwd,
        "timeout": request.timeout,
        "kill_grace": request.kill_grace,
        "log_max_bytes": request.log_max_bytes,
        "labels": dict(request.labels),
        "inherit_env": options.inherit_env,
        "lease": options.lease,
    }
