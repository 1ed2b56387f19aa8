"""The engine: one event queue, one timer heap, the dispatcher, the DAG runner (placeholder API: being written)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from .abc import Clock, Storage, TriggerHealth
from .model import Config
from .plugins import Plugins
from .records import RunRecord

__all__ = ["Engine", "JobStatus", "ReloadResult"]


@dataclass
class JobStatus:
    """What ``firelink status`` shows for one job."""

    name: str
    triggers: list[str]
    """Readable trigger descriptions (``cron 0 18 * * *``, ``watch s3://b/p``, ``manual``)."""
    state: str
    """``idle``, ``running``, ``waiting``, ``failing`` or ``disabled``."""
    last_run: RunRecord | None
    next_due: datetime | None
    health: dict[str, TriggerHealth] = field(default_factory=dict)
    """Per trigger key."""
    running: int = 0
    waiting: int = 0


@dataclass
class ReloadResult:
    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)


class Engine:
    """Drives one config: triggers -> event queue -> dispatcher/DAG runner -> executors, state in storage.

    Usage::

        plugins = make_plugins(config_plugins=config.plugins)
        engine = Engine(config, plugins)
        await engine.start()
        run_id = await engine.trigger("jobA")
        run = await engine.wait_run(run_id, timeout=30)
        await engine.stop(grace=30)
    """

    wakeups: int
    """How many times the timer loop woke up (for the idle benchmark)."""
    started_at: float | None

    def __init__(
        self,
        config: Config,
        plugins: Plugins,
        *,
        storage: Storage | None = None,
        clock: Clock | None = None,
        owner: str | None = None,
    ) -> None:
        raise NotImplementedError

    @property
    def storage(self) -> Storage:
        raise NotImplementedError

    async def start(self) -> None:
        """Open storage, recover after a crash, start executors, triggers, the timer and dispatcher."""
        raise NotImplementedError

    async def stop(self, grace: float = 30.0) -> None:
        """Stop triggers, start no new runs, give running ones ``grace`` seconds, then terminate
        them and record them as interrupted; close storage."""
        raise NotImplementedError

    async def reload(self, config: Config) -> ReloadResult:
        """Switch to a new (already validated) config without disturbing running runs."""
        raise NotImplementedError

    async def trigger(
        self, job: str, env: Mapping[str, str] | None = None, *, with_upstream: bool = False
    ) -> str:
        """Enqueue a manual event for ``job`` and return the id its run will have (KeyError if unknown)."""
        raise NotImplementedError

    async def wait_run(self, run_id: str, timeout: float | None = None) -> RunRecord:
        """Wait until the run reaches a terminal state; return it (TimeoutError at the deadline)."""
        raise NotImplementedError

    def status(self) -> list[JobStatus]:
        """One entry per configured job."""
        raise NotImplementedError

    def log_path(self, run: RunRecord) -> str | None:
        raise NotImplementedError
