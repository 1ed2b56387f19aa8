"""The engine through its public API: manual runs, env, logs, retries, timeouts, concurrency, notifiers, retention, reload, shutdown."""

from __future__ import annotations

import asyncio
import sys
import textwrap
import types
from pathlib import Path
from typing import Any, ClassVar

import pytest

from firelink_core.abc import Notifier
from firelink_core.builtin import subprocess  # noqa: F401 - the built-ins these tests run: a broken one fails loudly
from firelink_core.config import parse_config
from firelink_core.events import RunEvent
from firelink_core.plugin_api import hookimpl
from firelink_core.plugins import PluginInfo
from firelink_core.records import RunState
from firelink_core.testing import FakeClock, async_wait_for, plugins_with, run_engine

PY = sys.executable


def cfg(text: str) -> str:
    return textwrap.dedent(text)


def gate_cmd(gate: Path, then: str = "exit 0") -> str:
    """A shell command that blocks until the file ``gate`` exists (released by the test)."""
    return f'while [ ! -e "{gate}" ]; do sleep 0.02; done; {then}'


class EventLog:
    """A plugin recording every lifecycle event through the firelink_run_event hook."""

    def __init__(self) -> None:
        self.events: list[RunEvent] = []

    @hookimpl
    def firelink_run_event(self, event: RunEvent) -> None:
        self.events.append(event)

    def kinds(self, job: str) -> list[str]:
        return [e.kind for e in self.events if e.run.job == job]


def with_event_log(plugins: Any) -> EventLog:
    recorder = EventLog()
    plugins.register_module(
        recorder, PluginInfo(name="event-log", distribution=None, version=None, source="option", module="event-log")
    )
    return recorder


def test_manual_run_gets_env_and_log(tmp_path: Path) -> None:
    config = cfg(f"""
        jobs:
          - name: hello
            trigger: manual
            command: ["{PY}", "-c", "import os; print(os.environ['GREETING'], os.environ['FIRELINK_JOB'], os.environ['FIRELINK_ATTEMPT'], os.environ['FIRELINK_TRIGGER'], os.environ['SECRET'])"]
            env: {{SECRET: s3cr3t}}
    """)

    async def scenario() -> None:
        async with run_engine(config, tmp_path) as h:
            run_id = await h.trigger("hello", {"GREETING": "bonjour"})
            run = await h.wait_run(run_id)
            assert run.state is RunState.SUCCESS
            assert run.id == run_id and run.attempts == 1 and run.exit_code == 0
            # The job's own env is never stored; a request's values only as masked names (issue 19).
            assert run.env == {"GREETING": "***"}
            assert h.log_text(run).split() == ["bonjour", "hello", "1", "manual", "s3cr3t"]
            assert run.log_path == str(tmp_path / "logs" / "hello" / f"{run_id}.1.log")
            attempts = await h.storage.list_attempts(run_id)
            assert [a.number for a in attempts] == [1]
            assert attempts[0].finished_at is not None and attempts[0].exit_code == 0
            assert attempts[0].handle, "the executor's handle was not persisted"
            with pytest.raises(KeyError):
                await h.trigger("nope")

    asyncio.run(scenario())


def test_event_payload_reaches_the_job_as_json(tmp_path: Path) -> None:
    config = cfg(f"""
        jobs:
          - name: show
            trigger: manual
            command: ["{PY}", "-c", "import json, os; e = json.loads(os.environ['FIRELINK_EVENT']); print(e['manual'], os.environ['FIRELINK_RUN_ID'])"]
    """)

    async def scenario() -> None:
        async with run_engine(config, tmp_path) as h:
            run = await h.run("show")
            assert h.log_text(run).split() == ["True", run.id]

    asyncio.run(scenario())


