"""The executor contract every firelink executor owes the engine, run against the celery executor."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
from firelink_celery.executor import CeleryExecutor

from firelink_core.testing import ExecutorContract, ExecutorUnderTest

pytestmark = pytest.mark.celery


def _attempt_alive(processes_of_run: Callable[[str], list[int]]) -> Callable[[Mapping[str, Any]], bool]:
    """Any process of the handle's attempt left on the worker side (the workers run on this host)."""

    def alive(handle: Mapping[str, Any]) -> bool:
        run_id = handle["task_id"].removeprefix("firelink-").rsplit("-", 1)[0]
        return bool(processes_of_run(run_id))

    return alive


class TestCeleryExecutorContract(ExecutorContract):
    """Two real workers on a queue of the test Redis; the crash tests' daemon process gets the same options."""

    @pytest.fixture
    def executor_under_test(self, redis_server, start_workers, processes_of_run) -> ExecutorUnderTest:
        start_workers("contract", n=2)
        return ExecutorUnderTest(
            CeleryExecutor, {"queue": "contract", "broker": redis_server.url, "lease": "5s"}, alive=_attempt_alive(processes_of_run),
        )
