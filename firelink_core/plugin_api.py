"""Everything a plugin author imports, from one place: ``from firelink_core.plugin_api import ...``.

This module is the plugin author's surface: the component interfaces, what the engine
hands them (specs, events, records, contexts), the hook marker, and the helpers every
component needs (durations, sizes, capped logs). The application API (``Engine``,
``Config``, ``Plugins``, ``make_plugins``) lives in ``firelink_core`` itself and is not
needed to write a plugin. Test helpers for plugins live in ``firelink_core.testing``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ._interpolation import expand as expand_env
from ._version import __version__ as FIRELINK_VERSION
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
    StorageConflict,
    StorageContext,
    StorageError,
    Trigger,
    TriggerContext,
    TriggerHealth,
)
from .durations import (
    DURATION_PATTERN,
    SIZE_PATTERN,
    duration_schema,
    format_duration,
    parse_duration,
    parse_size,
    size_schema,
)
from .events import (
    RunEvent,
    RunFailed,
    RunInterrupted,
    RunQueued,
    RunRecovered,
    RunRetrying,
    RunSkipped,
    RunStarted,
    RunSucceeded,
    RunTimedOut,
    RunTripped,
    RunUpstreamFailed,
    RunWaiting,
    TriggerEvent,
)
from .hookspecs import hookimpl
from .logs import CappedLogWriter, attempt_log_path, log_tail_lines, parse_dropped_marker, read_log
from .model import JobSpec, TriggerSpec
from .pidlock import LockHeld, PidFileLock
from .records import (
    DEDUPE_SECONDS,
    TERMINAL_STATES,
    UPDATABLE_ATTEMPT_FIELDS,
    UPDATABLE_RUN_FIELDS,
    AttemptRecord,
    DecisionRecord,
    PauseRecord,
    RunRecord,
    RunState,
    check_changes,
    parse_run_cursor,
    prune_selection,
    run_cursor,
)

__all__ = [
    "expand_env",
    "DEDUPE_SECONDS",
    "DURATION_PATTERN",
    "FIRELINK_VERSION",
    "SIZE_PATTERN",
    "TERMINAL_STATES",
    "UPDATABLE_ATTEMPT_FIELDS",
    "UPDATABLE_RUN_FIELDS",
    "AttemptRecord",
    "AttemptReporter",
    "AttemptRequest",
    "AttemptResult",
    "CappedLogWriter",
    "Clock",
    "Component",
    "DecisionRecord",
    "Executor",
    "ExecutorContext",
    "JobSpec",
    "LockHeld",
    "Notifier",
    "NotifierContext",
    "PauseRecord",
    "PidFileLock",
    "Problem",
    "RunEvent",
    "RunFailed",
    "RunInterrupted",
    "RunQueued",
    "RunRecord",
    "RunRecovered",
    "RunRetrying",
    "RunSkipped",
    "RunStarted",
    "RunState",
    "RunSucceeded",
    "RunTimedOut",
    "RunTripped",
    "RunUpstreamFailed",
    "RunWaiting",
    "ScheduleTrigger",
    "Storage",
    "StorageConflict",
    "StorageContext",
    "StorageError",
    "SubprocessExecutor",
    "Trigger",
    "TriggerContext",
    "TriggerEvent",
    "TriggerHealth",
    "TriggerSpec",
    "attempt_log_path",
    "check_changes",
    "duration_schema",
    "format_duration",
    "hookimpl",
    "log_tail_lines",
    "parse_dropped_marker",
    "parse_duration",
    "parse_run_cursor",
    "parse_size",
    "prune_selection",
    "read_log",
    "run_cursor",
    "size_schema",
]

if TYPE_CHECKING:
    from .builtin.subprocess import SubprocessExecutor


def __getattr__(name: str) -> Any:
    # The subprocess executor (reused by executors that run commands on other hosts, such as
    # firelink-celery's workers) imports this module, so it is loaded on first use here.
    if name == "SubprocessExecutor":
        from .builtin.subprocess import SubprocessExecutor

        return SubprocessExecutor
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
