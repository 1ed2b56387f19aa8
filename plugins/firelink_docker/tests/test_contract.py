"""The executor contract every firelink executor owes the engine, run against the docker executor."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pytest

from firelink_core.testing import ExecutorContract

pytestmark = pytest.mark.docker


class TestDockerExecutorContract(ExecutorContract):
    """``make_executor`` and ``make_request`` come from conftest.py (busybox image, test engine)."""

    @pytest.fixture(autouse=True)
    def _engine(self, engine_env: str, docker_client: Any) -> None:
        self.client = docker_client

    def attempt_alive(self, handle: Mapping[str, Any]) -> bool:
        """The container still exists and runs (firelink removes it when the attempt ends)."""
        import docker.errors

        try:
            container = self.client.containers.get(handle["container_id"])
        except docker.errors.NotFound:
            return False
        return container.status == "running"
