"""The executor contract every firelink executor owes the engine, run against the docker executor."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytest
from firelink_docker.executor import DockerExecutor

from firelink_core.testing import ExecutorContract, ExecutorUnderTest

pytestmark = pytest.mark.docker


def _container_running(docker_client: Any) -> Callable[[Mapping[str, Any]], bool]:
    """The handle's container still exists and runs (firelink removes it when the attempt ends)."""
    import docker.errors

    def alive(handle: Mapping[str, Any]) -> bool:
        try:
            container = docker_client.containers.get(handle["container_id"])
        except docker.errors.NotFound:
            return False
        return container.status == "running"

    return alive


class TestDockerExecutorContract(ExecutorContract):
    """The busybox image on the test engine, named by ``docker_host`` (the crash tests' daemon
    process gets the same options)."""

    @pytest.fixture
    def executor_under_test(self, docker_host: str, docker_client: Any, busybox_image: str) -> ExecutorUnderTest:
        return ExecutorUnderTest(
            DockerExecutor,
            {"image": busybox_image, "docker_host": docker_host},
            alive=_container_running(docker_client),
        )
