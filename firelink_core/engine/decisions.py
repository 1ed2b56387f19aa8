"""What the engine decided about each fire and event of a job (``firelink explain``):
decisions noted in memory as they are made and written to storage in batches, with a
bounded number kept per job, plus the job's present state in words."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..durations import format_duration
from ..events import TriggerEvent
from ..records import DecisionRecord, PauseRecord, RunRecord, RunState
from .status import JobStatus

__all__ = [
    "FLUSH_DELAY",
    "KEEP_DECISIONS",
    "Decisions",
    "explain_answer",
    "of_event",
    "of_run",
    "waiting_for",
]

KEEP_DECISIONS = 500
"""Decisions kept per job; older ones are deleted as new ones are written."""
FLUSH_DELAY = 0.25
"""Seconds decisions gather in memory before one storage write takes them all."""

_OUTCOME_OF_STATE: Mapping[RunState, str] = {
    RunState.QUEUED: "ran",
    RunState.RUNNING: "ran",
    RunState.WAITING: "waiting",
    RunState.SKIPPED: "skipped",
    RunState.UPSTREAM_FAILED: "upstream_failed",
}


def of_run(run: RunRecord, now: float) -> DecisionRecord:
    """The decision a new (or newly released) run stands for: ran (queued), waiting on
    upstream, skipped (overlap, wait_timeout) or upstream failed, with the run's reason."""
    return DecisionRecord(
        job=run.job,
        at=now,
        outcome=_OUTCOME_OF_STATE.get(run.state, run.state.value),
        reason=run.reason,
        run_id=run.id,
        trigger=run.trigger or "dependency",
        scheduled_for=run.scheduled_for,
    )


def of_event(event: TriggerEvent, now: float, outcome: str, reason: str | None) -> DecisionRecord:
    """A decision about an event that made no run (held while paused, or skipped)."""
    return DecisionRecord(
        job=event.job,
        at=now,
        outcome=outcome,
        reason=reason,
        run_id=None,
        trigger=event.trigger,
        scheduled_for=event.scheduled_for,
    )


class Decisions:
    """Decisions made and not yet written, oldest first."""

    def __init__(self) -> None:
        self._pending: list[DecisionRecord] = []

    def __bool__(self) -> bool:
        return bool(self._pending)

    def note(self, decision: DecisionRecord) -> None:
        self._pending.append(decision)

    def take(self) -> list[DecisionRecord]:
        """Everything noted so far, for one storage write."""
        taken, self._pending = self._pending, []
        return taken

    def put_back(self, decisions: list[DecisionRecord]) -> None:
        """A write failed: keep them for the next one (at most ``KEEP_DECISIONS`` in all per write)."""
        self._pending = (decisions + self._pending)[-KEEP_DECISIONS:]


def waiting_for(
    status: JobStatus,
    pause: PauseRecord | None,
    held: int,
    now: float,
    upstream: tuple[str, ...] = (),
) -> str:
    """What the job waits for now, in words, for the end of ``firelink explain``."""
    parts: list[str] = []
    if pause is not None:
        since = format_duration(max(now - pause.since, 0.0))
        what = "circuit open" if pause.by == "breaker" else "paused"
        parts.append(
            f"{what} for {since}"
            + (f" ({pause.reason})" if pause.reason else "")
            + f": schedule fires are skipped, {held} event(s) held; `firelink resume {status.name}` resumes it"
        )
    if status.state == "disabled":
        parts.append("disabled in the config")
    if status.running:
        parts.append(f"{status.running} run(s) running")
    if status.waiting:
        parts.append(
            f"{status.waiting} run(s) waiting on upstream " + (", ".join(upstream) or "jobs")
        )
    if pause is None and status.state != "disabled":
        if status.next_due is not None:
            parts.append("its next fire")
        elif status.triggers:
            parts.append("its trigger: " + ", ".join(status.triggers))
        else:
            parts.append("its upstream jobs" + (f" ({', '.join(upstream)})" if upstream else ""))
    return "; ".join(parts)


def explain_answer(
    decisions: list[DecisionRecord],
    status: JobStatus,
    pause: PauseRecord | None,
    held: int,
    now: float,
    upstream: tuple[str, ...] = (),
) -> dict[str, Any]:
    """The answer of ``Engine.explain``: decisions newest first, the next due time and what the job waits for."""
    return {
        "job": status.name,
        "decisions": decisions,
        "next_due": status.next_due,
        "paused": pause,
        "held": held,
        "waiting_for": waiting_for(status, pause, held, now, upstream),
    }
