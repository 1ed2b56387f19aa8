"""The object the API, the pages and the webhook share (``request.app[CONTEXT]``).

Every operation (trigger, pause, resume, retry, cancel, runs, run) goes through the daemon's
control requests, served in-process (``ServiceHost.request``): the same validation, the same
errors, one implementation. Reads that are not operations (the job list, the next fires of a
schedule) come from the engine directly. Run lifecycle events reach subscribers (the SSE
streams) through a ``firelink_run_event`` observer registered while the server runs.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aiohttp import web

from firelink_core.plugin_api import ControlError, RunEvent, ServiceHost, hookimpl, to_jsonable

__all__ = ["CONTEXT", "ControlError", "WebContext", "public_run"]

SUBSCRIBER_BACKLOG = 10_000
"""Events kept for one slow SSE client; past that it is disconnected (it reconnects)."""
SECRET_MASK = "***"


def public_run(run: dict[str, Any]) -> dict[str, Any]:
    """A run's JSON as the web shows it: the event's variables by name only (their values
    may be secrets); parameters are already masked by the engine (secret ones ``***``)."""
    out = dict(run)
    env = out.get("env")
    if isinstance(env, dict):
        out["env"] = {name: SECRET_MASK for name in env}
    return out


class _Observer:
    """The ``firelink_run_event`` hook implementation feeding the subscribers' queues."""

    def __init__(self, context: WebContext) -> None:
        self._context = context

    @hookimpl
    def firelink_run_event(self, event: RunEvent) -> None:
        self._context.publish(event)


class WebContext:
    """What every handler reaches through ``request.app[CONTEXT]``."""

    def __init__(self, host: ServiceHost) -> None:
        self.host = host
        self._subscribers: set[asyncio.Queue[dict[str, Any] | None]] = set()
        self._ids = itertools.count(1)
        self._observer: _Observer | None = None

    # the engine ---------------------------------------------------------------
    @property
    def engine(self) -> Any:
        return self.host.engine

    @property
    def state_dir(self) -> Path:
        return self.host.state_dir

    @property
    def config(self) -> Any:
        """The running config (the engine's: it follows reloads)."""
        return getattr(self.engine, "config", self.host.config)

    def job_names(self) -> list[str]:
        return list(self.config.job_names)

    def status(self) -> list[Any]:
        """Every job's ``JobStatus`` (state, pause, last run, next due), in config order."""
        return list(self.engine.status())

    def next_fires(self, job: str, count: int = 5) -> list[dict[str, Any]]:
        """The job's next ``count`` schedule fires (empty for a job without a schedule)."""
        from firelink_core.plugin_api import EngineError, next_fires, schedule_triggers

        spec = self.config.job(job)
        try:
            triggers = schedule_triggers(spec, self.host.plugins, self.config)
        except EngineError:
            return []
        if not triggers:
            return []
        now = datetime.now(timezone.utc)
        return [to_jsonable(fire.as_dict()) for fire in next_fires(spec, triggers, now, count)]

    # operations (control requests, in-process) ---------------------------------
    async def request(self, cmd: str, **args: Any) -> Any:
        """The result of a control request; an error answer raises ``ControlError``."""
        return await self.host.request(cmd, **args)

    def stream(self, cmd: str, **args: Any) -> AsyncIterator[dict[str, Any]]:
        """Every message of a streamed control request (``follow``), the first the answer."""
        return self.host.stream(cmd, **args)

    # run lifecycle events ---------------------------------------------------------
    def start(self) -> None:
        """Observe run events (while the server runs)."""
        self._observer = _Observer(self)
        self.host.plugins.pm.register(self._observer, name="firelink_web.events")

    def stop(self) -> None:
        if self._observer is not None:
            with contextlib.suppress(ValueError):
                self.host.plugins.pm.unregister(self._observer)
            self._observer = None
        for queue in list(self._subscribers):
            queue.put_nowait(None)
        self._subscribers.clear()

    def publish(self, event: RunEvent) -> None:
        """Hand one recorded event to every subscriber (never blocks, never raises)."""
        if not self._subscribers:
            return
        message = {
            "id": next(self._ids),
            "kind": event.kind,
            "job": event.run.job,
            "run_id": event.run.id,
            "state": to_jsonable(event.run.state),
            "detail": event.detail,
            "attempt": None if event.attempt is None else event.attempt.number,
            "run": public_run(to_jsonable(event.run)),
        }
        for queue in list(self._subscribers):
            if queue.qsize() >= SUBSCRIBER_BACKLOG:
                self._subscribers.discard(queue)
                queue.put_nowait(None)
            else:
                queue.put_nowait(message)

    async def events(self) -> AsyncIterator[dict[str, Any]]:
        """Every run event from now on, in the order they are recorded, until the server stops."""
        queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()
        self._subscribers.add(queue)
        try:
            while True:
                message = await queue.get()
                if message is None:
                    return
                yield message
        finally:
            self._subscribers.discard(queue)


# The key of the shared context in the aiohttp application (``request.app[CONTEXT]``).
# It lives here, not in server.py, so pages.py, api.py and hooks.py import it without a cycle.
CONTEXT: web.AppKey[WebContext] = web.AppKey("firelink_web_context", WebContext)
