"""firelink: a plugin-based job scheduler daemon."""

from __future__ import annotations

from importlib.metadata import PackageNotFoundError, version

from .abc import (
    AttemptReporter,
    AttemptRequest,
    AttemptResult,
    Clock,
    Component,
    Executor,
    ExecutorContext,
    Notifier,
    NotifierContext,
    Problem,
    ScheduleTrigger,
    Storage,
    StorageContext,
    Trigger,
    TriggerContext,
    TriggerHealth,
)
from .durations import format_duration, parse_duration
from .events import RunEvent, TriggerEvent
from .hookspecs import hookimpl, hookspec
from .model import Config, JobSpec, TriggerSpec
from .plugins import Plugins, make_plugins
from .records import AttemptRecord, RunRecord, RunState

try:
    __version__ = version("firelink-core")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0.0.0"

__all__ = [
    "Engine",
    "JobStatus",
    "AttemptRecord",
    "AttemptReporter",
    "AttemptRequest",
    "AttemptResult",
    "Clock",
    "Component",
    "Config",
    "Executor",
    "ExecutorContext",
    "JobSpec",
    "Notifier",
    "NotifierContext",
    "Plugins",
    "Problem",
    "RunEvent",
    "RunRecord",
    "RunState",
    "ScheduleTrigger",
    "Storage",
    "StorageContext",
    "Trigger",
    "TriggerContext",
    "TriggerEvent",
    "TriggerHealth",
    "TriggerSpec",
    "__version__",
    "format_duration",
    "hookimpl",
    "hookspec",
    "make_plugins",
    "parse_duration",
]


def __getattr__(name: str) -> object:
    # The engine is imported on first use, so `firelink validate` never loads it.
    if name in ("Engine", "JobStatus"):
        from . import _engine

        return getattr(_engine, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
