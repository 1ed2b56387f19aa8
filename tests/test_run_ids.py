"""Resolving a run id as a person types it: the full id or a unique prefix (issue 20)."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from firelink_core.builtin.sqlite import SqliteStorage
from firelink_core.records import RunRecord, RunState
from firelink_core.run_ids import AmbiguousRunId, UnknownRunId, resolve_run, short_id
from firelink_core.testing import BasicStorageContext


def _run(run_id: str, at: float) -> RunRecord:
    return RunRecord(id=run_id, job="jobA", state=RunState.SUCCESS, created_at=at)


def test_full_id_unique_prefix_ambiguous_prefix_and_unknown(tmp_path: Path) -> None:
    async def scenario() -> None:
        storage = SqliteStorage({}, BasicStorageContext(tmp_path))
        await storage.open()
        try:
            for i, run_id in enumerate(["deadbeef01", "deadbeef02", "cafe0001"]):
                await storage.create_run(_run(run_id, 1000.0 + i))
            assert (await resolve_run(storage, "cafe")).id == "cafe0001"
            assert (await resolve_run(storage, "deadbeef01")).id == "deadbeef01"
            with pytest.raises(AmbiguousRunId) as ambiguous:
                await resolve_run(storage, "deadbeef")
            assert "deadbeef02 (jobA, success); deadbeef01 (jobA, success)" in str(ambiguous.value)
            with pytest.raises(UnknownRunId, match="no run 'f00d'"):
                await resolve_run(storage, "f00d")
            with pytest.raises(UnknownRunId, match="at least 4"):
                await resolve_run(storage, "caf")
        finally:
            await storage.close()

    asyncio.run(scenario())


def test_short_id_is_eight_characters() -> None:
    assert short_id("0123456789abcdef") == "01234567"
