"""Engine-level checks of issue 20: cancelling a retrying run gives its slot back at once,
and a job's status says which upstream jobs it waits for and since when."""

from __future__ import annotations

import asyncio
import textwrap
import time
from pathlib import Path

from firelink_core.records import RunState
from firelink_core.testing import async_wait_for, run_engine


async def _state(h: object, run_id: str) -> RunState | None:
    run = await h.storage.get_run(run_id)  # type: ignore[attr-defined]
    return run.state if run else None


def test_cancel_of_a_retrying_run_frees_its_slot_and_its_retry_never_starts(tmp_path: Path) -> None:
    marker = tmp_path / "failed-once"
    config = textwrap.dedent(f"""
        jobs:
          - name: flaky
            trigger: manual
            command: [sh, -c, "[ -e {marker} ] || {{ touch {marker}; exit 1; }}"]
            retries: {{count: 3, delay: 5s}}
    """)

    async def scenario() -> None:
        async with run_engine(config, tmp_path) as h:
            first = await h.trigger("flaky")
            await async_wait_for(lambda: _is(h, first, RunState.RETRYING))
            retry_at = (await h.storage.get_run(first)).next_attempt_at
            second = await h.trigger("flaky")  # waits for the job's one slot
            await h.settle()
            assert await _state(h, second) == RunState.QUEUED
            ended = await h.engine.cancel(first)
            assert ended.state is RunState.CANCELLED
            assert ended.reason is not None and "cancelled by hand" in ended.reason
            # The slot is free at once: the second run does not wait for the retry time (5 s).
            await async_wait_for(lambda: _is(h, second, RunState.SUCCESS), timeout=3)
            # Past the cancelled run's retry time, its retry has not started.
            await async_wait_for(lambda: time.time() > retry_at + 0.5, timeout=10)
            await h.settle()
            assert await _state(h, first) == RunState.CANCELLED
            assert [a.number for a in await h.storage.list_attempts(first)] == [1]

    asyncio.run(scenario())


async def _is(h: object, run_id: str, *states: RunState) -> bool:
    return await _state(h, run_id) in states


def test_status_names_the_upstream_a_job_waits_for_and_since_when(tmp_path: Path) -> None:
    config = textwrap.dedent("""
        jobs:
          - name: sync
            trigger: manual
            command: ["true"]
          - name: report
            depends_on: [sync]
            command: ["true"]
    """)

    async def scenario() -> None:
        async with run_engine(config, tmp_path) as h:
            status = {s.name: s for s in h.engine.status()}
            assert status["report"].state == "waiting"
            assert (status["report"].waiting_on, status["report"].waiting_since) == (["sync"], None)
            await h.run("sync")
            (auto,) = await h.wait_runs("report", 1)
            assert auto.state is RunState.SUCCESS
            await h.settle()
            status = {s.name: s for s in h.engine.status()}
            # It ran; now it waits for sync's next success after its own run.
            assert status["report"].state == "waiting" and status["report"].waiting_on == ["sync"]
            assert status["report"].waiting_needs == "success"
            assert status["report"].waiting_since is not None
            assert status["report"].waiting_since >= auto.created_at
            assert status["sync"].state == "idle" and status["sync"].waiting_on == []

    asyncio.run(scenario())


def test_two_cancels_of_a_running_run_both_see_it_cancelled(tmp_path: Path) -> None:
    config = textwrap.dedent("""
        jobs:
          - name: slow
            trigger: manual
            kill_grace: 1s
            command: [sleep, "60"]
    """)

    async def scenario() -> None:
        async with run_engine(config, tmp_path) as h:
            run_id = await h.trigger("slow")
            await async_wait_for(lambda: _is(h, run_id, RunState.RUNNING))
            await async_wait_for(lambda: h.storage.list_attempts(run_id))
            first, second = await asyncio.wait_for(
                asyncio.gather(h.engine.cancel(run_id), h.engine.cancel(run_id)), timeout=10
            )
            assert first.state is RunState.CANCELLED and second.state is RunState.CANCELLED
            (attempt,) = await h.storage.list_attempts(run_id)
            assert attempt.finished_at is not None and "cancelled by hand" in (attempt.error or "")

    asyncio.run(scenario())
