"""The components: the storage, one executor per type in use, one trigger per trigger of each enabled job, their start and stop."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import datetime

from ..abc import Clock, Executor, ScheduleTrigger, Storage, Trigger, TriggerHealth
from ..model import Config, JobSpec, TriggerSpec
from ..plugins import Plugins
from .contexts import EmitEvent, EngineExecutorContext, EngineStorageContext, EngineTriggerContext
from .errors import EngineError
from .timer import Timer

__all__ = ["Executors", "Triggers", "make_storage"]

log = logging.getLogger("firelink.engine")


def make_storage(plugins: Plugins, config: Config) -> Storage:
    """The storage of the config's ``storage.type`` (not opened yet)."""
    cls = plugins.storages().get(config.storage.type)
    if cls is None:
        raise EngineError(f"no plugin provides storage type {config.storage.type!r}")
    return cls(dict(config.storage.options), EngineStorageContext(config))


class Executors:
    """One started executor per executor type the jobs use."""

    def __init__(self, plugins: Plugins) -> None:
        self.plugins = plugins
        self._started: dict[str, Executor] = {}

    def __contains__(self, type_name: str) -> bool:
        return type_name in self._started

    def __getitem__(self, type_name: str) -> Executor:
        return self._started[type_name]

    async def start(self, jobs: Iterable[JobSpec], config: Config) -> None:
        """Start the executor of each job's type not started yet."""
        classes = self.plugins.executors()
        for job in jobs:
            kind = job.executor.type
            if kind in self._started:
                continue
            cls = classes.get(kind)
            if cls is None:
                raise EngineError(f"job {job.name!r}: no plugin provides executor type {kind!r}")
            executor = cls(EngineExecutorContext(kind, config))
            await executor.start()
            self._started[kind] = executor

    async def stop(self) -> None:
        for executor in self._started.values():
            try:
                await executor.stop()
            except Exception:  # noqa: BLE001 - shutdown goes on
                log.exception("executor %s failed to stop", executor.type_name)


class Triggers:
    """The triggers of the enabled jobs by trigger key, with their contexts (health), and
    per job the first one whose class declares ``on_request``."""

    def __init__(self, plugins: Plugins) -> None:
        self.plugins = plugins
        self._started: dict[str, tuple[Trigger, EngineTriggerContext]] = {}
        self.requests: dict[str, tuple[TriggerSpec, type[Trigger]]] = {}
        """Per job, its first created trigger whose class declares ``on_request``."""

    def classes(self, job: JobSpec) -> list[tuple[TriggerSpec, type[Trigger]]]:
        """The class serving each trigger of ``job`` (EngineError naming a missing type)."""
        found = []
        for spec in job.triggers:
            cls = self.plugins.trigger_class(spec.type, spec.options.get("source"))
            if cls is None:
                raise EngineError(f"job {job.name!r}: no plugin provides trigger type {spec.type!r}")
            found.append((spec, cls))
        return found

    def create(
        self, job: JobSpec, spec: TriggerSpec, cls: type[Trigger], *, emit: EmitEvent, storage: Storage,
        clock: Clock, config: Config,
    ) -> Trigger:
        """Create and register one trigger (not started yet)."""
        context = EngineTriggerContext(
            job, spec, emit=emit, storage=storage, clock=clock, config=config, on_request=cls.on_request
        )
        try:
            trigger = cls(spec, context)
        except Exception as exc:  # noqa: BLE001 - reported as a located error
            raise EngineError(f"job {job.name!r}: trigger {spec.type!r} cannot be created: {exc}") from None
        self._started[spec.key] = (trigger, context)
        if cls.on_request:
            self.requests.setdefault(job.name, (spec, cls))
        return trigger

    async def start(self, key: str) -> None:
        """Start a created trigger; a failure marks it degraded instead of stopping the daemon."""
        trigger, context = self._started[key]
        try:
            await trigger.start()
        except Exception as exc:  # noqa: BLE001 - one broken trigger must not stop the daemon
            log.exception("trigger %s failed to start", key)
            context.set_health("degraded", f"failed to start: {exc}")
            return
        if isinstance(trigger, ScheduleTrigger) and context.health.state == "starting":
            context.set_health("ok")

    async def stop(self, key: str) -> None:
        entry = self._started.pop(key, None)
        if entry is None:
            return
        trigger, context = entry
        context.mark_stopped()
        try:
            await trigger.stop()
        except Exception:  # noqa: BLE001
            log.exception("trigger %s failed to stop", key)

    def degrade(self, key: str, message: str) -> None:
        """Show trouble of the engine's on the trigger's health (storage down for its steps)."""
        entry = self._started.get(key)
        if entry is not None and not entry[1].closed:
            entry[1].set_health("degraded", message)

    def undegrade(self, key: str, prefix: str) -> None:
        """The trouble ``degrade`` showed (a message starting with ``prefix``) is over."""
        entry = self._started.get(key)
        if entry is not None and not entry[1].closed and (entry[1].health.message or "").startswith(prefix):
            entry[1].set_health("ok")

    def keys(self) -> list[str]:
        return list(self._started)

    def forget_job(self, name: str) -> None:
        """The job is being reloaded: its request trigger is chosen again when its triggers start."""
        self.requests.pop(name, None)

    def health_and_next_due(self, job: JobSpec, timer: Timer) -> tuple[dict[str, TriggerHealth], datetime | None]:
        """For ``firelink status``: each started trigger's health, and the job's next due time."""
        health: dict[str, TriggerHealth] = {}
        dues: list[datetime] = []
        for spec in job.triggers:
            entry = self._started.get(spec.key)
            if entry is None:
                continue
            trigger, context = entry
            health[spec.key] = context.health
            due = timer.next_due(spec.key) if timer.is_schedule(spec.key) else trigger.next_due()
            if due is not None:
                dues.append(due)
        return health, min(dues) if dues else None
