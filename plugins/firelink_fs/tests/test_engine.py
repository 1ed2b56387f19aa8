"""firelink-fs through the real engine: real SQLite state, real job processes, real inotify."""

from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path

import pytest

from firelink_core.plugin_api import RunState
from firelink_core.testing import EngineHarness, async_wait_for, run_engine

# The job records the variables it was given, one file per run.
RECORD = (
    "import json, os, pathlib; "
    "env = {k: v for k, v in os.environ.items() if k.startswith('FIRELINK_')}; "
    "pathlib.Path(os.environ['OUT'], env['FIRELINK_RUN_ID'] + '.json').write_text(json.dumps(env))"
)
# The same, cheaper for a thousand runs: the path (or the batch's paths) only. No ${VAR}:
# the config interpolates those when it loads.
RECORD_SH = 'printf "%s\\n" "$FIRELINK_FS_PATH" "$FIRELINK_FS_PATHS" > "$OUT/$FIRELINK_RUN_ID"'


def _config(out: Path, extra: str = "", command: str | None = None) -> str:
    argv = ["sh", "-c", command] if command else [sys.executable, "-c", RECORD]
    return f"""
jobs:
  - name: ingest
    trigger: watch
    source: inbox
    settle: 100ms
    overlap: queue
    max_instances: 4
    log: {{keep_runs: null}}   # the tests count every run; retention would prune them
    command: {json.dumps(argv)}
    env: {{OUT: "{out}"}}
{extra}"""


def _seen(out: Path) -> list[dict[str, str]]:
    return [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]


def _paths(out: Path) -> list[str]:
    return sorted(line for p in out.iterdir() for line in p.read_text().splitlines() if line)


async def _finished(h: EngineHarness, count: int, timeout: float = 30) -> None:
    runs = await h.wait_runs("ingest", count, timeout)
    assert all(r.state is RunState.SUCCESS for r in runs if r.finished), [r.state for r in runs]


@pytest.fixture
def dirs(tmp_path: Path) -> tuple[Path, Path]:
    inbox, out = tmp_path / "inbox", tmp_path / "out"
    inbox.mkdir()
    out.mkdir()
    return inbox, out


def test_a_new_file_runs_the_job_with_its_variables(tmp_path: Path, dirs: tuple[Path, Path]) -> None:
    inbox, out = dirs

    async def main() -> None:
        async with run_engine(_config(out), tmp_path) as h:
            (inbox / "orders.csv").write_text("id\n1\n")
            await _finished(h, 1)

    asyncio.run(main())
    (env,) = _seen(out)
    assert env["FIRELINK_JOB"] == "ingest" and env["FIRELINK_TRIGGER"] == "watch"
    assert env["FIRELINK_FS_PATH"] == str(inbox / "orders.csv")
    assert env["FIRELINK_FS_EVENT"] == "created" and env["FIRELINK_FS_SIZE"] == "5"
    assert env["FIRELINK_FS_MTIME"].endswith("+00:00")
    assert json.loads(env["FIRELINK_EVENT"])["path"] == str(inbox / "orders.csv")


def test_a_thousand_files_give_a_thousand_runs(tmp_path: Path, dirs: tuple[Path, Path]) -> None:
    inbox, out = dirs
    names = [f"f{i:04d}.csv" for i in range(1000)]

    async def main() -> None:
        async with run_engine(_config(out, command=RECORD_SH), tmp_path) as h:
            for name in names:
                (inbox / name).write_text("x")
            await _finished(h, 1000, timeout=120)
            assert len(await h.runs("ingest")) == 1000

    asyncio.run(main())
    assert _paths(out) == [str(inbox / n) for n in names]  # none lost, none doubled


def test_a_thousand_files_in_batches(tmp_path: Path, dirs: tuple[Path, Path]) -> None:
    inbox, out = dirs
    names = [f"f{i:04d}.csv" for i in range(1000)]
    config = _config(out, command=RECORD_SH).replace("settle: 100ms", "settle: 100ms\n    batch: 500ms")

    async def main() -> None:
        async with run_engine(config, tmp_path) as h:
            for name in names:
                (inbox / name).write_text("x")
            await async_wait_for(lambda: len(_paths(out)) >= 1000, timeout=60, message="1000 files run")
            runs = await h.runs("ingest")
            assert 2 <= len(runs) < 1000  # in batches: far fewer runs than files

    asyncio.run(main())
    assert _paths(out) == [str(inbox / n) for n in names]


def test_restarts_run_the_files_added_while_down_once(tmp_path: Path, dirs: tuple[Path, Path]) -> None:
    inbox, out = dirs
    (inbox / "before-first-start.csv").write_text("x")
    config = _config(out, command=RECORD_SH)

    async def main() -> None:
        async with run_engine(config, tmp_path) as h:
            (inbox / "a.csv").write_text("x")
            await _finished(h, 1)
            first_checkpoint = await h.storage.get_checkpoint("ingest#0", "cursor")

        (inbox / "b.csv").write_text("x")
        (inbox / "c.csv").write_text("x")
        async with run_engine(config, tmp_path) as h:
            await _finished(h, 3)
            # As if the daemon had crashed before saving its checkpoint: the next start looks
            # at b and c again, and storage's dedupe keys refuse their second events.
            await h.storage.set_checkpoint("ingest#0", "cursor", first_checkpoint)

        async with run_engine(config, tmp_path) as h:
            (inbox / "d.csv").write_text("x")  # settles after the rescanned files: runs last
            await async_wait_for(lambda: str(inbox / "d.csv") in _paths(out), timeout=30, message="d ran")
            await _finished(h, 4)
            assert len(await h.runs("ingest")) == 4

    asyncio.run(main())
    assert _paths(out) == [str(inbox / f"{n}.csv") for n in "abcd"]


def test_a_missing_folder_shows_degraded_then_runs_when_created(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()

    def health(h: EngineHarness) -> str:
        (status,) = h.engine.status()
        return status.health["ingest#0"].state

    async def main() -> None:
        async with run_engine(_config(out, command=RECORD_SH), tmp_path) as h:
            assert health(h) == "degraded"
            (tmp_path / "inbox").mkdir()
            await async_wait_for(lambda: health(h) == "ok", message="the trigger recovers")
            (tmp_path / "inbox" / "late.csv").write_text("x")
            await _finished(h, 1)

    asyncio.run(main())
    assert _paths(out) == [str(tmp_path / "inbox" / "late.csv")]
