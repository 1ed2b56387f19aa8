"""The storage contract's part for run queries of ``firelink runs`` and ``firelink backfill``:
pages of runs with time filters and cursors, and runs by scheduled instant (mixed into
:class:`~firelink_core.testing.StorageContract`)."""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from typing import Any, TypeVar

import pytest

from ..plugin_api import RunRecord, RunState, Storage

__all__ = ["RunQueriesContract"]

T = TypeVar("T")
Run = Callable[[Coroutine[Any, Any, T]], T]

T0 = 1_700_000_000.25


class RunQueriesContract:
    """``page_runs`` pages newest first with filters and an opaque cursor;
    ``list_scheduled_runs`` answers the runs of a job by scheduled instant in a range."""

    def test_page_runs_filters_and_follows_its_cursor(
        self, storage: Storage, run: Run[Any]
    ) -> None:
        for n in range(7):
            job = "jobA" if n % 2 == 0 else "jobB"
            state = RunState.FAILED if n == 4 else RunState.SUCCESS
            run(storage.create_run(RunRecord(id=f"r{n}", job=job, created_at=T0 + n, state=state)))
        # Two runs created in the same instant are both listed once, in a stable order.
        run(storage.create_run(RunRecord(id="r6b", job="jobA", created_at=T0 + 6)))
        seen: list[str] = []
        cursor = None
        for _ in range(10):
            page, cursor = run(storage.page_runs(limit=3, cursor=cursor))
            seen += [r.id for r in page]
            if cursor is None:
                break
        assert seen == ["r6b", "r6", "r5", "r4", "r3", "r2", "r1", "r0"]
        page, cursor = run(
            storage.page_runs("jobA", created_after=T0 + 1, created_before=T0 + 6, limit=10)
        )
        assert [r.id for r in page] == ["r4", "r2"] and cursor is None
        page, _ = run(storage.page_runs(states=[RunState.FAILED]))
        assert [r.id for r in page] == ["r4"]
        with pytest.raises(ValueError):
            run(storage.page_runs(cursor="not-a-cursor"))

    def test_list_scheduled_runs_by_instant(self, storage: Storage, run: Run[Any]) -> None:
        for n in range(5):
            run(
                storage.create_run(
                    RunRecord(id=f"s{n}", job="jobA", created_at=T0, scheduled_for=T0 + 3600 * n)
                )
            )
        run(storage.create_run(RunRecord(id="other", job="jobB", created_at=T0, scheduled_for=T0)))
        run(storage.create_run(RunRecord(id="unscheduled", job="jobA", created_at=T0)))
        found = run(storage.list_scheduled_runs("jobA", T0 + 3600, T0 + 3600 * 4))
        assert [r.id for r in found] == ["s1", "s2", "s3"]
