"""FsWatchTrigger on real folders with real inotify (and polling), through an EventRecorder."""

from __future__ import annotations

import asyncio
import os
import time
from datetime import datetime
from pathlib import Path

from firelink_core.testing import async_wait_for

FAST = {"settle": "100ms"}


def test_created_file_fires_once_with_its_variables(tmp_path: Path, fs) -> None:
    async def main() -> None:
        async with fs.watching({"source": str(tmp_path), **FAST}) as (rec, _):
            target = tmp_path / "report.csv"
            target.write_bytes(b"a,b\n1,2\n")
            (event,) = await fs.before_sentinel(rec, tmp_path)
        st = target.stat()
        assert event.job == "inbox" and event.trigger == "watch" and event.trigger_key == "inbox#0"
        assert event.env["FIRELINK_FS_PATH"] == str(target)
        assert event.env["FIRELINK_FS_EVENT"] == "created"
        assert event.env["FIRELINK_FS_SIZE"] == "8"
        assert event.env["FIRELINK_FS_DIR"] == str(tmp_path)
        mtime = datetime.fromisoformat(event.env["FIRELINK_FS_MTIME"])
        assert mtime.utcoffset() is not None and abs(mtime.timestamp() - st.st_mtime) < 1e-5
        assert event.payload["path"] == str(target) and event.payload["relpath"] == "report.csv"
        assert event.payload["size"] == 8 and "catchup" not in event.payload

    asyncio.run(main())


def test_patterns_and_ignore_patterns_filter(tmp_path: Path, fs) -> None:
    (tmp_path / "sub").mkdir()
    options = {"source": str(tmp_path), "patterns": ["*.csv", "keep/*"], **FAST}

    async def main() -> None:
        async with fs.watching(options) as (rec, _):
            for name in ("notes.txt", ".hidden.csv", "upload.csv.part", "sub/deep.csv", "a.csv~"):
                (tmp_path / name).write_text("x")
            (tmp_path / "wanted.csv").write_text("x")
            return await fs.before_sentinel(rec, tmp_path)

    assert fs.paths(asyncio.run(main())) == [str(tmp_path / "wanted.csv")]


def test_recursive_watches_subfolders_and_globs_see_the_relative_path(tmp_path: Path, fs) -> None:
    (tmp_path / "2026" / "11").mkdir(parents=True)
    options = {"source": str(tmp_path), "recursive": True, "patterns": ["2026/*/*.csv", "zz-*"], **FAST}

    async def main() -> None:
        async with fs.watching(options) as (rec, _):
            (tmp_path / "2026" / "top.csv").write_text("no: one level only")
            (tmp_path / "2026" / "11" / "day.csv").write_text("yes")
            (tmp_path / "2026" / "12").mkdir()  # created after the start: watched too
            (tmp_path / "2026" / "12" / "late.csv").write_text("yes")
            return await fs.before_sentinel(rec, tmp_path)

    events = asyncio.run(main())
    assert sorted(e.payload["relpath"] for e in events) == ["2026/11/day.csv", "2026/12/late.csv"]


def test_relative_source_is_relative_to_the_config_folder(tmp_path: Path, fs) -> None:
    (tmp_path / "incoming").mkdir()

    async def main() -> None:
        async with fs.watching({"source": "incoming", **FAST}, config_dir=tmp_path) as (rec, trigger):
            assert trigger.root == tmp_path / "incoming"
            (tmp_path / "incoming" / "a.csv").write_text("x")
            return await fs.before_sentinel(rec, tmp_path / "incoming")

    assert fs.paths(asyncio.run(main())) == [str(tmp_path / "incoming" / "a.csv")]


def test_file_url_source(tmp_path: Path, fs) -> None:
    folder = tmp_path / "with space"
    folder.mkdir()

    async def main() -> None:
        async with fs.watching({"source": f"file://{folder}".replace(" ", "%20"), **FAST}) as (rec, _):
            (folder / "a.csv").write_text("x")
            return await fs.before_sentinel(rec, folder)

    assert fs.paths(asyncio.run(main())) == [str(folder / "a.csv")]


