"""The ``memory`` storage: events, runs and checkpoints in process memory, for tests and throwaway runs."""

from __future__ import annotations

import dataclasses
import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from ..plugin_api import (
    DEDUPE_SECONDS,
    TERMINAL_STATES,
    UPDATABLE_ATTEMPT_FIELDS,
    UPDATABLE_RUN_FIELDS,
    AttemptRecord,
    DecisionRecord,
    PauseRecord,
    RunRecord,
    RunState,
    Storage,
    StorageConflict,
    StorageContext,
    StorageError,
    TriggerEvent,
    check_changes,
    hookimpl,
    prune_selection,
)

__all__ = ["MemoryStorage"]


def _json_copy(value: Any) -> Any:
    """A deep copy through JSON, so memory stores exactly what a database would give back."""
    return json.loads(json.dumps(value))


def copy_event(event: TriggerEvent) -> TriggerEvent:
    return dataclasses.replace(
        event,
        payload=_json_copy(dict(event.payload)),
        env={str(k): str(v) for k, v in event.env.items()},
        options=_json_copy(dict(event.options)),
    )


def copy_run(run: RunRecord) -> RunRecord:
    return dataclasses.replace(
        run,
        state=RunState(run.state),
        payload=_json_copy(dict(run.payload)),
        env={str(k): str(v) for k, v in run.env.items()},
        options=_json_copy(dict(run.options)),
    )


def copy_attempt(attempt: AttemptRecord) -> AttemptRecord:
    return dataclasses.replace(attempt, handle=_json_copy(dict(attempt.handle)))


