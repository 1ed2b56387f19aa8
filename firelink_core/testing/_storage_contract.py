"""``StorageContract``: the behaviour every storage backend must show, as a reusable pytest class."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Coroutine, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import pytest

from ..plugin_api import (
    AttemptRecord,
    RunRecord,
    RunState,
    Storage,
    StorageConflict,
    StorageContext,
    StorageError,
    TriggerEvent,
)
from ._storage_contract_ops import PausesAndDecisionsContract
from ._storage_contract_runs import RunQueriesContract

__all__ = ["StorageContract", "StorageUnderTest", "BasicStorageContext"]

T = TypeVar("T")
Run = Callable[[Coroutine[Any, Any, T]], T]

T0 = 1_700_000_000.25
"""A base time with a fraction, so float round trips are checked too."""
DAY = 86400.0


class BasicStorageContext(StorageContext):
    """The context a storage gets outside an engine: a state folder and a logger."""

    def __init__(self, state_dir: Path, logger: logging.Logger | None = None) -> None:
        self.state_dir = Path(state_dir)
        self.logger = logger or logging.getLogger("firelink.storage")


def event(
    id: str = "e1", *, job: str = "jobA", key: str | None = None, at: float = T0, dedupe: str | None = None, **kw: Any
) -> TriggerEvent:
    return TriggerEvent(
        id=id, job=job, trigger=kw.pop("trigger", "by-hand"), trigger_key=key or f"{job}#0", created_at=at,
        dedupe_key=dedupe, **kw,
    )


def run_record(id: str = "r1", *, job: str = "jobA", at: float = T0, **kw: Any) -> RunRecord:
    return RunRecord(id=id, job=job, created_at=at, **kw)


def finished(id: str, *, job: str = "jobA", at: float, ended: float | None = None, **kw: Any) -> RunRecord:
    return RunRecord(
        id=id, job=job, created_at=at, state=kw.pop("state", RunState.SUCCESS),
        started_at=at, finished_at=at + 1 if ended is None else ended, log_path=f"/logs/{job}/{id}.1.log", **kw,
    )


@dataclass
class StorageUnderTest:
    """What a storage plugin's test supplies to :class:`StorageContract`."""

    cls: type[Storage]
    """The storage class; the contract makes it with a :class:`BasicStorageContext` on the
    test's own state directory (``tmp_path / "state"``)."""
    options: Mapping[str, Any] = field(default_factory=dict)
    """The ``storage:`` options. They must reach a state that is empty when the test starts
    (for a server: a fresh database or schema per test)."""
    keeps_history: bool = True
    """Whether the history can be read once the daemon stopped (``Storage.open_readonly``);
    false for a backend whose state ends with the daemon's process (``memory``)."""