def test_settle_fires_once_after_the_last_chunk_with_the_final_size(tmp_path: Path, fs) -> None:
    async def main() -> None:
        async with fs.watching({"source": str(tmp_path), "settle": "1s"}) as (rec, _):
            target = tmp_path / "upload.bin"
            with target.open("wb") as out:
                for _ in range(5):  # a slow writer: one chunk every 0.4 s, over two seconds
                    out.write(b"x" * 1000)
                    out.flush()
                    await asyncio.sleep(0.4)
                out.write(b"end")
            last_write = time.time()
            events = await fs.before_sentinel(rec, tmp_path)
        assert fs.paths(events) == [str(target)]
        assert events[0].env["FIRELINK_FS_SIZE"] == "5003"
        assert events[0].created_at >= last_write

    asyncio.run(main())


def test_settle_zero_fires_at_the_first_event(tmp_path: Path, fs) -> None:
    async def main() -> None:
        async with fs.watching({"source": str(tmp_path), "settle": 0}) as (rec, _):
            (tmp_path / "a.csv").write_text("x")
            return await fs.before_sentinel(rec, tmp_path)

    assert fs.paths(asyncio.run(main())) == [str(tmp_path / "a.csv")]


def test_a_thousand_files_at_once_give_a_thousand_events(tmp_path: Path, fs) -> None:
    names = [f"f{i:04d}.csv" for i in range(1000)]

    async def main() -> None:
        async with fs.watching({"source": str(tmp_path), "settle": "200ms"}) as (rec, _):
            for name in names:
                (tmp_path / name).write_text(name)
            return await fs.before_sentinel(rec, tmp_path, timeout=60)

    events = asyncio.run(main())
    got = fs.paths(events)
    assert len(got) == 1000 and sorted(got) == [str(tmp_path / n) for n in names]
    assert all(e.env["FIRELINK_FS_SIZE"] == "9" for e in events)


def test_batch_collects_files_into_runs_none_lost_none_doubled(tmp_path: Path, fs) -> None:
    names = [f"f{i:04d}.csv" for i in range(1000)]
    options = {"source": str(tmp_path), "settle": "100ms", "batch": "500ms", "batch_max": 300}

    async def main() -> None:
        async with fs.watching(options) as (rec, _):
            for name in names:
                (tmp_path / name).write_text(name)
            await async_wait_for(lambda: sum(e.payload["count"] for e in rec.events) >= 1000, timeout=60)
            return list(rec.events)

    events = asyncio.run(main())
    listed = [p for e in events for p in e.env["FIRELINK_FS_PATHS"].split("\n")]
    assert sorted(listed) == [str(tmp_path / n) for n in names]
    for event in events:
        assert event.env["FIRELINK_FS_EVENT"] == "batch"
        assert event.payload["paths"] == event.env["FIRELINK_FS_PATHS"].split("\n")
        assert event.payload["count"] == int(event.env["FIRELINK_FS_COUNT"]) <= 300
    assert len(events) >= 4  # 1000 files cannot fit in fewer batches of at most 300


def test_moved_in_and_renamed_into_place(tmp_path: Path, fs) -> None:
    inbox, elsewhere = tmp_path / "inbox", tmp_path / "elsewhere"
    inbox.mkdir()
    elsewhere.mkdir()

    async def main() -> None:
        async with fs.watching({"source": str(inbox), **FAST}) as (rec, _):
            (elsewhere / "from-outside.csv").write_text("x")
            os.rename(elsewhere / "from-outside.csv", inbox / "from-outside.csv")
            (inbox / ".partial.csv").write_text("uploading")  # ignored: hidden
            os.rename(inbox / ".partial.csv", inbox / "renamed.csv")
            return await fs.before_sentinel(rec, inbox)

    events = asyncio.run(main())
    assert [(e.payload["relpath"], e.env["FIRELINK_FS_EVENT"]) for e in events] == [
        ("from-outside.csv", "created"),  # inotify reports a move from another folder as created
        ("renamed.csv", "moved"),
    ]


