"""Issue 13, part B, end to end through ``firelink``: ``next`` across DST changes (config
alone, no daemon), ``backfill`` (instants, idempotence, --rerun, downstream jobs, errors) and
``retry --from-failed`` on a dependency chain, against a real daemon."""

from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

from firelink_core.testing import wait_for

from .conftest import FirelinkProcess

BERLIN = """
jobs:
  - name: nightly
    trigger: cron
    schedule: "30 2 * * *"
    timezone: Europe/Berlin
    command: ["true"]
  - name: by-hand
    trigger: manual
    command: ["true"]
"""


def test_next_marks_the_spring_forward_instant_and_fires_once_on_the_fall_back_night(
    daemon: FirelinkProcess,
) -> None:
    config = daemon.write_config(BERLIN)
    # Spring forward in Berlin: 2027-03-28, 02:00 -> 03:00. No daemon runs: the config alone.
    spring = daemon.cli(
        "next", "nightly", "-c", str(config), "-n", "3", "--from", "2027-03-27", "--json"
    )
    assert spring.returncode == 0, spring.stderr
    fires = json.loads(spring.stdout)["fires"]
    assert [f["local"] for f in fires] == [
        "2027-03-27T02:30:00+01:00",
        "2027-03-28T03:00:00+02:00",
        "2027-03-29T02:30:00+02:00",
    ]
    assert [f["utc"] for f in fires][1] == "2027-03-28T01:00:00+00:00"
    assert fires[0]["dst"] is None and fires[2]["dst"] is None
    assert (
        "02:30 does not exist on 2027-03-28" in fires[1]["dst"]
        and "runs at 03:00" in fires[1]["dst"]
    )
    text = daemon.cli("next", "nightly", "-c", str(config), "-n", "3", "--from", "2027-03-27")
    assert text.returncode == 0 and "02:30 does not exist on 2027-03-28" in text.stdout, text.stdout
    assert "2027-03-28 Sun 03:00:00 +02:00" in text.stdout and "2027-03-28 01:00:00Z" in text.stdout

    # Fall back: 2026-10-25, 03:00 -> 02:00, so 02:30 happens twice; the job fires once.
    fall = daemon.cli(
        "next", "nightly", "-c", str(config), "-n", "3", "--from", "2026-10-24T12:00", "--json"
    )
    fires = json.loads(fall.stdout)["fires"]
    on_the_night = [f for f in fires if f["local"].startswith("2026-10-25")]
    assert len(on_the_night) == 1, fires
    assert on_the_night[0]["local"] == "2026-10-25T02:30:00+02:00"
    assert "happens twice" in on_the_night[0]["dst"] and "fires once" in on_the_night[0]["dst"]

    unknown = daemon.cli("next", "nigthly", "-c", str(config))
    assert unknown.returncode == 2 and "did you mean 'nightly'" in unknown.stderr, unknown.stderr
    manual = daemon.cli("next", "by-hand", "-c", str(config))
    assert manual.returncode == 1 and "has no schedule" in manual.stderr, manual.stderr
    bad = daemon.cli("next", "nightly", "-c", str(config), "--from", "yesterday-ish")
    assert bad.returncode == 2 and "--from" in bad.stderr, bad.stderr


HOURLY = """
jobs:
  - name: hourly
    trigger: cron
    schedule: "0 * * * *"
    command: ["sh", "-c", "echo \\"$FIRELINK_SCHEDULED_FOR\\" >> {out}"]
  - name: after
    depends_on: [hourly]
    command: ["sh", "-c", "echo after >> {after}"]
"""

DAY = [datetime(2026, 1, 1, tzinfo=timezone.utc) + timedelta(hours=h) for h in range(24)]


def _runs(daemon: FirelinkProcess, job: str) -> list[dict]:
    return daemon.runs(job, "--limit", "1000")


def _wait_successes(
    daemon: FirelinkProcess, job: str, count: int, timeout: float = 90.0
) -> list[dict]:
    def done() -> list[dict] | None:
        runs = _runs(daemon, job)
        ok = [r for r in runs if r["state"] == "success"]
        assert not [r for r in runs if r["state"] in ("failed", "skipped", "upstream_failed")], runs
        return ok if len(ok) >= count else None

    return wait_for(done, timeout, interval=0.2, message=f"{count} successful runs of {job}")


