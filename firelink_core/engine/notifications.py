"""Notification fan-out: each run event to the ``firelink_run_event`` hook and to the notifiers of the job's ``notify:`` rules."""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping

from ..abc import Notifier
from ..events import (
    RunEvent,
    RunFailed,
    RunInterrupted,
    RunSkipped,
    RunSucceeded,
    RunTimedOut,
    RunUpstreamFailed,
)
from ..model import Config, JobSpec, NotifierSpec
from ..plugins import Plugins
from ..records import AttemptRecord, RunRecord, RunState
from .contexts import EngineNotifierContext
from .errors import EngineError

__all__ = ["NOTIFY_TIMEOUT", "Notifications", "terminal_event"]

log = logging.getLogger("firelink.engine")

NOTIFY_TIMEOUT = 30.0
"""The deadline of one notifier delivery."""

_EVENT_OF_STATE: dict[RunState, type[RunEvent]] = {
    RunState.SUCCESS: RunSucceeded,
    RunState.FAILED: RunFailed,
    RunState.TIMED_OUT: RunTimedOut,
    RunState.SKIPPED: RunSkipped,
    RunState.UPSTREAM_FAILED: RunUpstreamFailed,
    RunState.INTERRUPTED: RunInterrupted,
}


def terminal_event(run: RunRecord, attempt: AttemptRecord | None) -> RunEvent | None:
    """The event of a run that reached a terminal state (None for a cancelled run)."""
    cls = _EVENT_OF_STATE.get(run.state)
    return cls(run=run, attempt=attempt, detail=run.reason) if cls is not None else None


class Notifications:
    """The started notifiers and their deliveries in flight; a notifier never breaks a run."""

    def __init__(self, plugins: Plugins) -> None:
        self.plugins = plugins
        self.failures = 0
        """Deliveries that raised or timed out (for metrics)."""
        self.timeout = NOTIFY_TIMEOUT
        self._notifiers: dict[str, Notifier] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    async def start(self, specs: Mapping[str, NotifierSpec], config: Config) -> None:
        """Start the notifiers of ``specs`` not started yet."""
        classes = self.plugins.notifiers()
        for name, spec in specs.items():
            if name in self._notifiers:
                continue
            cls = classes.get(spec.type)
            if cls is None:
                raise EngineError(f"notifier {name!r}: no plugin provides notifier type {spec.type!r}")
            notifier = cls(name, dict(spec.options), EngineNotifierContext(name, config))
            await notifier.start()
            self._notifiers[name] = notifier

    async def stop_changed(self, old: Mapping[str, NotifierSpec], new: Mapping[str, NotifierSpec]) -> None:
        """On reload: stop the notifiers whose definition changed or went away."""
        for name, spec in old.items():
            if new.get(name) != spec and name in self._notifiers:
                notifier = self._notifiers.pop(name)
                with contextlib.suppress(Exception):
                    await notifier.stop()

    def send(self, event: RunEvent, job: JobSpec | None) -> None:
        """Hand ``event`` to the hook, and deliver it in the background per the job's rules."""
        self.plugins.run_event(event)
        if job is None:
            return
        for rule in job.notify:
            if event.kind not in rule.events:
                continue
            notifier = self._notifiers.get(rule.notifier)
            if notifier is None:
                continue
            task = asyncio.get_running_loop().create_task(self._deliver(notifier, event))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)

    async def _deliver(self, notifier: Notifier, event: RunEvent) -> None:
        try:
            await asyncio.wait_for(notifier.notify(event), self.timeout)
        except Exception as exc:  # noqa: BLE001 - a notifier never breaks a run
            self.failures += 1
            reason = "timed out" if isinstance(exc, asyncio.TimeoutError) else f"{type(exc).__name__}: {exc}"
            log.warning(
                "notifier %s failed on %s of run %s (job %s): %s",
                notifier.name, event.kind, event.run.id, event.run.job, reason,
            )

    async def drain(self) -> None:
        """Give deliveries in flight a short while to finish, then cancel the rest."""
        if self._tasks:
            await asyncio.wait(list(self._tasks), timeout=min(self.timeout, 5.0))
            for task in self._tasks:
                task.cancel()

    async def stop(self) -> None:
        for notifier in self._notifiers.values():
            try:
                await notifier.stop()
            except Exception:  # noqa: BLE001 - shutdown goes on
                log.exception("notifier %s failed to stop", notifier.name)
