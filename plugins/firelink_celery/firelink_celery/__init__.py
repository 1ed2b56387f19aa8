"""firelink-celery: run firelink jobs on remote workers through Celery (``executor: {type: celery, ...}``)."""

from __future__ import annotations

from .executor import CeleryExecutor

__all__ = ["CeleryExecutor"]