def test_failure_retries_with_exponential_backoff_on_the_clock(tmp_path: Path) -> None:
    config = cfg("""
        jobs:
          - name: flaky
            trigger: manual
            command: ["sh", "-c", "echo attempt $FIRELINK_ATTEMPT; exit 3"]
            retries: {count: 2, delay: 10s, backoff: exponential}
    """)
    clock = FakeClock()

    async def scenario() -> None:
        plugins = plugins_with()
        events = with_event_log(plugins)
        async with run_engine(config, tmp_path, clock=clock, plugins=plugins) as h:
            run_id = await h.trigger("flaky")
            delays = []
            for expected_attempts in (1, 2):
                run = await async_wait_for(
                    lambda n=expected_attempts: _run_in(h, run_id, RunState.RETRYING, attempts=n), 10
                )
                delays.append(run.next_attempt_at - clock.now())
                await clock.advance(run.next_attempt_at - clock.now())
            run = await h.wait_run(run_id)
            assert delays == [10.0, 20.0]
            assert run.state is RunState.FAILED and run.exit_code == 3 and run.attempts == 3
            attempts = await h.storage.list_attempts(run_id)
            assert [(a.number, a.exit_code) for a in attempts] == [(1, 3), (2, 3), (3, 3)]
            assert h.log_text(run, attempt=2).strip() == "attempt 2"
            assert events.kinds("flaky") == [
                "queued", "started", "retry", "started", "retry", "started", "failure",
            ]

    asyncio.run(scenario())


async def _run_in(h: Any, run_id: str, state: RunState, attempts: int | None = None) -> Any:
    run = await h.storage.get_run(run_id)
    if run is not None and run.state is state and (attempts is None or run.attempts == attempts):
        return run
    return None


def test_retry_only_listed_exit_codes(tmp_path: Path) -> None:
    config = cfg("""
        jobs:
          - name: picky
            trigger: manual
            command: ["sh", "-c", "exit $CODE"]
            retries: {count: 3, delay: 0s, on_exit_codes: [75]}
    """)

    async def scenario() -> None:
        async with run_engine(config, tmp_path) as h:
            not_retried = await h.run("picky", {"CODE": "1"})
            assert not_retried.state is RunState.FAILED and not_retried.attempts == 1
            retried = await h.run("picky", {"CODE": "75"})
            assert retried.state is RunState.FAILED and retried.attempts == 4

    asyncio.run(scenario())


