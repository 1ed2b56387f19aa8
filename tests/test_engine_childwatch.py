"""The pidfd child watcher the subprocess executor installs on Python 3.11: right exit codes, across event loops."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
import warnings

import pytest

from firelink_core.builtin._childwatch import install_pidfd_child_watcher
from firelink_core.builtin.subprocess import SubprocessExecutor
from firelink_core.engine.contexts import EngineExecutorContext
from firelink_core.model import Config


@pytest.mark.skipif(sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"), reason="3.11 on Linux only")
def test_exit_codes_and_signals_in_successive_loops() -> None:
    async def spawn(*argv: str) -> int:
        assert install_pidfd_child_watcher()
        proc = await asyncio.create_subprocess_exec(*argv)
        return await asyncio.wait_for(proc.wait(), 10)

    async def killed() -> int:
        proc = await asyncio.create_subprocess_exec("sleep", "30")
        os.kill(proc.pid, signal.SIGKILL)
        return await asyncio.wait_for(proc.wait(), 10)

    # each asyncio.run is a new loop: the watcher must follow the running loop
    assert asyncio.run(spawn("sh", "-c", "exit 3")) == 3
    assert asyncio.run(spawn("true")) == 0
    assert asyncio.run(killed()) == -signal.SIGKILL

    async def many() -> list[int]:
        procs = [await asyncio.create_subprocess_exec("sh", "-c", f"exit {i}") for i in range(20)]
        return [await asyncio.wait_for(p.wait(), 10) for p in procs]

    assert asyncio.run(many()) == list(range(20))


@pytest.mark.skipif(sys.version_info >= (3, 12) or not hasattr(os, "pidfd_open"), reason="3.11 on Linux only")
def test_subprocess_executor_installs_the_watcher_in_its_start(tmp_path) -> None:
    async def scenario() -> str:
        executor = SubprocessExecutor(EngineExecutorContext(SubprocessExecutor.type_name, Config(state_dir=tmp_path)))
        await executor.start()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                return type(asyncio.get_event_loop_policy().get_child_watcher()).__name__
        finally:
            await executor.stop()

    assert asyncio.run(scenario()) == "_PidfdChildWatcher"
