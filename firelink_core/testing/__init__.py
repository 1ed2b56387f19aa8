"""Opt-in helpers for testing firelink plugins (and firelink itself).

Nothing here runs unless a test imports it; the pytest fixtures live in
``firelink_core.testing.pytest_plugin``. Names are imported lazily so that importing one
helper never pulls in the others.
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
    "BasicStorageContext": "._storage_contract",
    "ExecutorContract": "._executor_contract",
    "RecordingReporter": "._executor_contract",
    "TriggerContract": "._trigger_contract",
    "TriggerUnderTest": "._trigger_contract",
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