def test_backfill_an_hourly_job_over_a_day_once_then_again_with_rerun(
    daemon: FirelinkProcess, tmp_path: Path
) -> None:
    out, after = tmp_path / "scheduled.txt", tmp_path / "after.txt"
    daemon.write_config(HOURLY.format(out=out, after=after))
    daemon.start()
    day = ("--from", "2026-01-01", "--to", "2026-01-02")

    dry = daemon.cli("backfill", "hourly", *day, "--dry-run", "--json")
    assert dry.returncode == 0, dry.stderr
    assert len(json.loads(dry.stdout)["runs"]) == 24 and not _runs(daemon, "hourly")

    first = daemon.cli("backfill", "hourly", *day, "--json")
    assert first.returncode == 0, first.stderr
    plan = json.loads(first.stdout)
    assert [r["utc"] for r in plan["runs"]] == [d.isoformat() for d in DAY]
    runs = _wait_successes(daemon, "hourly", 24)
    assert sorted(r["scheduled_for"] for r in runs) == [
        d.isoformat(timespec="microseconds") for d in DAY
    ]
    # Each run got its instant as a scheduled run does.
    assert sorted(out.read_text().split()) == [d.isoformat() for d in DAY]
    # The downstream job followed each run.
    _wait_successes(daemon, "after", 24)

    again = daemon.cli("backfill", "hourly", *day, "--json")
    assert again.returncode == 0, again.stderr
    result = json.loads(again.stdout)
    assert result["runs"] == [] and len(result["existing"]) == 24
    text = daemon.cli("backfill", "hourly", *day)
    assert "queued 0 run(s)" in text.stderr and "24 instant(s) already have a run" in text.stderr, (
        text.stderr
    )

    rerun = daemon.cli("backfill", "hourly", *day, "--rerun", "--max-parallel", "4", "--json")
    assert rerun.returncode == 0, rerun.stderr
    assert len(json.loads(rerun.stdout)["runs"]) == 24
    _wait_successes(daemon, "hourly", 48)
    _wait_successes(daemon, "after", 48)
    assert len(out.read_text().split()) == 48

    # --no-downstream: the downstream job does not follow. A later backfill with downstream
    # shows the follow-ups have been decided (they run one at a time, in order).
    alone = daemon.cli(
        "backfill",
        "hourly",
        "--from",
        "2026-01-02T00:00",
        "--to",
        "2026-01-02T03:00",
        "--no-downstream",
    )
    assert alone.returncode == 0, alone.stderr
    _wait_successes(daemon, "hourly", 51)
    assert (
        daemon.cli(
            "backfill", "hourly", "--from", "2026-01-02T03:00", "--to", "2026-01-02T04:00"
        ).returncode
        == 0
    )
    _wait_successes(daemon, "hourly", 52)
    _wait_successes(daemon, "after", 49)
    assert len([r for r in _runs(daemon, "after") if r["state"] == "success"]) == 49


def test_backfill_refuses_a_bad_range_a_job_without_schedule_and_an_unknown_job(
    daemon: FirelinkProcess, tmp_path: Path
) -> None:
    daemon.write_config(HOURLY.format(out=tmp_path / "o", after=tmp_path / "a"))
    daemon.start()
    backwards = daemon.cli("backfill", "hourly", "--from", "2026-01-02", "--to", "2026-01-01")
    assert backwards.returncode == 2 and "must be after --from" in backwards.stderr, (
        backwards.stderr
    )
    garbage = daemon.cli("backfill", "hourly", "--from", "last tuesday", "--to", "2026-01-01")
    assert garbage.returncode == 2 and "ISO 8601" in garbage.stderr, garbage.stderr
    no_schedule = daemon.cli("backfill", "after", "--from", "2026-01-01", "--to", "2026-01-02")
    assert no_schedule.returncode == 2 and "no schedule trigger" in no_schedule.stderr, (
        no_schedule.stderr
    )
    unknown = daemon.cli("backfill", "hourli", "--from", "2026-01-01", "--to", "2026-01-02")
    assert unknown.returncode == 2 and "did you mean 'hourly'" in unknown.stderr, unknown.stderr
    assert not _runs(daemon, "hourly")


