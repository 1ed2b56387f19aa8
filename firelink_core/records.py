"""Rows kept by storage (runs and their attempts) and the rules every backend applies to them."""

from __future__ import annotations

import base64
import dataclasses
import enum
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "SECRET_MASK",
    "RunState",
    "RunRecord",
    "AttemptRecord",
    "PauseRecord",
    "DecisionRecord",
    "TERMINAL_STATES",
    "SUCCESS_STATES",
    "UPDATABLE_RUN_FIELDS",
    "UPDATABLE_ATTEMPT_FIELDS",
    "DEDUPE_SECONDS",
    "check_changes",
    "prune_selection",
    "run_cursor",
    "parse_run_cursor",
]

SECRET_MASK = "***"
"""What a stored record (and every display of it) holds in place of a secret value: a value given
with a request's env, or a ``secret: true`` run parameter. The values stay in the daemon's memory."""


class RunState(str, enum.Enum):
    """Where a run is in its life. The values are stored as text."""

    QUEUED = "queued"
    """Created, ready to be claimed by an executor slot."""
    WAITING = "waiting"
    """Waiting for its ``depends_on`` condition (or for a free ``max_instances`` slot)."""
    RUNNING = "running"
    """Claimed; an attempt is running."""
    RETRYING = "retrying"
    """An attempt failed; the next one starts at ``next_attempt_at``."""
    SUCCESS = "success"
    FAILED = "failed"
    TIMED_OUT = "timed_out"
    SKIPPED = "skipped"
    UPSTREAM_FAILED = "upstream_failed"
    INTERRUPTED = "interrupted"
    """The daemon stopped or crashed while the run was going on."""
    CANCELLED = "cancelled"

    def __str__(self) -> str:
        return self.value


TERMINAL_STATES = frozenset(
    {
        RunState.SUCCESS,
        RunState.FAILED,
        RunState.TIMED_OUT,
        RunState.SKIPPED,
        RunState.UPSTREAM_FAILED,
        RunState.INTERRUPTED,
        RunState.CANCELLED,
    }
)
SUCCESS_STATES = frozenset({RunState.SUCCESS})


@dataclass(kw_only=True)
class RunRecord:
    """One run of one job: created from one trigger event, made of one or more attempts."""

    id: str
    job: str
    state: RunState = RunState.QUEUED
    trigger: str | None = None
    trigger_key: str | None = None
    event_id: str | None = None
    payload: Mapping[str, Any] = field(default_factory=dict)
    """The trigger event's payload (``FIRELINK_EVENT``)."""
    env: Mapping[str, str] = field(default_factory=dict)
    """The event's flat variables (never the job's own ``env``, which may hold secrets)."""
    created_at: float = 0.0
    scheduled_for: float | None = None
    started_at: float | None = None
    finished_at: float | None = None
    attempts: int = 0
    """How many attempts have started."""
    next_attempt_at: float | None = None
    exit_code: int | None = None
    signal: int | None = None
    error: str | None = None
    reason: str | None = None
    """Why the run is in its state, in words (``skipped: overlap``, ``upstream jobA failed``)."""
    log_path: str | None = None
    """The log of the latest attempt."""
    owner: str | None = None
    """Which daemon claimed the run (host:pid:uuid)."""
    parent_run: str | None = None
    """For runs made by a 'with upstream' request, the run that asked for them."""
    options: Mapping[str, Any] = field(default_factory=dict)

    @property
    def finished(self) -> bool:
        return self.state in TERMINAL_STATES

    def duration(self) -> float | None:
        if self.started_at is None or self.finished_at is None:
            return None
        return self.finished_at - self.started_at


@dataclass(kw_only=True)
class AttemptRecord:
    """One execution attempt of a run."""

    run_id: str
    number: int
    """1 for the first attempt."""
    executor: str
    started_at: float
    finished_at: float | None = None
    exit_code: int | None = None
    signal: int | None = None
    timed_out: bool = False
    error: str | None = None
    log_path: str | None = None
    handle: Mapping[str, Any] = field(default_factory=dict)
    """Executor-specific identity of what runs (pid and process group, container id)."""


