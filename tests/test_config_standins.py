"""Stand-ins for built-in components still being written, registered only where one is missing.

The config tests need ``cron``, ``interval``, ``manual``, ``subprocess``, ``sqlite``,
``memory`` and ``log``. Each stand-in (named as such) fills a gap only: once the real
component is registered, the stand-in is not, so these tests then run against it.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import ModuleType
from typing import Any

from firelink_core import hookimpl
from firelink_core.abc import Executor, Notifier, Problem, ScheduleTrigger, Storage, Trigger
from firelink_core.durations import DURATION_PATTERN
from firelink_core.plugins import Plugins
from firelink_core.testing import fresh_plugins

_DUR = {"type": ["string", "number"], "pattern": DURATION_PATTERN}


class StandInCronTrigger(ScheduleTrigger):
    type_name = "cron"
    description = "stand-in"
    config_schema: Mapping[str, Any] = {
        "type": "object",
        "properties": {
            "schedule": {"type": "string", "description": "Cron expression."},
            "jitter": {**_DUR, "description": "Random delay."},
        },
        "required": ["schedule"],
    }

    @classmethod
    def check(cls, options: Mapping[str, Any], *, config_dir: Path | None = None) -> list[Problem]:
        from croniter import croniter

        schedule = options.get("schedule", "")
        if schedule.startswith("@every "):
            return []
        if not croniter.is_valid(schedule):
            return [Problem(("schedule",), f"invalid cron expression {schedule!r}")]
        return []

    def next_fire(self, after):  # pragma: no cover - never run
        return None


class StandInIntervalTrigger(ScheduleTrigger):
    type_name = "interval"
    description = "stand-in"
    config_schema: Mapping[str, Any] = {
        "type": "object",
        "properties": {
            "every": {**_DUR, "description": "Period."},
            "jitter": {**_DUR, "description": "Random delay."},
        },
        "required": ["every"],
    }

    def next_fire(self, after):  # pragma: no cover - never run
        return None


class StandInManualTrigger(Trigger):
    type_name = "manual"
    description = "stand-in"

    async def start(self) -> None:  # pragma: no cover - never run
        return None

    async def stop(self) -> None:  # pragma: no cover - never run
        return None


class StandInSubprocessExecutor(Executor):
    type_name = "subprocess"
    description = "stand-in"


class StandInSqliteStorage(Storage):
    type_name = "sqlite"
    description = "stand-in"
    config_schema: Mapping[str, Any] = {
        "type": "object",
        "properties": {"path": {"type": "string", "description": "Database file."}},
    }


class StandInMemoryStorage(Storage):
    type_name = "memory"
    description = "stand-in"


class StandInLogNotifier(Notifier):
    type_name = "log"
    description = "stand-in"
    config_schema: Mapping[str, Any] = {
        "type": "object",
        "properties": {"level": {"enum": ["info", "warning", "error"], "description": "Level."}},
    }


_STANDINS = {
    "trigger": [StandInCronTrigger, StandInIntervalTrigger, StandInManualTrigger],
    "executor": [StandInSubprocessExecutor],
    "storage": [StandInSqliteStorage, StandInMemoryStorage],
    "notifier": [StandInLogNotifier],
}


def standin_module(plugins: Plugins) -> ModuleType:
    """A plugin module declaring the stand-ins whose type ``plugins`` lacks."""
    missing = {
        kind: [c for c in classes if c.type_name not in plugins.components(kind)]
        for kind, classes in _STANDINS.items()
    }
    module = ModuleType("firelink_test_standins")

    @hookimpl
    def firelink_register_triggers():
        return missing["trigger"]

    @hookimpl
    def firelink_register_executors():
        return missing["executor"]

    @hookimpl
    def firelink_register_storages():
        return missing["storage"]

    @hookimpl
    def firelink_register_notifiers():
        return missing["notifier"]

    for fn in (firelink_register_triggers, firelink_register_executors, firelink_register_storages,
               firelink_register_notifiers):
        setattr(module, fn.__name__, fn)
    return module


def plugins_with_standins(*extra: object) -> Plugins:
    """``fresh_plugins(*extra)`` plus stand-ins for the built-ins not written yet."""
    return fresh_plugins(*extra, standin_module(fresh_plugins(*extra)))


# As an import path (``--plugin test_config_standins``) for subprocess tests: the module
# itself declares the stand-ins missing from the built-ins.
_self = standin_module(fresh_plugins())
firelink_register_triggers = _self.firelink_register_triggers
firelink_register_executors = _self.firelink_register_executors
firelink_register_storages = _self.firelink_register_storages
firelink_register_notifiers = _self.firelink_register_notifiers


def test_standins_only_fill_gaps() -> None:
    plugins = plugins_with_standins()
    assert not plugins.errors
    for kind, classes in _STANDINS.items():
        for cls in classes:
            assert cls.type_name in plugins.components(kind)
    # A stand-in is registered only where no real component has the type.
    for kind, classes in _STANDINS.items():
        for cls in classes:
            provider = plugins.provider(kind, cls.type_name)
            real = fresh_plugins().provider(kind, cls.type_name)
            assert (provider.name == "firelink_test_standins") == (real is None)
