"""Crash recovery: a daemon process killed with SIGKILL at the worst moments, then restarted on the same SQLite file."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from firelink_core.builtin import subprocess  # noqa: F401 - the built-ins these tests run: a broken one fails loudly
from firelink_core.records import RunState
from firelink_core.testing import async_wait_for, run_engine

CHILD = textwrap.dedent("""
    import asyncio, sys
    from pathlib import Path
    from firelink_core.engine import Engine
    from firelink_core.config import load_config
    from firelink_core.records import RunState

    async def main(config_path, mode, job):
        config, plugins = load_config(config_path, state_dir=Path(config_path).parent)
        engine = Engine(config, plugins)
        if mode == "pending":
            async def never_dispatch(event):
                await asyncio.Event().wait()
            engine._dispatch = never_dispatch  # the crash comes before the dispatcher gets to them
        await engine.start()
        if mode == "pending":
            ids = [await engine.trigger(job) for _ in range(3)]
            print("READY", *ids, flush=True)
        else:
            run_id = await engine.trigger(job)
            want = RunState.RUNNING if mode == "running" else RunState.RETRYING
            while True:
                run = await engine.storage.get_run(run_id)
                attempts = await engine.storage.list_attempts(run_id)
                if run is not None and run.state is want and (want is not RunState.RUNNING or (attempts and attempts[-1].handle)):
                    break
                await asyncio.sleep(0.02)
            print("READY", run_id, flush=True)
        await asyncio.Event().wait()

    asyncio.run(main(*sys.argv[1:]))
""")


def write_config(tmp_path: Path, recovery: str = "retry") -> str:
    record = tmp_path / "runs.txt"
    marker = tmp_path / "marker"
    pidfile = tmp_path / "sleeper.pid"
    text = textwrap.dedent(f"""
        jobs:
          - name: long
            trigger: manual
            shell: true
            recovery: {recovery}
            command: 'echo "$FIRELINK_RUN_ID" >> {record}; [ -e {marker} ] && exit 0; touch {marker}; sleep 60 & echo $! > {pidfile}; wait'
          - name: quick
            trigger: manual
            command: 'echo "$FIRELINK_RUN_ID" >> {record}'
            shell: true
            overlap: queue
          - name: flaky
            trigger: manual
            command: 'echo "$FIRELINK_ATTEMPT" >> {record}; [ "$FIRELINK_ATTEMPT" = 2 ]'
            shell: true
            retries: {{count: 1, delay: 1s}}
    """)
    (tmp_path / "firelink.yaml").write_text(text)
    return text


async def crash_child(tmp_path: Path, mode: str, job: str) -> list[str]:
    """Run a daemon in a child process until it reports READY, then kill -9 it."""
    script = tmp_path / "child.py"
    script.write_text(CHILD)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, str(script), str(tmp_path / "firelink.yaml"), mode, job,
        stdout=asyncio.subprocess.PIPE,
    )
    try:
        line = await asyncio.wait_for(proc.stdout.readline(), 30)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        await proc.wait()
    words = line.decode().split()
    assert words and words[0] == "READY", f"the child daemon did not get ready: {line!r}"
    return words[1:]


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_kill_9_mid_run_marks_interrupted_and_retries_once(tmp_path: Path) -> None:
    config = write_config(tmp_path)

    async def scenario() -> tuple[str, Any, list[Any]]:
        (old_id,) = await crash_child(tmp_path, "running", "long")
        async with run_engine(config, tmp_path) as h:
            old = await h.wait_run(old_id)
            runs = await async_wait_for(lambda: _runs_with_parent(h, old_id))
            new = await h.wait_run(runs[0].id)
            assert new.state is RunState.SUCCESS
            return old_id, old, await h.runs("long")

    old_id, old, runs = asyncio.run(scenario())
    assert old.state is RunState.INTERRUPTED and "daemon" in old.reason
    assert len(runs) == 2  # the interrupted run and its one retry, nothing else
    new = next(r for r in runs if r.id != old_id)
    assert new.parent_run == old_id
    assert (tmp_path / "runs.txt").read_text().split() == [old_id, new.id]
    sleeper = int((tmp_path / "sleeper.pid").read_text())
    asyncio.run(async_wait_for(lambda: not _alive(sleeper), 10, message="the orphaned job process was killed"))


async def _runs_with_parent(h: Any, parent: str) -> list[Any]:
    return [r for r in await h.runs() if r.parent_run == parent]


def test_kill_9_mid_run_with_recovery_fail_does_not_retry(tmp_path: Path) -> None:
    config = write_config(tmp_path, recovery="fail")

    async def scenario() -> tuple[Any, list[Any]]:
        (old_id,) = await crash_child(tmp_path, "running", "long")
        async with run_engine(config, tmp_path) as h:
            old = await h.wait_run(old_id)
            await h.settle()
            return old, await h.runs("long")

    old, runs = asyncio.run(scenario())
    assert old.state is RunState.INTERRUPTED
    assert [r.id for r in runs] == [old.id]


def test_kill_9_before_dispatch_loses_no_event_and_runs_each_once(tmp_path: Path) -> None:
    config = write_config(tmp_path)

    async def scenario() -> tuple[list[str], list[Any]]:
        ids = await crash_child(tmp_path, "pending", "quick")
        assert len(ids) == 3
        async with run_engine(config, tmp_path) as h:
            runs = [await h.wait_run(run_id) for run_id in ids]
            await h.settle()
            assert await h.storage.pending_events() == []
            return ids, runs + [r for r in await h.runs("quick") if r.id not in ids]

    ids, runs = asyncio.run(scenario())
    assert [r.state for r in runs] == [RunState.SUCCESS] * 3  # no extra run either
    assert sorted((tmp_path / "runs.txt").read_text().split()) == sorted(ids)


def test_kill_9_while_retrying_resumes_the_retry(tmp_path: Path) -> None:
    config = write_config(tmp_path)

    async def scenario() -> Any:
        (run_id,) = await crash_child(tmp_path, "retrying", "flaky")
        async with run_engine(config, tmp_path) as h:
            return await h.wait_run(run_id, timeout=20)

    run = asyncio.run(scenario())
    assert run.state is RunState.SUCCESS and run.attempts == 2
    assert (tmp_path / "runs.txt").read_text().split() == ["1", "2"]


@pytest.fixture(autouse=True)
def _no_leftover_sleepers(tmp_path: Path) -> Any:
    yield
    pidfile = tmp_path / "sleeper.pid"
    if pidfile.exists():
        pid = int(pidfile.read_text())
        if _alive(pid):
            os.kill(pid, signal.SIGKILL)