def test_timeout_kills_the_process_group(tmp_path: Path) -> None:
    pidfile = tmp_path / "grandchild.pid"
    config = cfg(f"""
        jobs:
          - name: slow
            trigger: manual
            command: 'sleep 60 & echo $! > {pidfile}; wait'
            shell: true
            timeout: 0.5s
            kill_grace: 0.5s
            retries: {{count: 1, delay: 0s, on_timeout: false}}
    """)

    async def scenario() -> None:
        plugins = plugins_with()
        events = with_event_log(plugins)
        async with run_engine(config, tmp_path, plugins=plugins) as h:
            run = await h.run("slow", timeout=20)
            assert run.state is RunState.TIMED_OUT and run.attempts == 1
            attempts = await h.storage.list_attempts(run.id)
            assert attempts[0].timed_out
            assert events.kinds("slow")[-1] == "timeout"
        grandchild = int(pidfile.read_text())
        await async_wait_for(lambda: not _alive(grandchild), 10, message="grandchild killed")

    asyncio.run(scenario())


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_overlap_skip_records_a_skipped_run(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    config = cfg(f"""
        jobs:
          - name: job
            trigger: manual
            command: '{gate_cmd(gate)}'
            shell: true
            overlap: skip
    """)

    async def scenario() -> None:
        async with run_engine(config, tmp_path) as h:
            first = await h.trigger("job")
            await async_wait_for(lambda: _run_in(h, first, RunState.RUNNING))
            second = await h.wait_run(await h.trigger("job"))
            assert second.state is RunState.SKIPPED and "overlap" in second.reason
            assert second.attempts == 0
            gate.touch()
            assert (await h.wait_run(first)).state is RunState.SUCCESS

    asyncio.run(scenario())


def test_overlap_queue_runs_one_after_another(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    config = cfg(f"""
        jobs:
          - name: job
            trigger: manual
            command: '{gate_cmd(gate)}'
            shell: true
            overlap: queue
            max_instances: 3
    """)

    async def scenario() -> None:
        async with run_engine(config, tmp_path) as h:
            ids = [await h.trigger("job") for _ in range(3)]
            await async_wait_for(lambda: _run_in(h, ids[0], RunState.RUNNING))
            assert (await h.storage.get_run(ids[1])).state is RunState.QUEUED
            assert (await h.storage.get_run(ids[2])).state is RunState.QUEUED
            gate.touch()
            runs = [await h.wait_run(i) for i in ids]
            assert all(r.state is RunState.SUCCESS for r in runs)
            for before, after in zip(runs, runs[1:], strict=False):
                assert after.started_at >= before.finished_at  # FIFO, never overlapping

    asyncio.run(scenario())


def test_overlap_allow_runs_up_to_max_instances_then_queues(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    config = cfg(f"""
        jobs:
          - name: job
            trigger: manual
            command: '{gate_cmd(gate)}'
            shell: true
            overlap: allow
            max_instances: 2
    """)

    async def scenario() -> None:
        async with run_engine(config, tmp_path) as h:
            ids = [await h.trigger("job") for _ in range(3)]
            await async_wait_for(lambda: _run_in(h, ids[0], RunState.RUNNING))
            await async_wait_for(lambda: _run_in(h, ids[1], RunState.RUNNING))
            assert (await h.storage.get_run(ids[2])).state is RunState.QUEUED
            (status,) = h.engine.status()
            assert status.state == "running" and status.running == 2
            gate.touch()
            runs = [await h.wait_run(i) for i in ids]
            assert all(r.state is RunState.SUCCESS for r in runs)
            assert runs[2].started_at >= min(runs[0].finished_at, runs[1].finished_at)

    asyncio.run(scenario())


def test_default_overlap_queues_events_but_skips_schedule_fires(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    config = cfg(f"""
        jobs:
          - name: job
            triggers:
              - {{trigger: manual}}
              - {{trigger: interval, every: 1s}}
            command: '{gate_cmd(gate)}'
            shell: true
    """)

    async def scenario() -> None:
        async with run_engine(config, tmp_path) as h:
            first = await h.trigger("job")

            async def busy() -> bool:  # the manual run, or a schedule fire that came first
                return bool(await h.storage.list_runs("job", states=[RunState.RUNNING]))

            await async_wait_for(busy)
            second = await h.trigger("job")  # an event (not a schedule) is never dropped: it waits
            # meanwhile the 1s schedule fires and, the job being busy, those fires are skipped
            async def schedule_skipped() -> bool:
                runs = await h.storage.list_runs("job", states=[RunState.SKIPPED])
                return any(r.trigger == "interval" and "overlap" in (r.reason or "") for r in runs)

            await async_wait_for(schedule_skipped, timeout=10)

            async def second_waits() -> bool:  # dispatched (the trigger only queued the event) and held back
                run = await h.storage.get_run(second)
                return run is not None and run.state is RunState.QUEUED

            await async_wait_for(second_waits)
            gate.touch()
            assert (await h.wait_run(first)).state is RunState.SUCCESS
            assert (await h.wait_run(second)).state is RunState.SUCCESS

    asyncio.run(scenario())


def test_manual_env_overrides_the_jobs_env(tmp_path: Path) -> None:
    out = tmp_path / "who"
    config = cfg(f"""
        jobs:
          - name: hello
            trigger: manual
            env: {{WHO: world, KEEP: kept}}
            command: 'echo "$WHO $KEEP $FIRELINK_JOB" > {out}'
            shell: true
    """)

    async def scenario() -> None:
        async with run_engine(config, tmp_path) as h:
            assert (await h.run("hello")).state is RunState.SUCCESS
            assert out.read_text() == "world kept hello\n"
            run = await h.run("hello", {"WHO": "you", "FIRELINK_JOB": "forged"})
            assert run.state is RunState.SUCCESS
            assert out.read_text() == "you kept hello\n"

    asyncio.run(scenario())


def test_max_parallel_caps_runs_across_jobs(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    config = cfg(f"""
        max_parallel: 1
        jobs:
          - name: a
            trigger: manual
            command: '{gate_cmd(gate)}'
            shell: true
          - name: b
            trigger: manual
            command: ["true"]
    """)

    async def scenario() -> None:
        async with run_engine(config, tmp_path) as h:
            a = await h.trigger("a")
            await async_wait_for(lambda: _run_in(h, a, RunState.RUNNING))
            b = await h.trigger("b")
            with pytest.raises(TimeoutError):
                await h.wait_run(b, timeout=0.5)
            assert (await h.storage.get_run(b)).state is RunState.QUEUED
            gate.touch()
            run_a, run_b = await h.wait_run(a), await h.wait_run(b)
            assert run_b.state is RunState.SUCCESS and run_b.started_at >= run_a.finished_at

    asyncio.run(scenario())


class HangingNotifier(Notifier):
    type_name = "hang"
    description = "Never returns (a notifier whose server does not answer)."
    calls: ClassVar[list[str]] = []

    async def notify(self, event: RunEvent) -> None:
        self.calls.append(event.kind)
        await asyncio.Event().wait()


def test_hanging_notifier_does_not_delay_runs(tmp_path: Path) -> None:
    config = cfg("""
        notifiers:
          stuck: {type: hang}
        jobs:
          - name: job
            trigger: manual
            command: ["true"]
            notify: [{notifier: stuck, "on": [started, success]}]
    """)
    HangingNotifier.calls.clear()

    async def scenario() -> None:
        async with run_engine(config, tmp_path, plugins=plugins_with(HangingNotifier)) as h:
            h.engine.notify_timeout = 0.3
            first = await h.run("job", timeout=5)
            second = await h.run("job", timeout=5)
            assert first.state is second.state is RunState.SUCCESS
            await async_wait_for(lambda: h.engine.notifier_failures >= 4, 10)
            assert HangingNotifier.calls == ["started", "success", "started", "success"]

    asyncio.run(scenario())


def test_log_notifier_logs_failures_without_env(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = cfg("""
        notifiers:
          ops: {type: log, level: warning}
        jobs:
          - name: job
            trigger: manual
            command: ["sh", "-c", "exit 4"]
            env: {TOKEN: do-not-log-me}
            notify: [ops]
    """)

    async def scenario() -> None:
        async with run_engine(config, tmp_path) as h:
            run = await h.run("job", {"EXTRA": "also-private"})
            assert run.state is RunState.FAILED
            await async_wait_for(lambda: any("failure" in r.getMessage() for r in caplog.records))

    caplog.set_level("INFO")
    asyncio.run(scenario())
    lines = [r.getMessage() for r in caplog.records if r.name == "firelink.notify"]
    assert len(lines) == 1 and "job job" in lines[0] and "exit code 4" in lines[0]
    assert "do-not-log-me" not in caplog.text and "also-private" not in caplog.text


def test_recovered_event_after_failures(tmp_path: Path) -> None:
    config = cfg("""
        jobs:
          - name: job
            trigger: manual
            command: ["sh", "-c", "exit $CODE"]
    """)

    async def scenario() -> None:
        plugins = plugins_with()
        events = with_event_log(plugins)
        async with run_engine(config, tmp_path, plugins=plugins) as h:
            await h.run("job", {"CODE": "1"})
            assert h.engine.status()[0].state == "failing"
            await h.run("job", {"CODE": "0"})
            await h.run("job", {"CODE": "0"})
            assert h.engine.status()[0].state == "idle"
        assert [k for k in events.kinds("job") if k not in ("queued", "started")] == [
            "failure", "success", "recovered", "success",
        ]

    asyncio.run(scenario())


def test_log_is_capped_to_its_tail(tmp_path: Path) -> None:
    config = cfg(f"""
        jobs:
          - name: chatty
            trigger: manual
            command: ["{PY}", "-c", "for i in range(20000): print('line', i)"]
            log: {{max_size: 4KB}}
    """)

    async def scenario() -> Any:
        async with run_engine(config, tmp_path) as h:
            return await h.run("chatty")

    run = asyncio.run(scenario())
    assert run.state is RunState.SUCCESS
    data = Path(run.log_path).read_bytes()
    assert len(data) <= 4096 + 64
    assert data.rstrip().endswith(b"line 19999")
    assert b"line 0\n" not in data


def test_retention_prunes_runs_and_logs(tmp_path: Path) -> None:
    config = cfg("""
        jobs:
          - name: job
            trigger: manual
            command: ["echo", "hi"]
            log: {keep_runs: 3}
    """)
    clock = FakeClock()

    async def scenario() -> Any:
        async with run_engine(config, tmp_path, clock=clock) as h:
            first = [await h.run("job") for _ in range(5)]
            await h.settle()
            # pruned every `keep_runs` finishes: after the 3rd (nothing to drop), not yet after the 5th
            assert len(await h.runs("job")) == 5
            sixth = await h.run("job")

            async def kept(ids: set[str]) -> bool:
                return {r.id for r in await h.runs("job")} == ids

            await async_wait_for(lambda: kept({first[3].id, first[4].id, sixth.id}))  # the count rule
            await async_wait_for(lambda: not any(Path(r.log_path).exists() for r in first[:3]))
            await clock.advance(61)
            last = await h.run("job")  # one finish, but a minute passed: the time rule prunes
            await async_wait_for(lambda: kept({first[4].id, sixth.id, last.id}))
            return last

    last = asyncio.run(scenario())
    assert Path(last.log_path).exists()


def test_stop_interrupts_running_runs(tmp_path: Path) -> None:
    gate = tmp_path / "never"
    config = cfg(f"""
        jobs:
          - name: job
            trigger: manual
            command: '{gate_cmd(gate)}'
            shell: true
            kill_grace: 1s
    """)

    async def scenario() -> None:
        plugins = plugins_with()
        events = with_event_log(plugins)
        config_obj, _ = parse_config(config, str(tmp_path / "firelink.yaml"), plugins=plugins, state_dir=tmp_path)
        from firelink_core.engine import Engine

        engine = Engine(config_obj, plugins)
        await engine.start()
        run_id = await engine.trigger("job")
        waiter = asyncio.ensure_future(engine.wait_run(run_id, timeout=30))
        await async_wait_for(lambda: _run_in(types.SimpleNamespace(storage=engine.storage), run_id, RunState.RUNNING))
        await asyncio.gather(engine.stop(grace=0.2), engine.stop(grace=0))  # a second stop is safe
        run = await waiter
        assert run.state is RunState.INTERRUPTED
        assert events.kinds("job")[-1] == "interrupted"
        await engine.stop()

    asyncio.run(scenario())


def test_reload_adds_changes_removes_without_disturbing_runs(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    before = cfg(f"""
        jobs:
          - name: keep
            trigger: manual
            command: '{gate_cmd(gate, "echo old")}'
            shell: true
          - name: change
            trigger: manual
            command: ["echo", "v1"]
          - name: drop
            trigger: manual
            command: ["true"]
    """)
    after = cfg(f"""
        jobs:
          - name: keep
            trigger: manual
            command: '{gate_cmd(gate, "echo old")}'
            shell: true
          - name: change
            trigger: manual
            command: ["echo", "v2"]
          - name: new
            trigger: manual
            command: ["echo", "new"]
    """)

    async def scenario() -> None:
        async with run_engine(before, tmp_path) as h:
            running = await h.trigger("keep")
            await async_wait_for(lambda: _run_in(h, running, RunState.RUNNING))
            new_config, _ = parse_config(after, str(tmp_path / "firelink.yaml"), state_dir=tmp_path)
            result = await h.engine.reload(new_config)
            assert (result.added, result.removed, result.changed) == (["new"], ["drop"], ["change"])
            assert h.log_text(await h.run("change")).strip() == "v2"
            assert h.log_text(await h.run("new")).strip() == "new"
            with pytest.raises(KeyError):
                await h.trigger("drop")
            assert (await h.storage.get_run(running)).state is RunState.RUNNING
            gate.touch()
            assert (await h.wait_run(running)).state is RunState.SUCCESS
            assert [s.name for s in h.engine.status()] == ["keep", "change", "new"]

    asyncio.run(scenario())


def test_status_reports_disabled_and_waiting(tmp_path: Path) -> None:
    config = cfg("""
        jobs:
          - name: up
            trigger: manual
            command: ["true"]
          - name: down
            trigger: manual
            command: ["true"]
            depends_on: [up]
          - name: paused
            trigger: manual
            command: ["true"]
            enabled: false
    """)

    async def scenario() -> None:
        async with run_engine(config, tmp_path) as h:
            waiting = await h.trigger("down")
            await async_wait_for(lambda: _run_in(h, waiting, RunState.WAITING))
            status = {s.name: s for s in h.engine.status()}
            assert status["down"].state == "waiting" and status["down"].waiting == 1
            assert status["paused"].state == "disabled"
            assert status["up"].state == "idle" and status["up"].triggers == ["manual"]
            assert status["up"].health["up#0"].state == "ok"

    asyncio.run(scenario())


def test_executor_missing_is_a_clear_error(tmp_path: Path) -> None:
    from firelink_core.engine import Engine
    from firelink_core.model import Config, ExecutorSpec, JobSpec, StorageSpec

    config = Config(
        jobs=(JobSpec(name="j", command=("true",), executor=ExecutorSpec(type="nope")),),
        storage=StorageSpec(type="sqlite"),
        state_dir=tmp_path,
    )

    async def scenario() -> None:
        engine = Engine(config, plugins_with())
        with pytest.raises(Exception, match="no plugin provides executor type 'nope'"):
            await engine.start()

    asyncio.run(scenario())


def test_many_runs_all_recorded(tmp_path: Path) -> None:
    config = cfg("""
        max_parallel: 8
        jobs:
          - name: quick
            trigger: manual
            command: ["true"]
            overlap: allow
            max_instances: 8
            log: {keep_runs: null}
    """)

    async def scenario() -> None:
        async with run_engine(config, tmp_path) as h:
            ids = [await h.trigger("quick") for _ in range(60)]
            runs = [await h.wait_run(i, timeout=30) for i in ids]
            assert all(r.state is RunState.SUCCESS for r in runs)
            assert len(await h.runs("quick")) == 60
            assert await h.storage.pending_events() == []

    asyncio.run(scenario())


def test_queue_depth_and_last_success(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    config = cfg(f"""
        jobs:
          - name: job
            trigger: manual
            command: '{gate_cmd(gate)}'
            shell: true
            overlap: queue
    """)

    async def scenario() -> None:
        async with run_engine(config, tmp_path) as h:
            assert h.engine.queue_depth() == 0 and h.engine.last_success("job") is None
            first = await h.trigger("job")
            await async_wait_for(lambda: _run_in(h, first, RunState.RUNNING))
            second = await h.trigger("job")
            await async_wait_for(lambda: _run_in(h, second, RunState.QUEUED))
            assert h.engine.queue_depth() == 1
            gate.touch()
            await h.wait_run(first)
            done = await h.wait_run(second)
            assert h.engine.queue_depth() == 0
            assert h.engine.last_success("job") == done.finished_at

    asyncio.run(scenario())


def test_stop_lets_runs_finish_within_grace(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    config = cfg(f"""
        jobs:
          - name: job
            trigger: manual
            command: '{gate_cmd(gate, "echo finished")}'
            shell: true
    """)

    async def scenario() -> None:
        from firelink_core.engine import Engine

        plugins = plugins_with()
        config_obj, _ = parse_config(config, str(tmp_path / "firelink.yaml"), plugins=plugins, state_dir=tmp_path)
        engine = Engine(config_obj, plugins)
        await engine.start()
        run_id = await engine.trigger("job")
        waiter = asyncio.ensure_future(engine.wait_run(run_id, timeout=30))
        await async_wait_for(lambda: _run_in(types.SimpleNamespace(storage=engine.storage), run_id, RunState.RUNNING))
        stopping = asyncio.ensure_future(engine.stop(grace=20))
        await async_wait_for(lambda: engine._stopping)
        gate.touch()  # the run ends by itself during the grace period
        await stopping
        run = await waiter
        assert run.state is RunState.SUCCESS

    asyncio.run(scenario())


class FailingNotifier(Notifier):
    type_name = "failing"
    description = "Always raises (a webhook answering 500)."

    async def notify(self, event: RunEvent) -> None:
        raise RuntimeError("HTTP 500")


def test_failing_notifier_is_counted_and_logged(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    config = cfg("""
        notifiers:
          bad: {type: failing}
        jobs:
          - {name: job, trigger: manual, command: ["sh", "-c", "exit 1"], notify: [bad]}
    """)

    async def scenario() -> None:
        async with run_engine(config, tmp_path, plugins=plugins_with(FailingNotifier)) as h:
            assert (await h.run("job")).state is RunState.FAILED
            await async_wait_for(lambda: h.engine.notifier_failures == 1)

    asyncio.run(scenario())
    assert "notifier bad failed on failure" in caplog.text and "HTTP 500" in caplog.text


def test_running_run_shows_its_start_in_storage(tmp_path: Path) -> None:
    gate = tmp_path / "gate"
    config = cfg(f"""
        jobs:
          - name: job
            trigger: manual
            command: '{gate_cmd(gate)}'
            shell: true
    """)

    async def scenario() -> None:
        async with run_engine(config, tmp_path) as h:
            run_id = await h.trigger("job")

            async def started() -> Any:
                run = await h.storage.get_run(run_id)
                return run if run is not None and run.attempts == 1 else None

            run = await async_wait_for(started, 10)  # written within START_WRITE_DELAY
            assert run.state is RunState.RUNNING and run.started_at is not None
            assert run.log_path and run.log_path.endswith(f"{run_id}.1.log")
            (attempt,) = await h.storage.list_attempts(run_id)
            assert attempt.handle and attempt.finished_at is None
            gate.touch()
            assert (await h.wait_run(run_id)).attempts == 1

    asyncio.run(scenario())
