"""The storage contract's part for ``firelink pause`` and ``firelink explain``: pauses and
engine decisions (mixed into :class:`~firelink_core.testing.StorageContract`)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

from ..plugin_api import DecisionRecord, PauseRecord, Storage

__all__ = ["PausesAndDecisionsContract"]

T = TypeVar("T")
Run = Callable[[Coroutine[Any, Any, T]], T]

T0 = 1_700_000_000.25


def decision(job: str, n: int, **kw: Any) -> DecisionRecord:
    return DecisionRecord(
        job=job, at=T0 + n, outcome=kw.pop("outcome", "ran"), run_id=f"{job}-{n}", **kw
    )


class PausesAndDecisionsContract:
    """Pauses survive a restart and are replaced and cleared per job; decisions come back
    newest first, per job, within ``limit``, and ``keep_last`` bounds what is kept."""

    def test_pauses_are_stored_replaced_and_cleared(self, storage: Storage, run: Run[Any]) -> None:
        assert run(storage.list_pauses()) == []
        assert run(storage.clear_pause("jobA")) is None
        run(storage.set_pause(PauseRecord(job="jobB", since=T0, reason="maintenance window")))
        run(storage.set_pause(PauseRecord(job="jobA", since=T0 + 1, reason=None)))
        run(
            storage.set_pause(
                PauseRecord(job="jobA", since=T0 + 2, reason="3 consecutive failures", by="breaker")
            )
        )
        assert run(storage.list_pauses()) == [
            PauseRecord(job="jobA", since=T0 + 2, reason="3 consecutive failures", by="breaker"),
            PauseRecord(job="jobB", since=T0, reason="maintenance window"),
        ]
        assert run(storage.clear_pause("jobA")) == PauseRecord(
            job="jobA", since=T0 + 2, reason="3 consecutive failures", by="breaker"
        )
        assert run(storage.clear_pause("jobA")) is None
        assert [p.job for p in run(storage.list_pauses())] == ["jobB"]

    def test_pauses_survive_close_and_open(self, storage: Storage, run: Run[Any]) -> None:
        run(storage.set_pause(PauseRecord(job="jobA", since=T0, reason="ü and ' quotes")))
        run(storage.close())
        run(storage.open())
        assert run(storage.list_pauses()) == [
            PauseRecord(job="jobA", since=T0, reason="ü and ' quotes")
        ]

    def test_decisions_newest_first_per_job_within_limit(
        self, storage: Storage, run: Run[Any]
    ) -> None:
        first = [
            decision("jobA", 0, trigger="by-hand", scheduled_for=T0 - 0.5),
            decision("jobB", 0),
        ]
        run(storage.add_decisions(first, keep_last=100))
        run(
            storage.add_decisions(
                [
                    decision("jobA", 1, outcome="skipped", reason="paused: maintenance"),
                    decision("jobA", 2),
                ],
                keep_last=100,
            )
        )
        assert run(storage.list_decisions("jobA")) == [
            decision("jobA", 2),
            decision("jobA", 1, outcome="skipped", reason="paused: maintenance"),
            decision("jobA", 0, trigger="by-hand", scheduled_for=T0 - 0.5),
        ]
        assert run(storage.list_decisions("jobA", limit=1)) == [decision("jobA", 2)]
        assert run(storage.list_decisions("jobB")) == [decision("jobB", 0)]
        assert run(storage.list_decisions("nobody")) == []

    def test_decisions_keep_last_bounds_each_job(self, storage: Storage, run: Run[Any]) -> None:
        run(storage.add_decisions([decision("jobB", i) for i in range(3)], keep_last=10))
        for i in range(0, 12, 3):
            run(storage.add_decisions([decision("jobA", i + k) for k in range(3)], keep_last=5))
        assert [d.run_id for d in run(storage.list_decisions("jobA", limit=100))] == [
            f"jobA-{i}" for i in range(11, 6, -1)
        ]
        assert len(run(storage.list_decisions("jobB", limit=100))) == 3