def test_events_option_selects_modified_and_deleted(tmp_path: Path, fs) -> None:
    existing = tmp_path / "state.csv"
    existing.write_text("v1")
    options = {"source": str(tmp_path), "events": ["modified", "deleted"], **FAST}

    async def main() -> None:
        async with fs.watching(options) as (rec, _):
            (tmp_path / "new.csv").write_text("not fired: created is not selected")
            existing.write_text("v2, longer")
            await rec.wait_events(1)
            (tmp_path / "new.csv").unlink()
            await rec.wait_events(2)
            return list(rec.events)

    modified, deleted = asyncio.run(main())
    assert (modified.env["FIRELINK_FS_PATH"], modified.env["FIRELINK_FS_EVENT"]) == (str(existing), "modified")
    assert modified.env["FIRELINK_FS_SIZE"] == "10"
    assert (deleted.env["FIRELINK_FS_PATH"], deleted.env["FIRELINK_FS_EVENT"]) == (str(tmp_path / "new.csv"), "deleted")
    assert "FIRELINK_FS_SIZE" not in deleted.env and deleted.dedupe_key is None


def test_polling_mode(tmp_path: Path, fs) -> None:
    async def main() -> None:
        options = {"source": str(tmp_path), "poll": "100ms", "settle": 0, "patterns": ["*.csv"]}
        async with fs.watching(options) as (rec, trigger):
            assert trigger.opts.effective_settle == 0.2
            (tmp_path / "a.csv").write_text("x")
            (tmp_path / "b.txt").write_text("x")
            (tmp_path / "c.csv").write_text("x")
            await rec.wait_events(2)
            # one scan reports its changes in no particular order: a later sentinel proves the rest
            return await fs.before_sentinel(rec, tmp_path)

    assert sorted(fs.paths(asyncio.run(main()))) == [str(tmp_path / "a.csv"), str(tmp_path / "c.csv")]


def test_polling_mode_waits_for_a_slow_writer(tmp_path: Path, fs) -> None:
    async def main() -> None:
        async with fs.watching({"source": str(tmp_path), "poll": "100ms", "settle": "1s"}) as (rec, _):
            target = tmp_path / "big.bin"
            with target.open("wb") as out:
                for _ in range(4):  # a chunk every 0.3 s: each seen by a poll before the wait ends
                    out.write(b"x" * 100)
                    out.flush()
                    await asyncio.sleep(0.3)
            return await fs.before_sentinel(rec, tmp_path)

    events = asyncio.run(main())
    assert [(e.env["FIRELINK_FS_PATH"].rsplit("/", 1)[1], e.env["FIRELINK_FS_SIZE"]) for e in events] == [
        ("big.bin", "400")
    ]


def test_missing_folder_is_degraded_then_recovers_when_created(tmp_path: Path, fs) -> None:
    folder = tmp_path / "not" / "yet"

    async def main() -> None:
        async with fs.watching({"source": str(folder), **FAST}) as (rec, _):
            assert rec.health.state == "degraded" and str(folder) in (rec.health.message or "")
            folder.mkdir(parents=True)
            await async_wait_for(lambda: rec.health.state == "ok", message="the trigger recovers")
            (folder / "first.csv").write_text("x")
            events = await fs.before_sentinel(rec, folder)
            assert fs.paths(events) == [str(folder / "first.csv")]

            # removed while running: degraded again, then back when it reappears
            for child in folder.iterdir():
                child.unlink()
            folder.rmdir()
            await async_wait_for(lambda: rec.health.state == "degraded", message="degraded again")
            folder.mkdir()
            (folder / "second.csv").write_text("x")  # possibly before the watch is back: found by the scan
            await async_wait_for(lambda: rec.health.state == "ok", message="recovers again")
            after = await fs.before_sentinel(rec, folder)
            assert fs.paths(after[len(events) + 1:]) == [str(folder / "second.csv")]

    asyncio.run(main())