class StorageContract(PausesAndDecisionsContract, RunQueriesContract):
    """Subclass it as ``Test<Backend>Storage`` and override the ``storage_under_test`` fixture::

        class TestSqliteStorage(StorageContract):
            @pytest.fixture
            def storage_under_test(self) -> StorageUnderTest:
                return StorageUnderTest(SqliteStorage, {"synchronous": "normal"})

    ``make_storage()`` returns a new, unopened storage; every call within one test reaches
    the same state: that is how the contract plays a daemon writing, then a CLI command
    reading after it stopped. Most tests use the ``storage`` fixture, one of them opened,
    which the contract closes after each test.

    ``run`` executes a coroutine on one event loop that lives for the whole test (fixture
    and test body alike), so backends whose connections belong to a loop work too. Helpers
    that build records live in this module: ``event``, ``run_record``, ``finished``.
    """

    @pytest.fixture
    def run(self) -> Iterator[Run[Any]]:
        with asyncio.Runner() as runner:
            yield runner.run

    @pytest.fixture
    def storage_under_test(self) -> StorageUnderTest:
        raise NotImplementedError("override the storage_under_test fixture")

    @pytest.fixture
    def make_storage(self, storage_under_test: StorageUnderTest, tmp_path: Path) -> Callable[[], Storage]:
        """A new, unopened storage on this test's state, as an engine makes it."""
        subject = storage_under_test
        return lambda: subject.cls(dict(subject.options), BasicStorageContext(tmp_path / "state"))

    @pytest.fixture
    def storage(self, make_storage: Callable[[], Storage], run: Run[Any]) -> Iterator[Storage]:
        storage = make_storage()
        run(storage.open())
        yield storage
        run(storage.close())

    # events -------------------------------------------------------------
    def test_event_round_trips_every_field(self, storage: Storage, run: Run[Any]) -> None:
        stored = TriggerEvent(
            id="e1", job="jobA", trigger="on-change", trigger_key="jobA#1",
            payload={"path": "/in/a b.csv", "size": 12, "nested": {"list": [1, 2.5, None, True]}, "é": "ü"},
            env={"FIRELINK_FS_PATH": "/in/a b.csv"}, created_at=T0, scheduled_for=T0 - 0.5,
            dedupe_key="etag-1", run_id="r-pre", options={"with_upstream": True},
        )
        assert run(storage.add_event(stored)) is True
        assert run(storage.pending_events()) == [stored]

    def test_pending_events_are_oldest_first_and_limited(self, storage: Storage, run: Run[Any]) -> None:
        run(storage.add_event(event("late", at=T0 + 10)))
        run(storage.add_event(event("early", at=T0)))
        run(storage.add_event(event("tie-1", at=T0 + 5)))
        run(storage.add_event(event("tie-2", at=T0 + 5)))
        ids = [e.id for e in run(storage.pending_events())]
        assert ids == ["early", "tie-1", "tie-2", "late"]
        assert [e.id for e in run(storage.pending_events(limit=2))] == ["early", "tie-1"]

    def test_same_dedupe_key_of_one_trigger_is_stored_once(self, storage: Storage, run: Run[Any]) -> None:
        assert run(storage.add_event(event("e1", dedupe="k")))
        assert run(storage.add_event(event("e2", dedupe="k", at=T0 + 1))) is False
        assert run(storage.add_event(event("e3", dedupe="k", key="jobA#1")))
        assert run(storage.add_event(event("e4", dedupe="other")))
        assert run(storage.add_event(event("e5"))) and run(storage.add_event(event("e6")))
        assert [e.id for e in run(storage.pending_events())] == ["e1", "e3", "e4", "e5", "e6"]

    def test_dedupe_key_is_remembered_after_its_event_is_gone(self, storage: Storage, run: Run[Any]) -> None:
        run(storage.add_event(event("e1", dedupe="k1")))
        run(storage.add_event(event("e2", dedupe="k2")))
        run(storage.create_run(run_record("r1", event_id="e1"), consume_event="e1"))
        run(storage.drop_event("e2"))
        assert run(storage.add_event(event("e3", dedupe="k1", at=T0 + 29 * DAY))) is False
        assert run(storage.add_event(event("e4", dedupe="k2", at=T0 + 29 * DAY))) is False
        assert run(storage.pending_events()) == []

    def test_dedupe_key_is_forgotten_after_30_days(self, storage: Storage, run: Run[Any]) -> None:
        run(storage.add_event(event("e1", dedupe="k")))
        run(storage.drop_event("e1"))
        assert run(storage.add_event(event("e2", dedupe="k", at=T0 + 31 * DAY))) is True
        assert [e.id for e in run(storage.pending_events())] == ["e2"]
        assert run(storage.add_event(event("e3", dedupe="k", at=T0 + 32 * DAY))) is False

    def test_drop_event_forgets_only_that_event(self, storage: Storage, run: Run[Any]) -> None:
        run(storage.add_event(event("e1")))
        run(storage.add_event(event("e2")))
        run(storage.drop_event("e1"))
        run(storage.drop_event("never-stored"))
        assert [e.id for e in run(storage.pending_events())] == ["e2"]

    # runs ---------------------------------------------------------------
    def test_create_run_consumes_its_event(self, storage: Storage, run: Run[Any]) -> None:
        run(storage.add_event(event("e1")))
        run(storage.add_event(event("e2")))
        run(storage.create_run(run_record("r1", event_id="e1"), consume_event="e1"))
        assert [e.id for e in run(storage.pending_events())] == ["e2"]
        assert run(storage.get_run("r1")).event_id == "e1"

    def test_create_run_of_a_consumed_event_stores_nothing(self, storage: Storage, run: Run[Any]) -> None:
        run(storage.add_event(event("e1")))
        run(storage.create_run(run_record("r1"), consume_event="e1"))
        with pytest.raises(StorageConflict):
            run(storage.create_run(run_record("r2"), consume_event="e1"))
        assert run(storage.get_run("r2")) is None
        assert [r.id for r in run(storage.list_runs())] == ["r1"]

    def test_create_run_with_an_existing_id_keeps_the_event(self, storage: Storage, run: Run[Any]) -> None:
        run(storage.create_run(run_record("r1")))
        run(storage.add_event(event("e1", run_id="r1")))
        with pytest.raises(StorageConflict):
            run(storage.create_run(run_record("r1", job="other"), consume_event="e1"))
        assert [e.id for e in run(storage.pending_events())] == ["e1"]
        assert run(storage.get_run("r1")).job == "jobA"

    def test_run_round_trips_every_field(self, storage: Storage, run: Run[Any]) -> None:
        record = RunRecord(
            id="r1", job="jobA", state=RunState.RETRYING, trigger="schedule", trigger_key="jobA#0", event_id="e1",
            payload={"scheduled_for": "2024-01-01T00:00:00+00:00", "n": [1, {"a": None}]},
            env={"FIRELINK_X": "1"}, created_at=T0, scheduled_for=T0 - 1.5, started_at=T0 + 0.125,
            finished_at=None, attempts=2, next_attempt_at=T0 + 30.75, exit_code=3, signal=15,
            error="boom", reason="exit code 3", log_path="/state/logs/jobA/r1.2.log", owner="host:1:abc",
            parent_run="r0", options={"with_upstream": True},
        )
        run(storage.create_run(record))
        assert run(storage.get_run("r1")) == record
        assert run(storage.list_runs()) == [record]

    def test_get_run_of_an_unknown_id_is_none(self, storage: Storage, run: Run[Any]) -> None:
        assert run(storage.get_run("nope")) is None

    def test_find_runs_by_prefix_newest_first_and_limited(self, storage: Storage, run: Run[Any]) -> None:
        run(storage.create_run(run_record("abc123", at=T0)))
        run(storage.create_run(run_record("abc456", at=T0 + 1)))
        run(storage.create_run(run_record("abd000", at=T0 + 2)))
        run(storage.create_run(run_record("xabc00", at=T0 + 3)))
        assert [r.id for r in run(storage.find_runs_by_prefix("abc"))] == ["abc456", "abc123"]
        assert [r.id for r in run(storage.find_runs_by_prefix("abc1"))] == ["abc123"]
        assert [r.id for r in run(storage.find_runs_by_prefix("ab", limit=2))] == ["abd000", "abc456"]
        assert run(storage.find_runs_by_prefix("abc1234")) == []
        assert run(storage.find_runs_by_prefix("%")) == [] and run(storage.find_runs_by_prefix("_bc")) == []
        assert run(storage.find_runs_by_prefix("abc123")) == [run_record("abc123", at=T0)]

    def test_claim_run_is_won_once(self, storage: Storage, run: Run[Any]) -> None:
        run(storage.create_run(run_record("r1")))
        claimed = run(storage.claim_run("r1", "daemon-1"))
        assert claimed is not None and claimed.state is RunState.RUNNING and claimed.owner == "daemon-1"
        assert run(storage.claim_run("r1", "daemon-2")) is None
        assert run(storage.get_run("r1")).owner == "daemon-1"

    def test_claim_run_among_concurrent_claimers_has_one_winner(self, storage: Storage, run: Run[Any]) -> None:
        run(storage.create_run(run_record("r1")))

        async def race() -> list[RunRecord | None]:
            return await asyncio.gather(*(storage.claim_run("r1", f"owner-{i}") for i in range(8)))

        winners = [r for r in run(race()) if r is not None]
        assert len(winners) == 1
        assert run(storage.get_run("r1")).owner == winners[0].owner

    def test_claim_run_only_from_the_given_states(self, storage: Storage, run: Run[Any]) -> None:
        run(storage.create_run(run_record("r1", state=RunState.WAITING)))
        run(storage.create_run(run_record("r2", state=RunState.RETRYING)))
        run(storage.create_run(run_record("r3", state=RunState.SUCCESS)))
        assert run(storage.claim_run("r1", "me")) is None
        assert run(storage.get_run("r1")).state is RunState.WAITING
        again = run(storage.claim_run("r2", "me", from_states=(RunState.RETRYING, RunState.QUEUED)))
        assert again is not None and again.state is RunState.RUNNING
        assert run(storage.claim_run("r3", "me", from_states=(RunState.QUEUED, RunState.RETRYING))) is None
        assert run(storage.claim_run("missing", "me")) is None

    def test_update_run_changes_fields_and_returns_the_run(self, storage: Storage, run: Run[Any]) -> None:
        run(storage.create_run(run_record("r1", payload={"a": 1})))
        updated = run(storage.update_run("r1", state="failed", finished_at=T0 + 2, exit_code=1, reason="exit code 1"))
        assert updated.state is RunState.FAILED
        assert (updated.finished_at, updated.exit_code, updated.reason) == (T0 + 2, 1, "exit code 1")
        assert updated.payload == {"a": 1}
        assert run(storage.get_run("r1")) == updated

    def test_update_run_refuses_unknown_runs_and_fields(self, storage: Storage, run: Run[Any]) -> None:
        run(storage.create_run(run_record("r1")))
        with pytest.raises(KeyError):
            run(storage.update_run("missing", state=RunState.FAILED))
        with pytest.raises(TypeError):
            run(storage.update_run("r1", colour="blue"))
        assert run(storage.get_run("r1")) == run_record("r1")

    def test_returned_records_are_copies(self, storage: Storage, run: Run[Any]) -> None:
        run(storage.create_run(run_record("r1", payload={"items": [1]})))
        got = run(storage.get_run("r1"))
        got.payload["items"].append(2)  # type: ignore[index]
        got.state = RunState.FAILED
        assert run(storage.get_run("r1")) == run_record("r1", payload={"items": [1]})

    def test_list_runs_newest_first_with_filters(self, storage: Storage, run: Run[Any]) -> None:
        run(storage.create_run(finished("a1", job="a", at=T0, ended=T0 + 5)))
        run(storage.create_run(finished("b1", job="b", at=T0 + 1, ended=T0 + 6, state=RunState.FAILED)))
        run(storage.create_run(run_record("a2", job="a", at=T0 + 2)))
        run(storage.create_run(finished("a3", job="a", at=T0 + 3, ended=T0 + 7)))
        run(storage.create_run(run_record("a4", job="a", at=T0 + 3)))

        def ids(*args: Any, **kwargs: Any) -> list[str]:
            return [r.id for r in run(storage.list_runs(*args, **kwargs))]

        assert ids() == ["a4", "a3", "a2", "b1", "a1"]
        assert ids("a") == ["a4", "a3", "a2", "a1"]
        assert ids("a", limit=2) == ["a4", "a3"]
        assert ids(limit=None) == ids()
        assert ids(states=[RunState.SUCCESS, RunState.FAILED]) == ["a3", "b1", "a1"]
        assert ids("a", states=[RunState.QUEUED]) == ["a4", "a2"]
        assert ids(finished_after=T0 + 5) == ["a3", "b1"]
        assert ids("b", finished_after=T0 + 6) == []
        assert ids(states=[]) == []
        assert ids("nobody") == []

    def test_list_runs_by_state_follows_claims_and_updates(self, storage: Storage, run: Run[Any]) -> None:
        for i, job in enumerate(["a", "b", "a", "b"]):
            run(storage.create_run(run_record(f"r{i}", job=job, at=T0 + i)))
        run(storage.claim_run("r0", "me"))
        run(storage.claim_run("r1", "me"))
        run(storage.update_run("r1", state=RunState.SUCCESS, finished_at=T0 + 9))
        run(storage.update_run("r3", job="a"))

        def ids(*args: Any, **kwargs: Any) -> list[str]:
            return [r.id for r in run(storage.list_runs(*args, **kwargs))]

        assert ids(states=[RunState.QUEUED]) == ["r3", "r2"]
        assert ids(states=[RunState.RUNNING, RunState.QUEUED]) == ["r3", "r2", "r0"]
        assert ids("a", states=[RunState.RUNNING, RunState.WAITING]) == ["r0"]
        assert ids("a", states=[RunState.QUEUED]) == ["r3", "r2"]
        assert ids("b") == ["r1"]
        assert ids("b", states=[RunState.QUEUED]) == []
        assert ids(states=[RunState.SUCCESS], finished_after=T0) == ["r1"]

    def test_list_runs_limit_keeps_the_newest(self, storage: Storage, run: Run[Any]) -> None:
        for i in range(120):
            run(storage.create_run(run_record(f"r{i:03d}", at=T0 + i)))
        assert [r.id for r in run(storage.list_runs())] == [f"r{i:03d}" for i in range(119, 69, -1)]
        assert len(run(storage.list_runs(limit=None))) == 120

    # attempts -----------------------------------------------------------
    def test_attempts_round_trip_in_order(self, storage: Storage, run: Run[Any]) -> None:
        run(storage.create_run(run_record("r1")))
        second = AttemptRecord(
            run_id="r1", number=2, executor="docker", started_at=T0 + 40.5, finished_at=T0 + 41.25,
            exit_code=None, signal=9, timed_out=True, error="killed", log_path="/l/r1.2.log",
            handle={"container": "abc123", "labels": {"x": "y"}},
        )
        first = AttemptRecord(run_id="r1", number=1, executor="local", started_at=T0, handle={"pid": 42})
        run(storage.add_attempt(second))
        run(storage.add_attempt(first))
        assert run(storage.list_attempts("r1")) == [first, second]
        assert run(storage.list_attempts("other")) == []

    def test_update_attempt(self, storage: Storage, run: Run[Any]) -> None:
        run(storage.create_run(run_record("r1")))
        run(storage.add_attempt(AttemptRecord(run_id="r1", number=1, executor="local", started_at=T0)))
        run(storage.update_attempt("r1", 1, finished_at=T0 + 3, exit_code=0, handle={"pid": 7, "pgid": 7}))
        (got,) = run(storage.list_attempts("r1"))
        assert (got.finished_at, got.exit_code, got.handle, got.timed_out) == (T0 + 3, 0, {"pid": 7, "pgid": 7}, False)
        with pytest.raises(KeyError):
            run(storage.update_attempt("r1", 2, exit_code=1))
        with pytest.raises(TypeError):
            run(storage.update_attempt("r1", 1, colour="blue"))

    def test_attempts_refuse_duplicates_and_unknown_runs(self, storage: Storage, run: Run[Any]) -> None:
        run(storage.create_run(run_record("r1")))
        attempt = AttemptRecord(run_id="r1", number=1, executor="local", started_at=T0)
        run(storage.add_attempt(attempt))
        with pytest.raises(StorageConflict):
            run(storage.add_attempt(AttemptRecord(run_id="r1", number=1, executor="docker", started_at=T0 + 1)))
        with pytest.raises(KeyError):
            run(storage.add_attempt(AttemptRecord(run_id="nope", number=1, executor="x", started_at=T0)))
        assert run(storage.list_attempts("r1")) == [attempt]

    # schedules and checkpoints -----------------------------------------
    def test_last_fire_per_trigger_key(self, storage: Storage, run: Run[Any]) -> None:
        assert run(storage.get_last_fire("jobA#0")) is None
        run(storage.set_last_fire("jobA#0", T0))
        run(storage.set_last_fire("jobA#1", T0 + 60))
        run(storage.set_last_fire("jobA#0", T0 + 3600.5))
        assert run(storage.get_last_fire("jobA#0")) == T0 + 3600.5
        assert run(storage.get_last_fire("jobA#1")) == T0 + 60

    def test_checkpoints_json_round_trip_overwrite_and_namespaces(self, storage: Storage, run: Run[Any]) -> None:
        assert run(storage.get_checkpoint("jobA#0", "cursor")) is None
        value = {"after": "input/2024/ü.csv", "seen": [1, 2.5, None, True], "nested": {"a": {}}}
        run(storage.set_checkpoint("jobA#0", "cursor", value))
        run(storage.set_checkpoint("jobB#0", "cursor", "other"))
        run(storage.set_checkpoint("jobA#0", "etag", 17))
        assert run(storage.get_checkpoint("jobA#0", "cursor")) == value
        run(storage.set_checkpoint("jobA#0", "cursor", ["replaced"]))
        assert run(storage.get_checkpoint("jobA#0", "cursor")) == ["replaced"]
        assert run(storage.get_checkpoint("jobB#0", "cursor")) == "other"
        assert run(storage.get_checkpoint("jobA#0", "etag")) == 17

    # retention ----------------------------------------------------------
    def _history(self, storage: Storage, run: Run[Any]) -> None:
        """jobA: five finished runs (f0 oldest), one running and one queued among them; jobB: one old run."""
        for i in range(5):
            run(storage.create_run(finished(f"f{i}", at=T0 + i * DAY)))
            run(storage.add_attempt(
                AttemptRecord(run_id=f"f{i}", number=1, executor="local", started_at=T0 + i * DAY,
                              log_path=f"/logs/jobA/f{i}.1.log")
            ))
        run(storage.add_attempt(
            AttemptRecord(run_id="f0", number=2, executor="local", started_at=T0 + 60, log_path="/logs/jobA/f0.2.log")
        ))
        run(storage.create_run(run_record("running", at=T0 - DAY, state=RunState.RUNNING, log_path="/logs/jobA/running.1.log")))
        run(storage.create_run(run_record("queued", at=T0 + 0.5 * DAY)))
        run(storage.create_run(finished("b0", job="jobB", at=T0 - 10 * DAY)))

    def _ids(self, storage: Storage, run: Run[Any], job: str = "jobA") -> set[str]:
        return {r.id for r in run(storage.list_runs(job, limit=None))}

    def test_prune_keep_last_keeps_the_newest_finished_runs(self, storage: Storage, run: Run[Any]) -> None:
        self._history(storage, run)
        paths = run(storage.prune_runs("jobA", keep_last=2, older_than=None))
        assert sorted(paths) == [
            "/logs/jobA/f0.1.log", "/logs/jobA/f0.2.log", "/logs/jobA/f1.1.log", "/logs/jobA/f2.1.log",
        ]
        assert self._ids(storage, run) == {"f3", "f4", "running", "queued"}
        assert run(storage.list_attempts("f0")) == []
        assert len(run(storage.list_attempts("f4"))) == 1
        assert self._ids(storage, run, "jobB") == {"b0"}

    def test_prune_older_than_never_touches_unfinished_runs(self, storage: Storage, run: Run[Any]) -> None:
        self._history(storage, run)
        paths = run(storage.prune_runs("jobA", keep_last=None, older_than=T0 + 2 * DAY))
        assert sorted(paths) == ["/logs/jobA/f0.1.log", "/logs/jobA/f0.2.log", "/logs/jobA/f1.1.log"]
        assert self._ids(storage, run) == {"f2", "f3", "f4", "running", "queued"}
        assert run(storage.prune_runs("jobA", keep_last=0, older_than=None)) != []
        assert self._ids(storage, run) == {"running", "queued"}

    def test_prune_applies_either_limit(self, storage: Storage, run: Run[Any]) -> None:
        self._history(storage, run)
        run(storage.prune_runs("jobA", keep_last=4, older_than=T0 + 2 * DAY))
        assert self._ids(storage, run) == {"f2", "f3", "f4", "running", "queued"}
        assert run(storage.prune_runs("jobA", keep_last=None, older_than=None)) == []
        assert run(storage.prune_runs("nobody", keep_last=0, older_than=None)) == []
        assert self._ids(storage, run) == {"f2", "f3", "f4", "running", "queued"}

    # lifecycle ----------------------------------------------------------
    def test_state_survives_close_and_open(self, storage: Storage, run: Run[Any]) -> None:
        run(storage.add_event(event("e1", dedupe="k")))
        run(storage.create_run(run_record("r1")))
        run(storage.set_checkpoint("jobA#0", "cursor", {"n": 1}))
        run(storage.close())
        run(storage.open())
        assert [e.id for e in run(storage.pending_events())] == ["e1"]
        assert run(storage.get_run("r1")) == run_record("r1")
        assert run(storage.get_checkpoint("jobA#0", "cursor")) == {"n": 1}
        assert run(storage.add_event(event("e2", dedupe="k"))) is False

    # reading the history while the daemon is down ---------------------
    def test_open_readonly_of_a_fresh_state_creates_nothing(
        self, storage_under_test: StorageUnderTest, make_storage: Callable[[], Storage], run: Run[Any], tmp_path: Path
    ) -> None:
        before = sorted(tmp_path.rglob("*"))
        reader = make_storage()
        if not storage_under_test.keeps_history:
            with pytest.raises(StorageError, match="keeps no history"):
                run(reader.open_readonly())
            return
        assert run(reader.open_readonly()) is False
        run(reader.close())
        # Had the first reader created its database, the second would find one.
        again = make_storage()
        assert run(again.open_readonly()) is False
        run(again.close())
        assert sorted(tmp_path.rglob("*")) == before

    def test_open_readonly_reads_what_the_daemon_wrote(
        self, storage_under_test: StorageUnderTest, make_storage: Callable[[], Storage], run: Run[Any]
    ) -> None:
        if not storage_under_test.keeps_history:
            pytest.skip("this backend keeps no history once the daemon stops")
        daemon = make_storage()
        run(daemon.open())
        run(daemon.create_run(run_record("r1", state=RunState.SUCCESS)))
        attempt = AttemptRecord(run_id="r1", number=1, executor="local", started_at=T0, exit_code=0)
        run(daemon.add_attempt(attempt))
        run(daemon.close())
        reader = make_storage()
        assert run(reader.open_readonly()) is True
        try:
            assert run(reader.get_run("r1")) == run_record("r1", state=RunState.SUCCESS)
            assert [r.id for r in run(reader.list_runs("jobA"))] == ["r1"]
            assert run(reader.list_attempts("r1")) == [attempt]
            with pytest.raises(StorageError):
                run(reader.create_run(run_record("r2")))
        finally:
            run(reader.close())
        daemon = make_storage()
        run(daemon.open())
        try:
            assert [r.id for r in run(daemon.list_runs())] == ["r1"]
        finally:
            run(daemon.close())