class MemoryStorage(Storage):
    """Keeps everything in dictionaries of this process; nothing survives the process.

    Data survives ``close()`` and a later ``open()`` of the same instance, so a test can stop
    an engine and start another on the same storage to play a restart. Records are copied in
    and out (through JSON, like a database), so callers never share state with the store.
    """

    type_name = "memory"
    description = "State in process memory: for tests and throwaway runs (lost when the daemon exits)."
    persistent = False
    config_schema: Mapping[str, Any] = {
        "type": "object",
        "description": "No options: everything lives in the daemon's memory and is lost when it exits.",
        "properties": {},
        "additionalProperties": False,
    }

    def __init__(self, options: Mapping[str, Any] | None = None, context: StorageContext | None = None) -> None:
        super().__init__(options or {}, context)  # type: ignore[arg-type]
        # One lock makes each method atomic even when called from worker threads.
        self._lock = threading.Lock()
        self._seq = 0
        self._events: dict[str, tuple[int, TriggerEvent]] = {}
        self._dedupe: dict[tuple[str, str], float] = {}
        self._runs: dict[str, tuple[int, RunRecord]] = {}
        # Run ids by job and by state, so lists of one job's or of active runs stay cheap.
        self._by_job: dict[str, dict[str, None]] = {}
        self._by_state: dict[RunState, dict[str, None]] = {}
        self._attempts: dict[str, dict[int, AttemptRecord]] = {}
        self._last_fire: dict[str, float] = {}
        self._checkpoints: dict[tuple[str, str], str] = {}
        self._pauses: dict[str, PauseRecord] = {}
        self._decisions: dict[str, list[DecisionRecord]] = {}

    def _next_seq(self) -> int:
        self._seq += 1
        return self._seq

    def _put_run(self, seq: int, run: RunRecord) -> None:
        old = self._runs.get(run.id)
        if old is not None:
            self._unindex(old[1])
        self._runs[run.id] = (seq, run)
        self._by_job.setdefault(run.job, {})[run.id] = None
        self._by_state.setdefault(run.state, {})[run.id] = None

    def _unindex(self, run: RunRecord) -> None:
        self._by_job[run.job].pop(run.id, None)
        self._by_state[run.state].pop(run.id, None)

    def _delete_run(self, run: RunRecord) -> None:
        self._unindex(run)
        del self._runs[run.id]
        self._attempts.pop(run.id, None)

    async def open(self) -> None:
        return None

    async def open_readonly(self) -> bool:
        # Everything lived in the daemon's process: once it stopped there is nothing to read.
        raise StorageError("storage: memory keeps no history once the daemon stops")

    async def close(self) -> None:
        return None

    # events -------------------------------------------------------------
    async def add_event(self, event: TriggerEvent) -> bool:
        stored = copy_event(event)
        with self._lock:
            if stored.id in self._events:
                raise StorageConflict(f"an event with id {stored.id!r} is already pending")
            if stored.dedupe_key is not None:
                pair = (stored.trigger_key, stored.dedupe_key)
                seen = self._dedupe.get(pair)
                if seen is not None and seen >= stored.created_at - DEDUPE_SECONDS:
                    return False
                self._dedupe[pair] = stored.created_at
            self._events[stored.id] = (self._next_seq(), stored)
        return True

    async def pending_events(self, limit: int | None = None) -> list[TriggerEvent]:
        with self._lock:
            ordered = sorted(self._events.values(), key=lambda item: (item[1].created_at, item[0]))
        if limit is not None:
            ordered = ordered[:limit]
        return [copy_event(event) for _, event in ordered]

    async def drop_event(self, event_id: str) -> None:
        with self._lock:
            self._events.pop(event_id, None)

    # runs ---------------------------------------------------------------
    async def create_run(self, run: RunRecord, *, consume_event: str | None = None) -> None:
        stored = copy_run(run)
        with self._lock:
            if stored.id in self._runs:
                raise StorageConflict(f"a run with id {stored.id!r} exists already")
            if consume_event is not None:
                if consume_event not in self._events:
                    raise StorageConflict(f"event {consume_event!r} is no longer pending (already turned into a run?)")
                del self._events[consume_event]
            self._put_run(self._next_seq(), stored)

    async def claim_run(
        self, run_id: str, owner: str, *, from_states: Sequence[RunState] = (RunState.QUEUED,)
    ) -> RunRecord | None:
        allowed = {RunState(state) for state in from_states}
        with self._lock:
            entry = self._runs.get(run_id)
            if entry is None or entry[1].state not in allowed:
                return None
            run = dataclasses.replace(entry[1], state=RunState.RUNNING, owner=owner)
            self._put_run(entry[0], run)
            return copy_run(run)

    async def update_run(self, run_id: str, **changes: Any) -> RunRecord:
        checked = check_changes(changes, UPDATABLE_RUN_FIELDS, "run")
        with self._lock:
            entry = self._runs.get(run_id)
            if entry is None:
                raise KeyError(f"no run {run_id!r}")
            run = copy_run(dataclasses.replace(entry[1], **checked))
            self._put_run(entry[0], run)
            return copy_run(run)

    async def get_run(self, run_id: str) -> RunRecord | None:
        with self._lock:
            entry = self._runs.get(run_id)
            return None if entry is None else copy_run(entry[1])

    async def find_runs_by_prefix(self, prefix: str, *, limit: int = 10) -> list[RunRecord]:
        with self._lock:
            found = [copy_run(entry[1]) for run_id, entry in self._runs.items() if run_id.startswith(prefix)]
        found.sort(key=lambda run: run.created_at, reverse=True)
        return found[:limit]

    async def list_runs(
        self,
        job: str | None = None,
        *,
        states: Sequence[RunState] | None = None,
        limit: int | None = 50,
        finished_after: float | None = None,
    ) -> list[RunRecord]:
        wanted = None if states is None else {RunState(state) for state in states}
        with self._lock:
            if wanted is not None:
                ids: Iterable[str] = [rid for state in wanted for rid in self._by_state.get(state, {})]
            elif job is not None:
                ids = list(self._by_job.get(job, {}))
            else:
                ids = list(self._runs)
            entries = [
                (seq, run)
                for seq, run in map(self._runs.__getitem__, ids)
                if (job is None or run.job == job)
                and (wanted is None or run.state in wanted)
                and (finished_after is None or (run.finished_at is not None and run.finished_at > finished_after))
            ]
        entries.sort(key=lambda item: (item[1].created_at, item[0]), reverse=True)
        if limit is not None:
            entries = entries[:limit]
        return [copy_run(run) for _, run in entries]

    # attempts -----------------------------------------------------------
    async def add_attempt(self, attempt: AttemptRecord) -> None:
        stored = copy_attempt(attempt)
        with self._lock:
            if stored.run_id not in self._runs:
                raise KeyError(f"no run {stored.run_id!r}")
            attempts = self._attempts.setdefault(stored.run_id, {})
            if stored.number in attempts:
                raise StorageConflict(f"run {stored.run_id!r} already has attempt {stored.number}")
            attempts[stored.number] = stored

    async def update_attempt(self, run_id: str, number: int, **changes: Any) -> None:
        checked = check_changes(changes, UPDATABLE_ATTEMPT_FIELDS, "attempt")
        with self._lock:
            attempts = self._attempts.get(run_id, {})
            if number not in attempts:
                raise KeyError(f"no attempt {number} of run {run_id!r}")
            attempts[number] = copy_attempt(dataclasses.replace(attempts[number], **checked))

    async def list_attempts(self, run_id: str) -> list[AttemptRecord]:
        with self._lock:
            attempts = self._attempts.get(run_id, {})
            return [copy_attempt(attempts[number]) for number in sorted(attempts)]

    # schedules and checkpoints -----------------------------------------
    async def get_last_fire(self, trigger_key: str) -> float | None:
        return self._last_fire.get(trigger_key)

    async def set_last_fire(self, trigger_key: str, when: float) -> None:
        self._last_fire[trigger_key] = float(when)

    async def get_checkpoint(self, namespace: str, key: str) -> Any | None:
        text = self._checkpoints.get((namespace, key))
        return None if text is None else json.loads(text)

    async def set_checkpoint(self, namespace: str, key: str, value: Any) -> None:
        self._checkpoints[(namespace, key)] = json.dumps(value)

    # pauses and decisions -----------------------------------------------
    async def set_pause(self, pause: PauseRecord) -> None:
        self._pauses[pause.job] = dataclasses.replace(pause, since=float(pause.since))

    async def clear_pause(self, job: str) -> PauseRecord | None:
        return self._pauses.pop(job, None)

    async def list_pauses(self) -> list[PauseRecord]:
        return [dataclasses.replace(self._pauses[job]) for job in sorted(self._pauses)]

    async def add_decisions(self, decisions: Sequence[DecisionRecord], *, keep_last: int) -> None:
        with self._lock:
            for decision in decisions:
                self._decisions.setdefault(decision.job, []).append(dataclasses.replace(decision))
            for job in {d.job for d in decisions}:
                kept = self._decisions[job]
                del kept[: max(len(kept) - max(keep_last, 0), 0)]

    async def list_decisions(self, job: str, *, limit: int = 50) -> list[DecisionRecord]:
        kept = self._decisions.get(job, [])
        return [dataclasses.replace(d) for d in reversed(kept[-limit:] if limit > 0 else [])]

    # retention ----------------------------------------------------------
    async def prune_runs(self, job: str, *, keep_last: int | None, older_than: float | None) -> list[str]:
        with self._lock:
            finished = sorted(
                (
                    entry
                    for entry in map(self._runs.__getitem__, self._by_job.get(job, {}))
                    if entry[1].state in TERMINAL_STATES
                ),
                key=lambda item: (item[1].created_at, item[0]),
                reverse=True,
            )
            doomed = prune_selection((run for _, run in finished), keep_last, older_than)
            paths: dict[str, None] = {}
            for run in doomed:
                if run.log_path:
                    paths[run.log_path] = None
                for attempt in self._attempts.get(run.id, {}).values():
                    if attempt.log_path:
                        paths[attempt.log_path] = None
                self._delete_run(run)
        return list(paths)


@hookimpl
def firelink_register_storages() -> list[type[Storage]]:
    return [MemoryStorage]
