"""The interfaces every component implements: triggers, executors, storage and notifiers.

Hooks (``hookspecs.py``) only *declare* component classes. Behaviour lives in the classes
below: each has a ``type_name`` (what users write in YAML), a ``config_schema`` (a JSON
Schema fragment of type ``object`` whose properties each carry a ``description`` and,
where optional, a ``default``), and an async start/stop lifecycle. All async methods run
on the engine's event loop; blocking work belongs in ``asyncio.to_thread``.
"""

from __future__ import annotations

import abc
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

from .events import RunEvent, TriggerEvent
from .logs import log_tail_lines
from .model import JobSpec, TriggerSpec
from .records import (
    AttemptRecord,
    DecisionRecord,
    PauseRecord,
    RunRecord,
    RunState,
    parse_run_cursor,
    run_cursor,
)

__all__ = [
    "Component",
    "Problem",
    "Clock",
    "Trigger",
    "ScheduleTrigger",
    "TriggerContext",
    "TriggerHealth",
    "Executor",
    "ExecutorContext",
    "AttemptRequest",
    "AttemptResult",
    "AttemptReporter",
    "Storage",
    "StorageContext",
    "StorageError",
    "StorageConflict",
    "Notifier",
    "NotifierContext",
]


@dataclass(frozen=True)
class Problem:
    """A semantic problem found by a component's ``check``: where in its options, and what.

    ``path`` is relative to the component's options, e.g. ``("schedule",)``.
    """

    path: tuple[str | int, ...]
    message: str


class Component(abc.ABC):
    """What every trigger, executor, storage and notifier class declares."""

    type_name: ClassVar[str]
    """The name users write in YAML (``trigger: cron``, ``executor: docker``)."""
    description: ClassVar[str] = ""
    """One line shown by ``firelink plugins``."""
    config_schema: ClassVar[Mapping[str, Any]] = {"type": "object", "properties": {}}
    """JSON Schema (draft 2020-12) of this component's options."""

    @classmethod
    def check(cls, options: Mapping[str, Any], *, config_dir: Path | None = None) -> list[Problem]:
        """Validate what the schema cannot express (a cron expression, a folder that must exist).

        Called by ``firelink validate`` after the schema passed; must not touch the network
        or need credentials. Return every problem found; an empty list means valid.
        """
        return []


class Clock(abc.ABC):
    """Time as the engine sees it; tests substitute ``firelink_core.testing.FakeClock``."""

    @abc.abstractmethod
    def now(self) -> float:
        """Wall-clock time, epoch seconds."""

    @abc.abstractmethod
    def monotonic(self) -> float:
        """Monotonic seconds, for measuring durations."""

    @abc.abstractmethod
    async def sleep(self, seconds: float) -> None:
        """Sleep (cancellable) for ``seconds`` of this clock's time."""


# --------------------------------------------------------------------------- triggers


@dataclass(frozen=True)
class TriggerHealth:
    state: Literal["starting", "ok", "degraded", "stopped"] = "starting"
    message: str | None = None
    since: float | None = None


class TriggerContext(abc.ABC):
    """What the engine gives one trigger instance. Implemented by the engine."""

    job: JobSpec
    spec: TriggerSpec
    logger: logging.Logger
    clock: Clock
    state_dir: Path
    config_dir: Path | None
    """The folder of the config file: relative paths in options are relative to it."""

    @abc.abstractmethod
    async def emit(
        self,
        payload: Mapping[str, Any] | None = None,
        env: Mapping[str, str] | None = None,
        *,
        dedupe_key: str | None = None,
        scheduled_for: float | None = None,
        params: Mapping[str, Any] | None = None,
    ) -> TriggerEvent | None:
        """Put an event for this trigger's job into the engine's single event queue.

        Returns once the event is durably stored (so a trigger may then acknowledge its
        source: delete an SQS message, advance a cursor). Returns ``None`` when storage
        already holds an event with the same ``dedupe_key`` for this trigger.
        ``env`` holds flat variables for the job (``FIRELINK_FS_PATH`` ...), all strings.
        ``params``: values of some of the job's declared non-secret ``params:`` (text or
        JSON values), read and checked like a request's, the defaults for the rest; raises
        ``firelink_core.params.ParamError`` naming a bad one before anything is stored.
        """

    @abc.abstractmethod
    async def get_checkpoint(self, key: str = "cursor") -> Any | None:
        """Read this trigger's JSON value ``key`` from storage (``None`` if never set)."""

    @abc.abstractmethod
    async def set_checkpoint(self, value: Any, key: str = "cursor") -> None:
        """Durably store a JSON-serialisable value under ``key`` for this trigger."""

    @abc.abstractmethod
    def set_health(self, state: Literal["ok", "degraded"], message: str | None = None) -> None:
        """Report health; ``degraded`` shows in ``firelink status`` and metrics, and is logged once per change."""