def test_files_in_a_folder_created_after_the_start_all_fire(tmp_path: Path, fs) -> None:
    folder = tmp_path / "later"

    async def main() -> None:
        async with fs.watching({"source": str(folder), **FAST}) as (rec, _):
            await async_wait_for(lambda: rec.health.state == "degraded")
            staging = tmp_path / "staging"
            staging.mkdir()
            (staging / "early.csv").write_text("x")
            staging.rename(folder)  # the folder arrives with a file already inside
            return await fs.before_sentinel(rec, folder)

    assert fs.paths(asyncio.run(main())) == [str(folder / "early.csv")]


def test_recursive_a_folder_moved_in_fires_for_each_of_its_files(tmp_path: Path, fs) -> None:
    inbox, staging = tmp_path / "inbox", tmp_path / "staging"
    (staging / "inner").mkdir(parents=True)
    inbox.mkdir()
    (staging / "a.csv").write_text("x")
    (staging / "inner" / "b.csv").write_text("x")

    async def main() -> None:
        async with fs.watching({"source": str(inbox), "recursive": True, **FAST}) as (rec, _):
            staging.rename(inbox / "delivery-1")
            return await fs.before_sentinel(rec, inbox)

    events = asyncio.run(main())
    assert sorted(e.payload["relpath"] for e in events) == ["delivery-1/a.csv", "delivery-1/inner/b.csv"]


def test_storage_trouble_degrades_then_the_file_still_fires_once(tmp_path: Path) -> None:
    from firelink_fs import FsWatchTrigger

    from firelink_core.testing import EventRecorder

    class FlakyStorageRecorder(EventRecorder):
        """Stands in for a storage that fails its first write (a full disk, a locked file)."""

        failures = 1

        async def emit(self, *args, **kwargs):
            if self.failures:
                self.failures -= 1
                raise OSError("database or disk is full")
            return await super().emit(*args, **kwargs)

    async def main() -> None:
        rec = FlakyStorageRecorder("inbox", "watch", {"source": str(tmp_path), **FAST})
        trigger = FsWatchTrigger(rec.spec, rec)
        await trigger.start()
        try:
            (tmp_path / "a.csv").write_text("x")
            (event,) = await rec.wait_events(1)
        finally:
            await trigger.stop()
        assert event.env["FIRELINK_FS_PATH"] == str(tmp_path / "a.csv")
        states = [(h.state, h.message) for h in rec.health_history]
        assert ("degraded", "cannot emit events: database or disk is full") in states
        assert states[-1][0] == "ok"

    asyncio.run(main())


def test_a_source_that_is_a_file_is_degraded_until_it_becomes_a_folder(tmp_path: Path, fs) -> None:
    source = tmp_path / "drop"
    source.write_text("a file where the folder should be")

    async def main() -> None:
        async with fs.watching({"source": str(source), **FAST}) as (rec, _):
            assert rec.health.state == "degraded" and "not a folder" in (rec.health.message or "")
            source.unlink()
            source.mkdir()
            await async_wait_for(lambda: rec.health.state == "ok", message="the trigger recovers")
            (source / "a.csv").write_text("x")
            return await fs.before_sentinel(rec, source)

    assert fs.paths(asyncio.run(main())) == [str(source / "a.csv")]


def test_stop_releases_threads_and_inotify_instances(tmp_path: Path, fs) -> None:
    # A daemon reloads its config for months: each stop must give back what start took
    # (Linux allows 128 inotify instances per user).
    import threading

    def resources() -> tuple[int, int]:
        # the loop's own thread pool (asyncio_N workers) may grow: not ours to count
        threads = [t for t in threading.enumerate() if not t.name.startswith("asyncio_")]
        return len(threads), len(os.listdir("/proc/self/fd"))

    async def main() -> None:
        before = resources()
        for source in [tmp_path, tmp_path / "missing"] * 10:
            async with fs.watching({"source": str(source), **FAST}) as (rec, _):
                assert rec.health.state in ("ok", "degraded")
        assert resources() == before

    asyncio.run(main())
