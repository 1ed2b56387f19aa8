"""The contexts an engine hands executors and notifiers, for calling a component directly in a test."""

from __future__ import annotations

import logging
from pathlib import Path

from ..plugin_api import ExecutorContext, NotifierContext

__all__ = ["executor_context", "notifier_context"]


class _ExecutorContext(ExecutorContext):
    def __init__(self, state_dir: Path, config_dir: Path | None, logger: logging.Logger) -> None:
        self.logger = logger
        self.state_dir = state_dir
        self.config_dir = config_dir


class _NotifierContext(NotifierContext):
    def __init__(self, state_dir: Path, logger: logging.Logger) -> None:
        self.logger = logger
        self.state_dir = state_dir


def executor_context(
    state_dir: str | Path, config_dir: str | Path | None = None, *, logger: logging.Logger | None = None
) -> ExecutorContext:
    """What an engine gives an executor: ``SubprocessExecutor(executor_context(tmp_path / "state"))``.

    ``config_dir`` is the folder relative ``cwd`` and paths in options resolve from.
    """
    return _ExecutorContext(
        Path(state_dir),
        None if config_dir is None else Path(config_dir),
        logger or logging.getLogger("firelink.test.executor"),
    )


def notifier_context(state_dir: str | Path, *, logger: logging.Logger | None = None) -> NotifierContext:
    """What an engine gives a notifier; ``log_tail(run)`` reads the last lines of ``run.log_path``."""
    return _NotifierContext(Path(state_dir), logger or logging.getLogger("firelink.test.notifier"))