class Trigger(Component):
    """Produces events for one job. One instance per trigger of each job.

    A trigger never runs anything itself: it calls ``context.emit`` and the engine's
    dispatcher turns events into runs.
    """

    schemes: ClassVar[tuple[str, ...]] = ()
    """The ``source:`` URL schemes this class serves (``("s3",)``; ``"file"`` also claims
    plain paths). When set, classes of the same ``type_name`` share it and a job's
    ``source:`` picks one (``trigger: watch`` works so). Empty: one class per type."""
    on_request: ClassVar[bool] = False
    """This trigger type stands for runs started by hand (``firelink trigger JOB``,
    ``Engine.trigger``). A request runs under the job's first trigger whose class declares
    it; a job without one runs under a key and label derived from the first installed class
    that declares it. Events such a trigger emits count as requests too: their ``env``
    overrides the job's own ``env``."""

    @classmethod
    def request_payload(cls, *, with_upstream: bool) -> dict[str, Any]:
        """The event payload (``FIRELINK_EVENT``) of a run started by hand under this class."""
        return {"with_upstream": with_upstream}

    def __init__(self, spec: TriggerSpec, context: TriggerContext) -> None:
        self.spec = spec
        self.options = spec.options
        self.context = context

    @abc.abstractmethod
    async def start(self) -> None:
        """Begin producing events. Return promptly: long work goes in tasks the trigger owns."""

    @abc.abstractmethod
    async def stop(self) -> None:
        """Stop producing events and release resources. Idempotent."""

    def next_due(self) -> datetime | None:
        """The next time this trigger is expected to fire, if it knows (for ``firelink status``)."""
        return None


class ScheduleTrigger(Trigger):
    """A trigger whose events are due at computed times (cron, interval).

    The engine owns the timer: it keeps one priority queue of every schedule's next due
    time, sleeps until the earliest, records each fire time in storage and applies the
    job's ``catchup`` policy after downtime. Subclasses only compute times.
    """

    @abc.abstractmethod
    def next_fire(self, after: datetime) -> datetime | None:
        """The first fire time strictly after ``after`` (an aware UTC datetime), or ``None``
        when the schedule never fires again. Must be pure and deterministic (jitter is
        applied by ``jitter_for``)."""

    def jitter_for(self, due: datetime) -> float:
        """Seconds of delay to add to the fire at ``due`` (0 unless ``jitter`` is configured)."""
        return 0.0

    def event_for(self, due: datetime) -> tuple[Mapping[str, Any], Mapping[str, str]]:
        """The payload and env of the event fired for ``due``."""
        return ({"scheduled_for": due.isoformat()}, {})

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None


# --------------------------------------------------------------------------- executors


@dataclass(frozen=True, kw_only=True)
class AttemptRequest:
    """Everything needed to run one attempt, serialisable for a remote worker."""

    run_id: str
    job: str
    attempt: int
    command: tuple[str, ...] | str | None
    shell: bool
    env: Mapping[str, str]
    """The job's ``env`` plus the ``FIRELINK_*`` event variables; a subprocess merges it
    over the daemon's environment, a container receives just this."""
    cwd: str | None
    timeout: float | None
    kill_grace: float
    options: Mapping[str, Any] = field(default_factory=dict)
    """The executor's options from the job's ``executor:`` mapping."""
    log_path: Path
    log_max_bytes: int
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, kw_only=True)
class AttemptResult:
    exit_code: int | None = None
    signal: int | None = None
    timed_out: bool = False
    error: str | None = None
    """An executor-level failure (command not found, image missing, engine unreachable)."""

    @property
    def ok(self) -> bool:
        return self.exit_code == 0 and not self.timed_out and self.error is None and self.signal is None


class AttemptReporter(abc.ABC):
    """How an executor reports progress; backed by storage locally, by messages remotely."""

    @abc.abstractmethod
    async def started(self, handle: Mapping[str, Any]) -> None:
        """The attempt is running; ``handle`` (pid, container id) is stored for crash recovery.

        May be called again with a fuller handle, which replaces the first (a remote executor
        stores its task id before sending, then the worker that took the task)."""

    @abc.abstractmethod
    async def log(self, data: bytes) -> None:
        """Append output to the attempt's log (capped to its tail by the core)."""


