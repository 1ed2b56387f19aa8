"""firelink-docker: run firelink jobs in Docker containers (``executor: {type: docker, ...}``)."""

from __future__ import annotations

from .executor import DockerExecutor

__all__ = ["DockerExecutor"]
