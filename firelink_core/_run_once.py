"""``firelink run-once``: one run of one job in the foreground, without a daemon.

The run goes through a real ``Engine`` (the job's executor, environment, timeout, retries,
log files and notifiers, exactly as the daemon runs it) on a private store that keeps
nothing after the process (a registered storage type that is not ``persistent``), so
nothing else recorded in the state (other jobs' queued runs, pending events, schedules) is
touched. When it has ended, the run and its attempts are written to the config's storage,
if that can be opened; the daemon must not be running (``firelink trigger`` is for that).
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import os
import signal
import socket
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ._control import follow_run
from .abc import Storage, StorageContext
from .engine import Engine
from .model import Config, JobSpec
from .plugins import Plugins
from .records import AttemptRecord, RunRecord

__all__ = ["RunOnceResult", "once_config", "run_once"]

log = logging.getLogger("firelink.run_once")


@dataclasses.dataclass
class RunOnceResult:
    """The run as it ended, and where it was recorded (``None``: not recorded, with ``why``)."""

    run: RunRecord
    recorded_in: str | None
    why_not_recorded: str | None = None


class _Context(StorageContext):
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.logger = logging.getLogger("firelink.storage")


def once_config(config: Config, name: str) -> Config:
    """The config with ``name`` alone, without triggers or dependencies: run now, by hand,
    whatever its upstream did, and start nothing after it."""
    job: JobSpec = config.job(name)
    return dataclasses.replace(
        config, jobs=(dataclasses.replace(job, triggers=(), depends_on=None, enabled=True),)
    )


async def _open_state(config: Config, plugins: Plugins) -> tuple[Storage | None, str | None]:
    """The config's storage opened for writing, or ``(None, why not)``."""
    if config.storage is None:
        return None, "the config names no storage"
    cls = plugins.storages().get(config.storage.type)
    if cls is None:
        return None, f"storage type {config.storage.type!r} is not installed"
    if not _keeps_state(cls):
        return None, f"storage type {config.storage.type!r} keeps nothing after the process"
    storage = cls(dict(config.storage.options), _Context(Path(config.state_dir)))
    try:
        await asyncio.to_thread(Path(config.state_dir).mkdir, parents=True, exist_ok=True)
        await storage.open()
    except Exception as exc:  # noqa: BLE001 - the job still runs; the record is what is lost
        return None, f"{type(exc).__name__}: {exc}"
    return storage, None


def _keeps_state(cls: type[Storage]) -> bool:
    """Whether a storage type keeps its state after the process (``Storage.persistent``)."""
    return bool(getattr(cls, "persistent", True))


def _private_store(plugins: Plugins, state_dir: Path) -> Storage:
    """A fresh store of a registered type that keeps nothing after the process."""
    for cls in plugins.storages().values():
        if not _keeps_state(cls):
            return cls({}, _Context(state_dir))
    raise RuntimeError(
        "run-once needs an installed storage type that keeps its state in process memory"
    )


async def _record(storage: Storage, run: RunRecord, attempts: list[AttemptRecord]) -> None:
    await storage.create_run(run)
    for attempt in sorted(attempts, key=lambda a: a.number):
        await storage.add_attempt(attempt)


async def run_once(
    config: Config,
    plugins: Plugins,
    job: str,
    *,
    env: Mapping[str, str] | None = None,
    show: Callable[[Mapping[str, Any]], None] | None = None,
) -> RunOnceResult:
    """Run ``job`` once (``KeyError`` if unknown); ``show`` gets each message of the run as
    ``firelink trigger --wait`` streams them (state, attempt, log). SIGINT/SIGTERM cancel
    the run: the job gets its stop signal and grace."""
    once = once_config(config, job)
    state, why_not = await _open_state(config, plugins)
    engine = Engine(
        once,
        plugins,
        storage=_private_store(plugins, Path(config.state_dir)),
        owner=f"run-once:{socket.gethostname()}:{os.getpid()}",
    )
    loop = asyncio.get_running_loop()
    try:
        await engine.start()
        run_id = await engine.trigger(job, env)
        cancels: list[asyncio.Task[Any]] = []

        def cancel() -> None:
            if not cancels:
                cancels.append(loop.create_task(engine.cancel(run_id)))

        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, cancel)
        try:
            async for message in follow_run(engine, Path(config.state_dir), run_id):
                if show is not None:
                    show(message)
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            for task in cancels:
                with contextlib.suppress(Exception):
                    await task
        run = await engine.wait_run(run_id)
        attempts = await engine.storage.list_attempts(run_id)
        await engine.stop(grace=0)
        if state is None:
            return RunOnceResult(run, None, why_not)
        try:
            await _record(state, run, attempts)
        except Exception as exc:  # noqa: BLE001 - the run happened; say that it is not recorded
            return RunOnceResult(run, None, f"{type(exc).__name__}: {exc}")
        return RunOnceResult(run, str(config.state_dir))
    finally:
        if engine.started_at is not None:
            await engine.stop(grace=0)
        if state is not None:
            await state.close()
