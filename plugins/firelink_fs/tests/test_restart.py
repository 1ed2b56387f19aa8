"""Restarts: files that appeared while the daemon was down fire once; nothing else fires again."""

from __future__ import annotations

import asyncio
import json
import os
from pathlib import Path
from typing import Any

FAST = {"settle": "100ms"}


def test_restart_fires_exactly_the_files_added_while_down(tmp_path: Path, fs) -> None:
    (tmp_path / "before-first-start.csv").write_text("x")
    checkpoints: dict[str, Any] = {}  # the storage both "daemons" share
    options = {"source": str(tmp_path), **FAST}

    async def main() -> None:
        async with fs.watching(options, checkpoints=checkpoints) as (rec, _):
            (tmp_path / "live.csv").write_text("x")
            first = await fs.before_sentinel(rec, tmp_path)
        assert fs.paths(first) == [str(tmp_path / "live.csv")]  # existing files wait for no one

        (tmp_path / "while-down-1.csv").write_text("x")
        (tmp_path / "while-down-2.csv").write_text("xy")
        async with fs.watching(options, checkpoints=checkpoints) as (rec, _):
            caught = await rec.wait_events(2)
            assert sorted(fs.paths(caught)) == [str(tmp_path / "while-down-1.csv"), str(tmp_path / "while-down-2.csv")]
            assert all(e.payload["catchup"] is True and e.env["FIRELINK_FS_EVENT"] == "created" for e in caught)
            assert fs.paths(await fs.before_sentinel(rec, tmp_path))[2:] == []

        async with fs.watching(options, checkpoints=checkpoints) as (rec, _):
            assert await fs.before_sentinel(rec, tmp_path) == []  # nothing new: nothing fires

    asyncio.run(main())


def test_changes_that_do_not_fire_are_not_caught_up_later(tmp_path: Path, fs) -> None:
    checkpoints: dict[str, Any] = {}
    options = {"source": str(tmp_path), **FAST}
    target = tmp_path / "data.csv"

    async def main() -> None:
        async with fs.watching(options, checkpoints=checkpoints) as (rec, _):
            target.write_text("v1")
            await rec.wait_events(1)
            with target.open("a") as out:
                out.write("appended")  # modified: not among the selected events
            os.chmod(target, 0o600)
            assert fs.paths(await fs.before_sentinel(rec, tmp_path)) == [str(target)]
        async with fs.watching(options, checkpoints=checkpoints) as (rec, _):
            assert await fs.before_sentinel(rec, tmp_path) == []

    asyncio.run(main())


def test_the_same_file_dropped_again_fires_again(tmp_path: Path, fs) -> None:
    inbox, archive = tmp_path / "inbox", tmp_path / "archive"
    inbox.mkdir()
    archive.mkdir()
    (archive / "a.csv").write_text("same bytes")

    async def main() -> None:
        async with fs.watching({"source": str(inbox), **FAST}) as (rec, _):
            for _ in range(2):  # same name, size and mtime each time (a rename keeps them)
                os.rename(archive / "a.csv", inbox / "a.csv")
                await fs.before_sentinel(rec, inbox)
                os.rename(inbox / "a.csv", archive / "a.csv")
            return [e for e in rec.events if "sentinel" not in e.env["FIRELINK_FS_PATH"]]

    events = asyncio.run(main())
    assert fs.paths(events) == [str(inbox / "a.csv")] * 2
    assert events[0].dedupe_key != events[1].dedupe_key


def test_start_from_beginning_fires_existing_files_once(tmp_path: Path, fs) -> None:
    for name in ("a.csv", "b.csv"):
        (tmp_path / name).write_text("x")
    checkpoints: dict[str, Any] = {}
    options = {"source": str(tmp_path), "start_from": "beginning", **FAST}

    async def main() -> None:
        async with fs.watching(options, checkpoints=checkpoints) as (rec, _):
            first = await rec.wait_events(2)
            assert sorted(fs.paths(first)) == [str(tmp_path / "a.csv"), str(tmp_path / "b.csv")]
        async with fs.watching(options, checkpoints=checkpoints) as (rec, _):
            assert await fs.before_sentinel(rec, tmp_path) == []

    asyncio.run(main())


def test_catchup_off_ignores_files_added_while_down(tmp_path: Path, fs) -> None:
    checkpoints: dict[str, Any] = {}

    async def main() -> None:
        async with fs.watching({"source": str(tmp_path), **FAST}, checkpoints=checkpoints) as (rec, _):
            await fs.before_sentinel(rec, tmp_path)
        for catchup in (False, "skip"):
            (tmp_path / f"while-down-{catchup}.csv").write_text("x")
            options = {"source": str(tmp_path), "catchup": catchup, **FAST}
            async with fs.watching(options, checkpoints=checkpoints) as (rec, _):
                (tmp_path / "after.csv").write_text("x")
                assert fs.paths(await fs.before_sentinel(rec, tmp_path)) == [str(tmp_path / "after.csv")]
            (tmp_path / "after.csv").unlink()

    asyncio.run(main())


def test_a_checkpoint_of_another_folder_is_not_used(tmp_path: Path, fs) -> None:
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    new.mkdir()
    (new / "already-there.csv").write_text("x")
    checkpoints: dict[str, Any] = {}

    async def main() -> None:
        async with fs.watching({"source": str(old), **FAST}, checkpoints=checkpoints) as (rec, _):
            await fs.before_sentinel(rec, old)
        # the job now watches another folder: its files are a first start's, not "missed"
        async with fs.watching({"source": str(new), **FAST}, checkpoints=checkpoints) as (rec, _):
            assert await fs.before_sentinel(rec, new) == []

    asyncio.run(main())


def test_the_checkpoint_keeps_only_recent_keys_and_still_knows_the_rest(tmp_path: Path, fs, monkeypatch) -> None:
    from firelink_fs import _cursor

    # With no rescan margin only the files at the high-water mark keep a key: a checkpoint
    # does not grow with the folder, and a restart still knows every older file was handled.
    monkeypatch.setattr(_cursor, "RESCAN_MARGIN", 0.0)
    checkpoints: dict[str, Any] = {}
    options = {"source": str(tmp_path), "settle": 0}

    async def main() -> None:
        async with fs.watching(options, checkpoints=checkpoints) as (rec, _):
            for i in range(200):
                (tmp_path / f"f{i:03d}.csv").write_text("x")
            assert len(await fs.before_sentinel(rec, tmp_path)) == 200
        saved = json.loads(checkpoints["cursor"])
        assert saved["source"] == str(tmp_path) and len(saved["done"]) < 50
        async with fs.watching(options, checkpoints=checkpoints) as (rec, _):
            assert await fs.before_sentinel(rec, tmp_path) == []

    asyncio.run(main())
