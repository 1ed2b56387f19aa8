"""``firelink logs -f`` and ``--tail`` against a real daemon: following one run, following a job's
next runs until Ctrl-C, and the last lines only."""

from __future__ import annotations

import signal
import subprocess

from firelink_core.testing import wait_for

CONFIG = """
jobs:
  - name: gated
    trigger: manual
    kill_grace: 1s
    command: ["sh", "-c", "echo one; echo two; echo three; while [ ! -e GATE ]; do sleep 0.05; done; echo four; exit 5"]
  - name: quick
    trigger: manual
    command: ["sh", "-c", "echo run $FIRELINK_RUN_ID"]
  - name: lines
    trigger: manual
    command: ["sh", "-c", "for i in 1 2 3 4 5 6; do echo line $i; done"]
"""


def start(daemon) -> None:
    daemon.write_config(CONFIG.replace("GATE", str(daemon.root / "gate")))
    daemon.start()


def read_until(proc: subprocess.Popen[str], text: str) -> str:
    """Lines from ``proc``'s stdout until one holds ``text`` (readline blocks: the test's timeout guards it)."""
    assert proc.stdout is not None
    seen = ""
    while text not in seen:
        line = proc.stdout.readline()
        assert line, f"{text!r} never came; got {seen!r}"
        seen += line
    return seen


def trigger(daemon, job: str) -> str:
    result = daemon.cli("trigger", job)
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_following_one_run_exits_with_its_code(daemon) -> None:
    start(daemon)
    run_id = trigger(daemon, "gated")
    follower = daemon.cli_popen("logs", "gated", run_id, "-f")
    read_until(follower, "three")
    (daemon.root / "gate").touch()
    rest, err = follower.communicate(timeout=30)
    assert follower.returncode == 5, err
    assert rest == "four\n"
    # A finished run followed: its output, then its code at once.
    again = daemon.cli("logs", "gated", run_id, "-f")
    assert again.returncode == 5 and again.stdout == "one\ntwo\nthree\nfour\n", again.stderr


def test_following_a_job_goes_on_to_its_next_runs_until_interrupted(daemon) -> None:
    start(daemon)
    first = trigger(daemon, "quick")
    daemon.wait_run_state(first, {"success"})
    follower = daemon.cli_popen("logs", "quick", "-f")
    read_until(follower, f"run {first}")
    second = trigger(daemon, "quick")
    read_until(follower, f"run {second}")
    third = trigger(daemon, "quick")
    read_until(follower, f"run {third}")
    assert follower.poll() is None, "still following"
    follower.send_signal(signal.SIGINT)
    _out, err = follower.communicate(timeout=30)
    assert follower.returncode == 0, err
    assert "Traceback" not in err
    assert f"run {second} of quick" in err and f"run {second} success" in err


def test_following_a_job_that_never_ran_waits_for_its_first_run(daemon) -> None:
    start(daemon)
    follower = daemon.cli_popen("logs", "quick", "-f")
    assert follower.stderr is not None
    assert "waiting for its first run" in follower.stderr.readline()
    run_id = trigger(daemon, "quick")
    read_until(follower, f"run {run_id}")
    follower.send_signal(signal.SIGINT)
    follower.communicate(timeout=30)
    assert follower.returncode == 0


def test_tail_prints_the_last_lines(daemon) -> None:
    start(daemon)
    run_id = trigger(daemon, "lines")
    daemon.wait_run_state(run_id, {"success"})
    result = daemon.cli("logs", "lines", "--tail", "2")
    assert result.returncode == 0, result.stderr
    assert result.stdout == "line 5\nline 6\n"
    assert daemon.cli("logs", "lines", "--tail", "0").stdout == ""
    assert daemon.cli("logs", "lines", "--tail", "99").stdout.count("line") == 6


def test_tail_then_follow_prints_each_line_once(daemon) -> None:
    start(daemon)
    run_id = trigger(daemon, "gated")
    wait_for(lambda: "three" in daemon.cli("logs", "gated", run_id).stdout, 30, message="gated wrote three lines")
    follower = daemon.cli_popen("logs", "gated", run_id, "-f", "--tail", "1")
    assert read_until(follower, "three") == "three\n"
    (daemon.root / "gate").touch()
    rest, err = follower.communicate(timeout=30)
    assert follower.returncode == 5, err
    assert rest == "four\n"


def test_following_with_the_daemon_down_prints_what_was_written(daemon) -> None:
    start(daemon)
    run_id = trigger(daemon, "lines")
    daemon.wait_run_state(run_id, {"success"})
    assert daemon.cli("stop").returncode == 0
    daemon.wait_exit()
    by_id = daemon.cli("logs", "lines", run_id, "-f", "-c", str(daemon.config))
    assert by_id.returncode == 0 and by_id.stdout.count("line") == 6, by_id.stderr
    latest = daemon.cli("logs", "lines", "-f", "--tail", "1", "-c", str(daemon.config))
    assert latest.returncode == 3 and latest.stdout == "line 6\n", latest.stderr