class ExecutorContext(abc.ABC):
    logger: logging.Logger
    state_dir: Path
    config_dir: Path | None


class Executor(Component):
    """Runs attempts of jobs whose ``executor:`` names this type. One instance per engine."""

    def __init__(self, context: ExecutorContext) -> None:
        self.context = context

    async def start(self) -> None:
        """Called once before the first attempt (connect to an engine, and so on)."""

    async def stop(self) -> None:
        """Called at shutdown after every attempt ended."""

    @abc.abstractmethod
    async def run(self, request: AttemptRequest, reporter: AttemptReporter) -> AttemptResult:
        """Run one attempt to its end and return how it ended.

        Enforce ``request.timeout``: terminate (SIGTERM, ``kill_grace``, then SIGKILL) and
        return ``timed_out=True``. If the task is cancelled (daemon shutdown), terminate the
        same way, then re-raise ``CancelledError``. Write output through ``reporter.log`` or
        directly to ``request.log_path`` keeping at most ``request.log_max_bytes`` (the tail).
        Never raise for a failure of the job: return it in the result.
        """

    async def recover(
        self, request: AttemptRequest, attempt: AttemptRecord, reporter: AttemptReporter, *, reattach: bool
    ) -> AttemptResult | None:
        """Deal with an attempt left running by a crashed daemon, found by its stored handle.

        With ``reattach`` and the work still running, wait for it and return its result.
        Otherwise terminate whatever is left and return ``None`` (the engine then applies the
        job's recovery policy). The default does nothing and returns ``None``.
        """
        return None


# --------------------------------------------------------------------------- storage


class StorageError(Exception):
    """Storage cannot be used as asked: unreadable file, schema from a newer firelink,
    read-only access, a write that conflicts with stored state. The message says why."""


class StorageConflict(StorageError):
    """A write lost against stored state: ``create_run`` whose ``consume_event`` is gone
    (another dispatcher turned it into a run) or whose run id exists, a duplicate attempt."""


_PAUSES_NAMESPACE = "firelink"
_PAUSES_KEY = "pauses"
"""Where ``Storage``'s default pause methods keep the pauses: one checkpoint."""


class StorageContext(abc.ABC):
    logger: logging.Logger
    state_dir: Path


