"""The core never asks for a component by name: cron, manual, subprocess and sqlite replaced by
plugin classes of other names, through the engine alone and through the real daemon and CLI."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from firelink_core import make_plugins, parse_config
from firelink_core.plugin_api import RunState
from firelink_core.testing import run_engine, wait_for

from .conftest import FirelinkProcess

# Subclasses of the built-ins under other names, and a default-type hook that makes them the
# defaults. The storage keeps its database in another file, so a core that opened "sqlite"
# by name would find nothing there.
RENAMED_PARTS = '''
from firelink_core.builtin.cron import CronTrigger
from firelink_core.builtin.manual import ManualTrigger
from firelink_core.builtin.sqlite import SqliteStorage
from firelink_core.builtin.subprocess import SubprocessExecutor
from firelink_core.plugin_api import hookimpl


class TickTrigger(CronTrigger):
    type_name = "tick"


class ByHandTrigger(ManualTrigger):
    type_name = "byhand"


class SpawnExecutor(SubprocessExecutor):
    type_name = "spawn"


class LedgerStorage(SqliteStorage):
    type_name = "ledger"

    def _resolve_path(self):
        return self.context.state_dir / "ledger.db"


@hookimpl
def firelink_register_triggers():
    return [TickTrigger, ByHandTrigger]


@hookimpl
def firelink_register_executors():
    return [SpawnExecutor]


@hookimpl
def firelink_register_storages():
    return [LedgerStorage]


@hookimpl
def firelink_default_type(kind):
    return {"executor": "spawn", "storage": "ledger"}.get(kind)
'''

CONFIG = """\
jobs:
  - name: beat
    trigger: tick
    schedule: "* * * * * *"
    command: ["sh", "-c", "echo beat"]
  - name: hello
    trigger: byhand
    command: ["sh", "-c", "echo hello from $FIRELINK_TRIGGER"]
  - name: after
    depends_on: [hello]
    command: ["echo", "after hello"]
"""


@pytest.fixture
def parts_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "parts"
    folder.mkdir()
    (folder / "renamed_parts.py").write_text(RENAMED_PARTS)
    monkeypatch.syspath_prepend(str(folder))
    yield folder
    sys.modules.pop("renamed_parts", None)


def test_the_engine_runs_with_no_builtin_component_at_all(parts_dir: Path, tmp_path: Path) -> None:
    plugins = make_plugins(builtins=(), entry_points=False, env=False, extra=["renamed_parts"])
    assert not plugins.errors, plugins.errors
    assert set(plugins.triggers()) == {"tick", "byhand"}
    state = tmp_path / "state"
    config, _ = parse_config(CONFIG, plugins=plugins, state_dir=state)
    assert {job.executor.type for job in config.jobs} == {"spawn"}
    assert config.storage.type == "ledger"

    async def main() -> None:
        async with run_engine(config, state, plugins=plugins) as h:
            run = await h.run("hello")
            assert run.state is RunState.SUCCESS
            assert run.trigger == "byhand"
            assert "hello from byhand" in h.log_text(run)
            after = await h.wait_runs("after", 1, timeout=20)
            assert after[0].state is RunState.SUCCESS
            beats = await h.wait_runs("beat", 2, timeout=20)
            assert all(r.trigger == "tick" for r in beats)
            attempts = await h.storage.list_attempts(run.id)
            assert [a.executor for a in attempts] == ["spawn"]
        assert (state / "ledger.db").exists()
        assert not (state / "firelink.db").exists()

    asyncio.run(main())


def test_the_daemon_and_cli_work_unchanged_with_renamed_components(parts_dir: Path, daemon: FirelinkProcess) -> None:
    fl = daemon
    fl.env["PYTHONPATH"] = str(parts_dir)
    fl.env["FIRELINK_PLUGINS"] = "renamed_parts"
    fl.write_config(CONFIG)
    assert fl.cli("validate", str(fl.config), state=False).returncode == 0
    fl.start()
    jobs = {j["name"]: j for j in fl.status()["jobs"]}
    assert jobs["beat"]["triggers"] == ["tick * * * * * * UTC"]  # a schedule shows its job's time zone
    assert jobs["hello"]["triggers"] == ["byhand"]

    done = fl.cli("trigger", "hello", "--wait")
    assert done.returncode == 0, done.stderr
    assert "hello from byhand" in done.stdout + done.stderr
    wait_for(
        lambda: any(r["job"] == "after" and r["state"] == "success" for r in fl.runs("--limit", "1000")),
        30, message="the downstream job ran after hello",
    )
    wait_for(
        lambda: sum(r["job"] == "beat" and r["state"] == "success" for r in fl.runs("--limit", "1000")) >= 2,
        30, message="two fires of the tick schedule ran",
    )
    stop = fl.cli("stop")
    assert stop.returncode == 0, stop.stderr
    assert fl.wait_exit() == 0

    # The daemon is down: history comes from the "ledger" storage, opened read-only.
    assert (fl.state_dir / "ledger.db").exists() and not (fl.state_dir / "firelink.db").exists()
    offline = fl.cli("runs", "--json", "--limit", "1000")
    assert offline.returncode == 0, offline.stderr
    runs = json.loads(offline.stdout)
    assert {"hello", "after", "beat"} <= {r["job"] for r in runs}
    assert {r["trigger"] for r in runs if r["job"] == "beat"} == {"tick"}
    logs = fl.cli("logs", "hello")
    assert logs.returncode == 0, logs.stderr
    assert "hello from byhand" in logs.stdout