@dataclass(kw_only=True)
class PauseRecord:
    """A paused job: its schedule fires are skipped, its other events wait until it is resumed."""

    job: str
    since: float
    """When the job was paused (epoch seconds)."""
    reason: str | None = None
    by: str = "user"
    """``user`` (``firelink pause``) or ``breaker`` (``pause_after_failures``)."""


@dataclass(kw_only=True)
class DecisionRecord:
    """What the engine decided about one fire or event of a job (``firelink explain``)."""

    job: str
    at: float
    """When the decision was made (epoch seconds)."""
    outcome: str
    """``ran``, ``skipped``, ``held``, ``waiting``, ``upstream_failed``, ``tripped``, ``paused`` or ``resumed``."""
    reason: str | None = None
    run_id: str | None = None
    trigger: str | None = None
    """The trigger type of the fire or event (``cron``, ``watch`` ...), if any."""
    scheduled_for: float | None = None
    """A schedule fire's due time."""


# --------------------------------------------------------------------------- rules shared by backends


UPDATABLE_RUN_FIELDS = frozenset(f.name for f in dataclasses.fields(RunRecord)) - {"id"}
"""The ``RunRecord`` fields ``Storage.update_run`` accepts: all but the id."""
UPDATABLE_ATTEMPT_FIELDS = frozenset(f.name for f in dataclasses.fields(AttemptRecord)) - {"run_id", "number"}
"""The ``AttemptRecord`` fields ``Storage.update_attempt`` accepts: all but its key (run id, number)."""

DEDUPE_SECONDS = 30 * 86400.0
"""How long a ``(trigger_key, dedupe_key)`` pair is remembered after its event was stored."""


def check_changes(changes: Mapping[str, Any], allowed: frozenset[str], what: str) -> dict[str, Any]:
    """The changes of an ``update_run``/``update_attempt`` call, checked and normalised.

    Raises ``TypeError`` naming the unknown fields (``what`` is ``"run"`` or ``"attempt"``
    in the message); ``state`` given as text becomes a ``RunState``. Pass
    ``UPDATABLE_RUN_FIELDS`` or ``UPDATABLE_ATTEMPT_FIELDS`` as ``allowed``.
    """
    unknown = sorted(set(changes) - allowed)
    if unknown:
        raise TypeError(f"unknown {what} field(s): {', '.join(unknown)}")
    out = dict(changes)
    if "state" in out:
        out["state"] = RunState(out["state"])
    return out


def prune_selection(
    finished_newest_first: Iterable[RunRecord], keep_last: int | None, older_than: float | None
) -> list[RunRecord]:
    """The finished runs ``Storage.prune_runs`` deletes, for a backend that selects them in Python:
    those beyond the newest ``keep_last`` or finished before ``older_than`` (a run without
    ``finished_at`` counts from ``created_at``). Give one job's finished runs, newest first."""
    selected = []
    for index, run in enumerate(finished_newest_first):
        ended = run.finished_at if run.finished_at is not None else run.created_at
        if (keep_last is not None and index >= keep_last) or (older_than is not None and ended < older_than):
            selected.append(run)
    return selected


def run_cursor(run: RunRecord) -> str:
    """The opaque cursor of a page of runs that ends with ``run`` (``Storage.page_runs``):
    the next page holds the runs after it, newest first by ``(created_at, id)``."""
    raw = json.dumps([run.created_at, run.id], separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def parse_run_cursor(text: str) -> tuple[float, str]:
    """``(created_at, id)`` of a cursor made by ``run_cursor``; ``ValueError`` for anything else."""
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
        created_at, run_id = json.loads(raw)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"not a cursor of firelink runs: {text[:40]!r}") from exc
    if isinstance(created_at, bool) or not isinstance(created_at, (int, float)) or not isinstance(run_id, str):
        raise ValueError(f"not a cursor of firelink runs: {text[:40]!r}")
    return float(created_at), run_id
