"""The engine's timer: schedule fires, catch-up after downtime, wall-clock jumps, idle wake-ups.

These tests drive the timer with a ``FakeClock`` and a small schedule trigger defined here
(fires at every multiple of ``seconds`` since the epoch), so they test the engine's timer
and catch-up policy, not cron parsing (the cron and interval triggers have their own tests).
"""

from __future__ import annotations

import asyncio
import textwrap
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, ClassVar

from firelink_core.abc import ScheduleTrigger
from firelink_core.builtin import cron, interval, subprocess  # noqa: F401 - the built-ins these tests run: a broken one fails loudly
from firelink_core.builtin.sqlite import SqliteStorage
from firelink_core.records import RunState
from firelink_core.testing import FakeClock, async_wait_for, plugins_with, run_engine

T0 = 1_700_000_000.0
"""FakeClock's start: 800 s past a whole hour (UTC)."""
HOUR = 3600.0


class EveryTrigger(ScheduleTrigger):
    """Test schedule: fires at each multiple of ``seconds`` (epoch-aligned)."""

    type_name = "every_test"
    description = "Fires at every multiple of `seconds` since the epoch (tests only)."
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {"seconds": {"type": "number", "description": "Period in seconds."}},
        "required": ["seconds"],
    }

    def next_fire(self, after: datetime) -> datetime | None:
        period = float(self.options["seconds"])
        ts = after.timestamp()
        return datetime.fromtimestamp((ts // period + 1) * period, timezone.utc)


def aligned_after(ts: float, period: float = HOUR) -> float:
    return (ts // period + 1) * period


def cfg(text: str) -> str:
    return textwrap.dedent(text)


def schedule_job(catchup: str = "latest", extra: str = "", overlap: str = "allow", instances: int = 10) -> str:
    return cfg(f"""
        jobs:
          - name: tick
            trigger: every_test
            seconds: 3600
            catchup: {catchup}
            command: ["true"]
            overlap: {overlap}
            max_instances: {instances}
            {extra}
          - {{name: poke, trigger: manual, command: ["true"]}}
    """)


def test_schedule_fires_when_due_and_records_last_fire(tmp_path: Path) -> None:
    clock = FakeClock(T0)

    async def scenario() -> None:
        async with run_engine(schedule_job(), tmp_path, clock=clock, plugins=plugins_with(EveryTrigger)) as h:
            first_due = aligned_after(T0)
            (status,) = [s for s in h.engine.status() if s.name == "tick"]
            assert status.next_due == datetime.fromtimestamp(first_due, timezone.utc)
            await h.settle()
            assert await h.runs("tick") == []
            await clock.advance(first_due - T0)
            (run,) = await h.wait_runs("tick", 1)
            assert run.scheduled_for == first_due and run.trigger == "every_test"
            assert run.state is RunState.SUCCESS
            assert await h.storage.get_last_fire("tick#0") == first_due
            await clock.advance(HOUR)
            runs = await h.wait_runs("tick", 2)
            assert [r.scheduled_for for r in runs] == [first_due, first_due + HOUR]

    asyncio.run(scenario())


async def _seed_last_fire(tmp_path: Path, when: float) -> None:
    from firelink_core.engine.contexts import EngineStorageContext
    from firelink_core.model import Config

    storage = SqliteStorage({}, EngineStorageContext(Config(state_dir=tmp_path)))
    await storage.open()
    await storage.set_last_fire("tick#0", when)
    await storage.close()


def _catch_up(tmp_path: Path, catchup: str, extra: str = "", overlap: str = "allow", instances: int = 10) -> list[float]:
    """Runs made at start after a downtime: last fire 5 whole hours before T0's hour."""
    clock = FakeClock(T0)
    last = aligned_after(T0) - 6 * HOUR  # fires missed: last+1h .. last+5h (the latest is <= T0)

    async def scenario() -> list[float]:
        await _seed_last_fire(tmp_path, last)
        async with run_engine(schedule_job(catchup, extra, overlap, instances), tmp_path, clock=clock, plugins=plugins_with(EveryTrigger)) as h:
            await h.settle()
            await async_wait_for(lambda: _all_finished(h, "tick"))
            runs = await h.runs("tick")
            assert all(r.state is RunState.SUCCESS for r in runs)
            assert await h.storage.get_last_fire("tick#0") == last + 5 * HOUR
            (status,) = [s for s in h.engine.status() if s.name == "tick"]
            assert status.next_due == datetime.fromtimestamp(aligned_after(T0), timezone.utc)
            return sorted(r.scheduled_for for r in runs)

    return asyncio.run(scenario())


async def _all_finished(h: Any, job: str) -> bool:
    return all(r.finished for r in await h.runs(job))


def test_catchup_latest_runs_once_for_all_missed(tmp_path: Path) -> None:
    last = aligned_after(T0) - 6 * HOUR
    assert _catch_up(tmp_path, "latest") == [last + 5 * HOUR]


def test_catchup_all_runs_every_missed_fire(tmp_path: Path) -> None:
    last = aligned_after(T0) - 6 * HOUR
    assert _catch_up(tmp_path, "all") == [last + n * HOUR for n in range(1, 6)]


def test_catchup_all_queues_even_with_overlap_skip(tmp_path: Path) -> None:
    last = aligned_after(T0) - 6 * HOUR
    assert _catch_up(tmp_path, "all", overlap="skip", instances=1) == [last + n * HOUR for n in range(1, 6)]


def test_catchup_skip_runs_nothing(tmp_path: Path) -> None:
    assert _catch_up(tmp_path, "skip") == []


def test_misfire_grace_drops_old_fires(tmp_path: Path) -> None:
    last = aligned_after(T0) - 6 * HOUR
    assert _catch_up(tmp_path, "all", "misfire_grace: 2h") == [last + 4 * HOUR, last + 5 * HOUR]


def test_first_start_catches_nothing_up(tmp_path: Path) -> None:
    clock = FakeClock(T0)

    async def scenario() -> None:
        async with run_engine(schedule_job("all"), tmp_path, clock=clock, plugins=plugins_with(EveryTrigger)) as h:
            await h.settle()
            assert await h.runs("tick") == []
            assert await h.storage.get_last_fire("tick#0") is None

    asyncio.run(scenario())


def test_wall_clock_jump_recomputes_schedules(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    first_due = aligned_after(T0)

    async def scenario() -> None:
        async with run_engine(schedule_job("latest"), tmp_path, clock=clock, plugins=plugins_with(EveryTrigger)) as h:
            await h.settle()
            # The wall clock steps 3 hours ahead (NTP step, resume): three planned fires are
            # now in the past. The monotonic clock did not move, so the timer still sleeps;
            # the next wake-up (here a manual run) must notice and apply catch-up 'latest'.
            await clock.jump_wall(3 * HOUR)
            await h.run("poke")
            await h.settle()
            await async_wait_for(lambda: _all_finished(h, "tick"))
            runs = await h.runs("tick")
            assert [r.scheduled_for for r in runs] == [first_due + 2 * HOUR]
            assert runs[0].payload.get("catchup") is True
            (status,) = [s for s in h.engine.status() if s.name == "tick"]
            assert status.next_due == datetime.fromtimestamp(first_due + 3 * HOUR, timezone.utc)

    asyncio.run(scenario())


def test_wall_clock_stepping_back_does_not_fire_twice(tmp_path: Path) -> None:
    clock = FakeClock(T0)
    first_due = aligned_after(T0)

    async def scenario() -> None:
        async with run_engine(schedule_job("all"), tmp_path, clock=clock, plugins=plugins_with(EveryTrigger)) as h:
            await clock.advance(first_due - T0)
            await h.wait_runs("tick", 1)
            await clock.jump_wall(-2 * HOUR)
            await h.run("poke")
            await clock.advance(HOUR)  # wall time is now back before first_due
            await h.settle()
            assert [r.scheduled_for for r in await h.runs("tick")] == [first_due]
            (status,) = [s for s in h.engine.status() if s.name == "tick"]
            assert status.next_due == datetime.fromtimestamp(first_due + HOUR, timezone.utc)

    asyncio.run(scenario())


def test_idle_engine_with_1000_schedules_does_not_wake(tmp_path: Path) -> None:
    jobs = "\n".join(
        f"  - {{name: j{i}, trigger: every_test, seconds: 7200, command: [\"true\"]}}" for i in range(1000)
    )
    clock = FakeClock(T0)
    assert aligned_after(T0, 7200) - T0 > HOUR  # nothing due within the hour

    async def scenario() -> None:
        async with run_engine("jobs:\n" + jobs, tmp_path, clock=clock, plugins=plugins_with(EveryTrigger)) as h:
            await h.settle()
            before = h.engine.wakeups
            for _ in range(60):
                await clock.advance(60)
            await h.settle()
            assert h.engine.wakeups == before
            assert await h.runs() == []
            assert h.engine.sleeping_until > T0 + HOUR  # one sleep covers the whole hour

    asyncio.run(scenario())


def test_jitter_delays_the_fire_but_not_scheduled_for(tmp_path: Path) -> None:
    class JitteryTrigger(EveryTrigger):
        type_name = "jittery_test"

        def jitter_for(self, due: datetime) -> float:
            return 90.0

    config = cfg("""
        jobs:
          - {name: tick, trigger: jittery_test, seconds: 3600, command: ["true"]}
    """)
    clock = FakeClock(T0)
    first_due = aligned_after(T0)

    async def scenario() -> None:
        async with run_engine(config, tmp_path, clock=clock, plugins=plugins_with(JitteryTrigger)) as h:
            await clock.advance(first_due - T0 + 30)
            await h.settle()
            assert await h.runs("tick") == []
            await clock.advance(60)
            (run,) = await h.wait_runs("tick", 1)
            assert run.scheduled_for == first_due
            assert run.created_at >= first_due + 90

    asyncio.run(scenario())


# --------------------------------------------------------------------------- the built-in schedules


def test_interval_fires_every_period(tmp_path: Path) -> None:
    config = cfg("""
        jobs:
          - {name: every, trigger: interval, every: 90s, command: ["true"]}
    """)
    clock = FakeClock(T0)

    async def scenario() -> None:
        async with run_engine(config, tmp_path, clock=clock) as h:
            (status,) = h.engine.status()
            first = status.next_due.timestamp()
            assert T0 < first <= T0 + 90
            await clock.advance(first - T0)
            await h.wait_runs("every", 1)
            await clock.advance(90)
            runs = await h.wait_runs("every", 2)
            assert sorted(r.scheduled_for for r in runs) == [first, first + 90]

    asyncio.run(scenario())


def test_cron_fires_at_its_time_in_the_job_timezone(tmp_path: Path) -> None:
    config = cfg("""
        jobs:
          - {name: utc, trigger: cron, schedule: "0 18 * * *", command: ["true"]}
          - {name: paris, trigger: cron, schedule: "0 18 * * *", timezone: Europe/Paris, command: ["true"]}
    """)
    clock = FakeClock(T0)  # 2023-11-14 22:13:20 UTC
    utc_due = datetime(2023, 11, 15, 18, 0, tzinfo=timezone.utc).timestamp()
    paris_due = utc_due - HOUR  # 18:00 in Paris is 17:00 UTC in November

    async def scenario() -> None:
        async with run_engine(config, tmp_path, clock=clock) as h:
            due = {s.name: s.next_due.timestamp() for s in h.engine.status()}
            assert due == {"utc": utc_due, "paris": paris_due}
            await clock.advance(paris_due - T0)
            (paris,) = await h.wait_runs("paris", 1)
            assert paris.scheduled_for == paris_due and paris.trigger == "cron"
            await h.settle()
            assert await h.runs("utc") == []
            await clock.advance(HOUR)
            (utc,) = await h.wait_runs("utc", 1)
            assert utc.scheduled_for == utc_due

    asyncio.run(scenario())


def test_idle_engine_with_1000_cron_jobs_makes_no_wakeup_in_an_hour(tmp_path: Path) -> None:
    jobs = "\n".join(
        f'  - {{name: c{i}, trigger: cron, schedule: "{i % 60} 3 * * *", command: ["true"]}}' for i in range(1000)
    )
    clock = FakeClock(T0)  # 22:13 UTC: the first fire is at 03:00, hours away

    async def scenario() -> None:
        async with run_engine("jobs:\n" + jobs, tmp_path, clock=clock) as h:
            await h.settle()
            before = h.engine.wakeups
            for _ in range(60):
                await clock.advance(60)
            await h.settle()
            assert h.engine.wakeups == before
            assert await h.runs() == []

    asyncio.run(scenario())


def test_a_missed_fire_is_not_caught_up_when_the_regular_fire_is_about_to_come(tmp_path: Path) -> None:
    """A restart right after a stop: the regular fire stands for the missed one (issue 20)."""
    regular = aligned_after(T0)
    clock = FakeClock(regular - 100)  # the missed fire is an hour late; the next is due in 100 s
    missed = regular - HOUR

    async def scenario() -> None:
        await _seed_last_fire(tmp_path, missed - HOUR)
        async with run_engine(schedule_job(), tmp_path, clock=clock, plugins=plugins_with(EveryTrigger)) as h:
            await h.settle()
            assert await h.runs("tick") == []
            assert await h.storage.get_last_fire("tick#0") == missed  # not reported again later
            await clock.advance(100)
            (run,) = await h.wait_runs("tick", 1)
            assert run.scheduled_for == regular

    asyncio.run(scenario())