CHAIN = """
jobs:
  - name: a
    trigger: manual
    command: ["sh", "-c", "echo a >> {log}"]
  - name: b
    depends_on: [a]
    command: ["sh", "-c", "echo b >> {log}; test -e {fixed}"]
  - name: c
    depends_on: [b]
    command: ["sh", "-c", "echo c >> {log}"]
"""


def test_retry_from_failed_runs_the_failed_job_and_its_downstream_only(
    daemon: FirelinkProcess, tmp_path: Path
) -> None:
    log, fixed = tmp_path / "ran.txt", tmp_path / "fixed"
    daemon.write_config(CHAIN.format(log=log, fixed=fixed))
    daemon.start()
    assert daemon.cli("trigger", "a").returncode == 0
    c_run = wait_for(
        lambda: (runs := _runs(daemon, "c")) and runs[0]["state"] == "upstream_failed" and runs[0],
        30,
        interval=0.1,
        message="c upstream_failed",
    )
    b_old = _runs(daemon, "b")[0]
    assert b_old["state"] == "failed" and log.read_text().split() == ["a", "b"]

    unknown = daemon.cli("retry", "a" * 12)
    assert unknown.returncode == 2 and "no run" in unknown.stderr, unknown.stderr
    a_run = _runs(daemon, "a")[0]
    succeeded = daemon.cli("retry", a_run["id"], "--from-failed")
    assert succeeded.returncode == 1 and "nothing failed" in succeeded.stderr, succeeded.stderr

    fixed.touch()
    retried = daemon.cli("retry", c_run["id"], "--from-failed", "--json")
    assert retried.returncode == 0, retried.stderr
    answer = json.loads(retried.stdout)
    assert answer["job"] == "b" and answer["retry_of"] == b_old["id"]
    wait_for(
        lambda: any(r["state"] == "success" for r in _runs(daemon, "c")),
        30,
        interval=0.1,
        message="c succeeds after the retry",
    )
    b_new = daemon.run_record(answer["run_id"])
    assert b_new is not None and b_new["state"] == "success" and b_new["parent_run"] == b_old["id"]
    assert log.read_text().split() == ["a", "b", "b", "c"]
    assert (
        len(_runs(daemon, "a")) == 1
        and len(_runs(daemon, "b")) == 2
        and len(_runs(daemon, "c")) == 2
    )


def test_runs_filters_and_cursor_pages(daemon: FirelinkProcess, tmp_path: Path) -> None:
    out, after = tmp_path / "o", tmp_path / "a"
    daemon.write_config(HOURLY.format(out=out, after=after))
    daemon.start()
    assert (
        daemon.cli(
            "backfill", "hourly", "--from", "2026-01-01", "--to", "2026-01-01T05:00"
        ).returncode
        == 0
    )
    _wait_successes(daemon, "hourly", 5)
    _wait_successes(daemon, "after", 5)

    def paged(*args: str) -> list[str]:
        seen: list[str] = []
        cursor: list[str] = []
        for _ in range(10):
            result = daemon.cli("runs", "--json", "--page", "--limit", "2", *args, *cursor)
            assert result.returncode == 0, result.stderr
            page = json.loads(result.stdout)
            seen += [r["id"] for r in page["runs"]]
            if page["next_cursor"] is None:
                return seen
            cursor = ["--cursor", page["next_cursor"]]
        raise AssertionError("the pages never end")

    everything = [r["id"] for r in daemon.runs("--limit", "100")]
    assert len(everything) == 10
    assert paged() == everything
    assert paged("--job", "after") == [r["id"] for r in daemon.runs("after", "--limit", "100")]
    assert len(daemon.runs("--since", "1h", "--state", "success")) == 10
    assert daemon.runs("--until", "1h") == []
    assert (
        len(daemon.runs("--job", "hourly", "--since", "2020-01-01T00:00:00Z", "--limit", "3")) == 3
    )
    bad = daemon.cli("runs", "--since", "last week")
    assert bad.returncode == 2 and "--since" in bad.stderr, bad.stderr
    unknown = daemon.cli("runs", "--job", "hourli")
    assert unknown.returncode == 2 and "did you mean 'hourly'" in unknown.stderr, unknown.stderr
    # With the daemon down, the same pages come from the database.
    assert daemon.cli("stop").returncode == 0
    assert paged("-c", str(daemon.config)) == everything
