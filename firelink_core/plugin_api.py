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
    "ControlError",
    "EngineError",
    "ParamError",
    "Service",
    "ServiceError",
    "ServiceHost",
    "Target",
    "locate_options",
    "lock_holder",
    "next_fires",
    "schedule_triggers",
    "suggest",
    "to_jsonable",
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
    from ._control import ControlError, suggest, to_jsonable
    from ._daemon import lock_holder
    from .builtin.subprocess import SubprocessExecutor
    from .cli._target import Target, locate_options
    from .engine.errors import EngineError
    from .engine.preview import next_fires, schedule_triggers
    from .params import ParamError
    from .services import Service, ServiceError, ServiceHost

_LAZY = {
    # The subprocess executor (reused by executors that run commands on other hosts, such as
    # firelink-celery's workers) imports this module, so it is loaded on first use here.
    "SubprocessExecutor": ".builtin.subprocess",
    # For services run inside the daemon (firelink-web): the control socket's requests and
    # errors, parameters, schedule previews, and the CLI's state-directory options for a
    # plugin's own commands. Loaded on first use: `firelink validate` never imports them.
    "ControlError": "._control",
    "suggest": "._control",
    "to_jsonable": "._control",
    "lock_holder": "._daemon",
    "Target": ".cli._target",
    "locate_options": ".cli._target",
    "EngineError": ".engine.errors",
    "next_fires": ".engine.preview",
    "schedule_triggers": ".engine.preview",
    "ParamError": ".params",
    "Service": ".services",
    "ServiceError": ".services",
    "ServiceHost": ".services",
}


def __getattr__(name: str) -> Any:
    home = _LAZY.get(name)
    if home is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(home, __package__), name)
