"""Hook implementations of firelink-docker: the ``docker`` executor."""

from __future__ import annotations

from firelink_core.plugin_api import Executor, hookimpl

from .executor import DockerExecutor


@hookimpl
def firelink_register_executors() -> list[type[Executor]]:
    return [DockerExecutor]
