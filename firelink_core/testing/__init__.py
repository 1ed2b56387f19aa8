"""Helpers and contract suites for testing firelink plugins (and firelink itself).

Nothing here runs unless a test imports it. Each contract (``TriggerContract``,
``ScheduleTriggerContract``, ``ExecutorContract``, ``NotifierContract``, ``StorageContract``)
is a class a plugin's tests subclass, overriding one fixture named after what it tests.
Names are imported lazily so that importing one helper never pulls in the others.
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "fresh_plugins": "._manager",
    "wait_for": "._wait",
    "async_wait_for": "._wait",
    "EventRecorder": "._recorder",
    "FakeClock": "._recorder",
    "StorageContract": "._storage_contract",
    "StorageUnderTest": "._storage_contract",
    "BasicStorageContext": "._storage_contract",
    "ExecutorContract": "._executor_contract",
    "ExecutorUnderTest": "._executor_contract",
    "RecordingReporter": "._executor_contract",
    "TriggerContract": "._trigger_contract",
    "TriggerUnderTest": "._trigger_contract",
    "ScheduleTriggerContract": "._schedule_contract",
    "ScheduleUnderTest": "._schedule_contract",
    "NotifierContract": "._notifier_contract",
    "NotifierUnderTest": "._notifier_contract",
    "sample_run_events": "._notifier_contract",
    "executor_context": "._contexts",
    "notifier_context": "._contexts",
    "EngineHarness": "._harness",
    "run_engine": "._harness",
    "plugins_with": "._harness",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
