"""Hook implementations of firelink-celery: the ``celery`` executor."""

from __future__ import annotations

from firelink_core.plugin_api import Executor, hookimpl

from .executor import CeleryExecutor


@hookimpl
def firelink_register_executors() -> list[type[Executor]]:
    return [CeleryExecutor]
