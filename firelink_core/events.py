"""Frozen event types: what triggers emit and what runs go through."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar

from .records import AttemptRecord, RunRecord

__all__ = [
    "TriggerEvent",
    "RunEvent",
    "RunQueued",
    "RunWaiting",
    "RunStarted",
    "RunRetrying",
    "RunSucceeded",
    "RunFailed",
    "RunTimedOut",
    "RunSkipped",
    "RunUpstreamFailed",
    "RunInterrupted",
    "RunRecovered",
    "RunTripped",
    "RUN_EVENT_KINDS",
]


@dataclass(frozen=True, kw_only=True)
class TriggerEvent:
    """One firing of one trigger for one job, as stored in the durable event queue.

    ``payload`` is JSON-serialisable and reaches the job as ``FIRELINK_EVENT``;
    ``env`` holds the flat trigger-specific variables (``FIRELINK_FS_PATH`` ...).
    """

    id: str
    job: str
    trigger: str
    """The trigger type name (``cron``, ``manual``, ``watch`` ...)."""
    trigger_key: str
    """Stable identity of the trigger within the config: ``"<job>#<index>"``."""
    payload: Mapping[str, Any] = field(default_factory=dict)
    env: Mapping[str, str] = field(default_factory=dict)
    created_at: float
    """Epoch seconds when the event was emitted."""
    scheduled_for: float | None = None
    """For schedule triggers, the intended fire time (epoch seconds)."""
    dedupe_key: str | None = None
    """Storage refuses a second event with the same ``(trigger_key, dedupe_key)``."""
    run_id: str | None = None
    """A pre-assigned run id (the manual trigger returns it before the run exists)."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """Engine-level options carried with the event (``with_upstream`` for manual runs)."""


@dataclass(frozen=True, kw_only=True)
class RunEvent:
    """A step in a run's life, sent to notifiers and to the ``firelink_run_event`` hook."""

    kind: ClassVar[str] = "run"
    run: RunRecord
    attempt: AttemptRecord | None = None
    detail: str | None = None


@dataclass(frozen=True, kw_only=True)
class RunQueued(RunEvent):
    kind: ClassVar[str] = "queued"


@dataclass(frozen=True, kw_only=True)
class RunWaiting(RunEvent):
    """The run waits for its ``depends_on`` condition."""

    kind: ClassVar[str] = "waiting"


@dataclass(frozen=True, kw_only=True)
class RunStarted(RunEvent):
    kind: ClassVar[str] = "started"


@dataclass(frozen=True, kw_only=True)
class RunRetrying(RunEvent):
    """An attempt failed and another one is scheduled after ``delay`` seconds."""

    kind: ClassVar[str] = "retry"
    delay: float = 0.0


@dataclass(frozen=True, kw_only=True)
class RunSucceeded(RunEvent):
    kind: ClassVar[str] = "success"


@dataclass(frozen=True, kw_only=True)
class RunFailed(RunEvent):
    """The run failed after its last retry."""

    kind: ClassVar[str] = "failure"


@dataclass(frozen=True, kw_only=True)
class RunTimedOut(RunEvent):
    kind: ClassVar[str] = "timeout"


@dataclass(frozen=True, kw_only=True)
class RunSkipped(RunEvent):
    kind: ClassVar[str] = "skipped"


@dataclass(frozen=True, kw_only=True)
class RunUpstreamFailed(RunEvent):
    kind: ClassVar[str] = "upstream_failed"


@dataclass(frozen=True, kw_only=True)
class RunInterrupted(RunEvent):
    """The daemon stopped (or crashed) while the run was going on."""

    kind: ClassVar[str] = "interrupted"


@dataclass(frozen=True, kw_only=True)
class RunRecovered(RunEvent):
    """The first success of a job after one or more failures (sent besides ``success``)."""

    kind: ClassVar[str] = "recovered"


@dataclass(frozen=True, kw_only=True)
class RunTripped(RunEvent):
    """The job's circuit breaker opened: ``pause_after_failures`` consecutive failed runs
    paused the job (``run`` is the last of them, ``detail`` the pause's reason)."""

    kind: ClassVar[str] = "tripped"


RUN_EVENT_KINDS: tuple[str, ...] = tuple(
    cls.kind
    for cls in (
        RunQueued, RunWaiting, RunStarted, RunRetrying, RunSucceeded, RunFailed,
        RunTimedOut, RunSkipped, RunUpstreamFailed, RunInterrupted, RunRecovered, RunTripped,
    )
)