class Storage(Component):
    """The truth about events, runs, schedules and checkpoints.

    Every method is one atomic operation, so several daemons can share one backend later.

    The daemon calls ``open()`` once and ``close()`` when it stops. CLI commands such as
    ``firelink runs`` and ``firelink status`` read the history while the daemon is down
    through ``open_readonly()`` instead, then call the read methods (``list_runs``,
    ``get_run``, ``list_attempts``) and ``close()``. A backend that keeps its state after
    the daemon stops should implement ``open_readonly()``; the default says it keeps none.
    """

    persistent: bool = True
    """Whether the state outlives the process. A store that keeps it in process memory says
    ``False``: ``firelink run-once`` runs its engine on one, and records nothing in one."""

    def __init__(self, options: Mapping[str, Any], context: StorageContext) -> None:
        self.options = options
        self.context = context

    @abc.abstractmethod
    async def open(self) -> None:
        """Connect, create or migrate the schema."""

    async def open_readonly(self) -> bool:
        """Open for reading the history, for a CLI command while the daemon may be down.

        Never create, migrate or lock anything the daemon needs: a reader must neither
        leave a database behind where the daemon never ran nor block a daemon that starts
        meanwhile. Returns ``False`` (nothing opened, nothing created) when this backend
        holds nothing yet for these options and state directory (the daemon never ran);
        ``True`` once open, after which only reads are made and ``close()`` is called; a
        write attempted anyway must raise ``StorageError``.

        Raises ``StorageError`` with a message for people when the history cannot be read
        (a schema that needs migrating, a damaged file) or when the backend keeps no history
        once the daemon stops. This default raises the latter, naming the type.
        """
        name = getattr(self, "type_name", None) or type(self).__name__
        raise StorageError(f"storage: {name} keeps no history once the daemon stops")

    @abc.abstractmethod
    async def close(self) -> None: ...

    # events -------------------------------------------------------------
    @abc.abstractmethod
    async def add_event(self, event: TriggerEvent) -> bool:
        """Durably store a pending event. False (nothing stored) when an event with the same
        ``(trigger_key, dedupe_key)`` was stored before (dedupe keys are kept 30 days)."""

    async def add_fire(self, event: TriggerEvent, when: float) -> bool:
        """``add_event(event)`` then ``set_last_fire(event.trigger_key, when)`` (set even when
        the event was a duplicate); returns what ``add_event`` returned. This default makes
        the two calls; a backend may override it to do both in one transaction."""
        added = await self.add_event(event)
        await self.set_last_fire(event.trigger_key, when)
        return added

    @abc.abstractmethod
    async def pending_events(self, limit: int | None = None) -> list[TriggerEvent]:
        """Events not yet turned into runs, oldest first."""

    @abc.abstractmethod
    async def drop_event(self, event_id: str) -> None:
        """Forget a pending event without a run (its job was removed)."""

    # runs ---------------------------------------------------------------
    @abc.abstractmethod
    async def create_run(self, run: RunRecord, *, consume_event: str | None = None) -> None:
        """Insert a run; in the same transaction delete the pending event ``consume_event``.

        Raises ``StorageConflict`` (and stores nothing) when that event is no longer pending
        or a run with this id exists: another dispatcher got there first."""

    @abc.abstractmethod
    async def claim_run(
        self, run_id: str, owner: str, *, from_states: Sequence[RunState] = (RunState.QUEUED,)
    ) -> RunRecord | None:
        """Atomically move a run from one of ``from_states`` to ``running`` owned by ``owner``.
        Returns the updated run, or ``None`` when another owner claimed it or its state changed."""

    @abc.abstractmethod
    async def update_run(self, run_id: str, **changes: Any) -> RunRecord:
        """Change fields of a run (``state``, ``finished_at`` ...) and return it.

        ``KeyError`` for an unknown run, ``TypeError`` for a name that is not a field."""

    @abc.abstractmethod
    async def get_run(self, run_id: str) -> RunRecord | None: ...

    async def find_runs_by_prefix(self, prefix: str, *, limit: int = 10) -> list[RunRecord]:
        """Runs whose id starts with ``prefix`` (at most ``limit``, newest first): how a short
        run id typed by a person is resolved (``firelink_core.run_ids.resolve_run``).

        The default reads every run through ``list_runs``; a backend with an index on run
        ids should override it with a prefix query."""
        runs = await self.list_runs(None, limit=None)
        return [run for run in runs if run.id.startswith(prefix)][:limit]

    async def page_runs(
        self,
        job: str | None = None,
        *,
        states: Sequence[RunState] | None = None,
        created_after: float | None = None,
        created_before: float | None = None,
        limit: int = 50,
        cursor: str | None = None,
    ) -> tuple[list[RunRecord], str | None]:
        """One page of runs newest first by ``(created_at, id)``, created in
        ``[created_after, created_before)``, and the cursor of the next page (``None`` on the
        last). ``cursor`` (from a previous page, see ``records.run_cursor``) continues after
        it; ``ValueError`` for a cursor that is not one.

        The default reads the runs through ``list_runs``; a backend should override it with
        a query on its ``(job, created_at)`` index."""
        after = parse_run_cursor(cursor) if cursor else None
        runs = await self.list_runs(job, states=states, limit=None)
        found = sorted(
            (
                run
                for run in runs
                if (created_after is None or run.created_at >= created_after)
                and (created_before is None or run.created_at < created_before)
                and (after is None or (run.created_at, run.id) < after)
            ),
            key=lambda run: (run.created_at, run.id),
            reverse=True,
        )
        page = found[:limit]
        return page, (run_cursor(page[-1]) if len(found) > limit else None)

    async def list_scheduled_runs(self, job: str, start: float, end: float) -> list[RunRecord]:
        """The job's runs whose ``scheduled_for`` is in ``[start, end)``, oldest instant first:
        how a backfill finds the instants that already have a run.

        The default reads the job's runs through ``list_runs``; a backend should override it
        with a query on an index of ``(job, scheduled_for)``."""
        runs = await self.list_runs(job, limit=None)
        found = [run for run in runs if run.scheduled_for is not None and start <= run.scheduled_for < end]
        return sorted(found, key=lambda run: run.scheduled_for or 0.0)

    @abc.abstractmethod
    async def list_runs(
        self,
        job: str | None = None,
        *,
        states: Sequence[RunState] | None = None,
        limit: int | None = 50,
        finished_after: float | None = None,
    ) -> list[RunRecord]:
        """Runs newest first (by ``created_at``), filtered by job, states and finish time."""

    # attempts -----------------------------------------------------------
    @abc.abstractmethod
    async def add_attempt(self, attempt: AttemptRecord) -> None: ...

    @abc.abstractmethod
    async def update_attempt(self, run_id: str, number: int, **changes: Any) -> None: ...

    @abc.abstractmethod
    async def list_attempts(self, run_id: str) -> list[AttemptRecord]: ...

    async def end_attempt(
        self, attempt: AttemptRecord, changes: Mapping[str, Any], run_changes: Mapping[str, Any], *, stored: bool
    ) -> RunRecord:
        """Record the end of an attempt and update its run; return the run.

        ``attempt`` is the whole record, ``changes`` its fields that changed: the attempt row
        is updated with ``changes`` when ``stored``, else ``attempt`` is added. Then the run
        gets ``run_changes`` (as ``update_run``). This default makes the two calls; a backend
        may override it to do both in one transaction (one commit per finished run).
        """
        if stored:
            await self.update_attempt(attempt.run_id, attempt.number, **changes)
        else:
            await self.add_attempt(attempt)
        return await self.update_run(attempt.run_id, **run_changes)

    # schedules and checkpoints -----------------------------------------
    @abc.abstractmethod
    async def get_last_fire(self, trigger_key: str) -> float | None:
        """The last fire time (epoch seconds) recorded for a schedule."""

    @abc.abstractmethod
    async def set_last_fire(self, trigger_key: str, when: float) -> None: ...

    @abc.abstractmethod
    async def get_checkpoint(self, namespace: str, key: str) -> Any | None: ...

    @abc.abstractmethod
    async def set_checkpoint(self, namespace: str, key: str, value: Any) -> None: ...

    # pauses and decisions (firelink pause / explain) --------------------
    # Not abstract, so a backend written before them keeps working: pauses then live in
    # one checkpoint and decisions are not kept. Backends should implement all five.
    async def set_pause(self, pause: PauseRecord) -> None:
        """Store the pause of ``pause.job`` (replacing one stored before)."""
        pauses = await self.get_checkpoint(_PAUSES_NAMESPACE, _PAUSES_KEY) or {}
        pauses[pause.job] = {"since": pause.since, "reason": pause.reason, "by": pause.by}
        await self.set_checkpoint(_PAUSES_NAMESPACE, _PAUSES_KEY, pauses)

    async def clear_pause(self, job: str) -> PauseRecord | None:
        """Delete the job's pause; return it (``None`` when the job was not paused)."""
        pauses = await self.get_checkpoint(_PAUSES_NAMESPACE, _PAUSES_KEY) or {}
        data = pauses.pop(job, None)
        if data is None:
            return None
        await self.set_checkpoint(_PAUSES_NAMESPACE, _PAUSES_KEY, pauses)
        return PauseRecord(job=job, **data)

    async def list_pauses(self) -> list[PauseRecord]:
        """Every stored pause, by job name."""
        pauses = await self.get_checkpoint(_PAUSES_NAMESPACE, _PAUSES_KEY) or {}
        return [PauseRecord(job=job, **data) for job, data in sorted(pauses.items())]

    async def add_decisions(self, decisions: Sequence[DecisionRecord], *, keep_last: int) -> None:
        """Store engine decisions (in one transaction where the backend can), then keep only
        the newest ``keep_last`` of each job named in ``decisions``. This default keeps none."""

    async def list_decisions(self, job: str, *, limit: int = 50) -> list[DecisionRecord]:
        """The job's newest ``limit`` decisions, newest first (by an index on the job: never a
        scan of every job's). This default has none."""
        return []

    # retention ----------------------------------------------------------
    @abc.abstractmethod
    async def prune_runs(
        self, job: str, *, keep_last: int | None, older_than: float | None
    ) -> list[str]:
        """Delete finished runs (and their attempts) beyond the newest ``keep_last`` or
        finished before ``older_than``; return the log paths of what was deleted."""


# --------------------------------------------------------------------------- notifiers


class NotifierContext(abc.ABC):
    logger: logging.Logger
    state_dir: Path

    def log_tail(self, run: RunRecord, lines: int = 20) -> str:
        """The last lines of a run's latest log (``""`` when it has none or it cannot be read)."""
        if not run.log_path:
            return ""
        try:
            return log_tail_lines(run.log_path, lines)
        except OSError:
            return ""


class Notifier(Component):
    """Receives run lifecycle events for the jobs that reference it by name."""

    def __init__(self, name: str, options: Mapping[str, Any], context: NotifierContext) -> None:
        self.name = name
        self.options = options
        self.context = context

    async def start(self) -> None: ...

    async def stop(self) -> None: ...

    @abc.abstractmethod
    async def notify(self, event: RunEvent) -> None:
        """Deliver one event. The engine calls it in a background task with a deadline, so a
        slow or failing notifier never delays a run; raise to report a failure."""
