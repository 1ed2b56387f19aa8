"""Celery jobs through the real engine and daemon: two workers, a private Redis, crashes and outages."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from firelink_core.plugin_api import RunState
from firelink_core.testing import run_engine, wait_for

pytestmark = pytest.mark.celery

FIRELINK = [sys.executable, "-c", "from firelink_core.cli import main; main()"]


def config(broker: str, jobs: str, queue: str = "etl", lease: str = "3s") -> str:
    """A config of ``jobs``, where each ``EXECUTOR`` stands for the celery executor on ``queue``."""
    executor = f'executor: {{type: celery, queue: {queue}, broker: "{broker}", lease: {lease}}}'
    return "jobs:\n" + textwrap.indent(textwrap.dedent(jobs).replace("EXECUTOR", executor), "  ")


def firelink(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*FIRELINK, *args], capture_output=True, text=True, timeout=60, **kwargs)


class Daemon:
    """``firelink run`` on a config in ``tmp_path``, as a real process."""

    def __init__(self, tmp_path: Path, text: str) -> None:
        self.tmp_path = tmp_path
        config_file = tmp_path / "firelink.yaml"
        config_file.write_text(text)
        self._out = open(tmp_path / "daemon.log", "ab")  # noqa: SIM115 - closed by stop()
        self.proc = subprocess.Popen(
            [*FIRELINK, "run", "--state-dir", str(tmp_path), str(config_file)], stdout=self._out, stderr=subprocess.STDOUT
        )
        self.wait_up()

    def wait_up(self) -> None:
        """Until the daemon answers ``status`` (it holds its lock before its socket listens)."""

        def up() -> bool:
            assert self.proc.poll() is None, (self.tmp_path / "daemon.log").read_text(errors="replace")
            return firelink("status", "--state-dir", str(self.tmp_path)).returncode == 0

        wait_for(up, 60, message="the daemon answers firelink status")

    def trigger(self, job: str, *extra: str) -> str:
        # Exit code 3: the daemon is not answering yet (its socket file may precede listening).
        done = wait_for(
            lambda: (r := firelink("trigger", job, "--state-dir", str(self.tmp_path), *extra)).returncode != 3 and r,
            30, message="the daemon to accept a trigger",
        )
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self._out.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=60)
        self._out.close()


def test_200_runs_over_two_workers_each_recorded_once(redis_server, start_workers, tmp_path):
    workers = start_workers("etl", n=2, concurrency=8)
    text = config(redis_server.url, """\
        - name: many
          trigger: manual
          max_instances: 16
          log: {keep_runs: 300}
          EXECUTOR
          command: ["sh", "-c", "for i in 1 2 3; do echo line-$i-$FIRELINK_RUN_ID; done"]
        """)

    async def main():
        async with run_engine(text, tmp_path) as h:
            ids = [await h.trigger("many") for _ in range(200)]
            runs = [await h.wait_run(run_id, timeout=120) for run_id in ids]
            attempts = {run.id: await h.storage.list_attempts(run.id) for run in runs}
            return runs, attempts, {run.id: h.log_text(run) for run in runs}

    runs, attempts, logs = asyncio.run(main())
    assert len({run.id for run in runs}) == 200
    assert [run.state for run in runs] == [RunState.SUCCESS] * 200
    hosts = {}
    for run in runs:
        assert len(attempts[run.id]) == 1, f"run {run.id} recorded {len(attempts[run.id])} attempts"
        handle = attempts[run.id][0].handle
        hosts[run.id] = handle["worker"]
        assert handle["task_id"] == f"firelink-{run.id}-1" and handle["queue"] == "etl"
        assert logs[run.id] == "".join(f"line-{i}-{run.id}\n" for i in (1, 2, 3))
    assert set(hosts.values()) == {w.nodename for w in workers}, "both workers ran attempts"


def test_trigger_wait_streams_a_remote_job_as_it_prints(redis_server, start_workers, tmp_path):
    [worker] = start_workers("etl")
    daemon = Daemon(tmp_path, config(redis_server.url, """\
        - name: chatty
          trigger: manual
          EXECUTOR
          command: ["sh", "-c", "for i in 1 2 3 4 5 6 7 8 9 10; do echo tick-$i; sleep 0.5; done"]
        """))
    try:
        wait_for(lambda: (tmp_path / "firelink.sock").exists(), 30, message="the daemon's control socket")
        wait_for(lambda: firelink("status", "--state-dir", str(tmp_path)).returncode == 0, 30, message="the daemon")
        proc = subprocess.Popen(
            [*FIRELINK, "trigger", "chatty", "--wait", "--state-dir", str(tmp_path)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        seen: dict[str, float] = {}
        assert proc.stdout is not None
        for raw in proc.stdout:
            line = raw.decode().strip()
            if line.startswith("tick-"):
                seen[line] = time.monotonic()
        assert proc.wait(timeout=60) == 0, proc.stderr.read() if proc.stderr else ""
        assert list(seen) == [f"tick-{i}" for i in range(1, 11)]
        # Streamed, not printed at the end: the first line came seconds before the last.
        assert seen["tick-10"] - seen["tick-1"] > 3.0
        # The daemon answers ``runs`` with the worker that ran the attempt.
        listed = firelink("runs", "--json", "--state-dir", str(tmp_path))
        assert listed.returncode == 0, listed.stderr
        [shown] = json.loads(listed.stdout)
        assert [a["handle"]["worker"] for a in shown["attempts"]] == [worker.nodename]
    finally:
        daemon.stop()


def test_timeout_kills_the_remote_process_group(redis_server, start_workers, tmp_path, processes_of_run):
    start_workers("etl")
    text = config(redis_server.url, """\
        - name: slow
          trigger: manual
          EXECUTOR
          timeout: 1s
          kill_grace: 1s
          command: ["sh", "-c", "sleep 60 & sleep 60; echo never"]
        """)

    async def main():
        async with run_engine(text, tmp_path) as h:
            run = await h.run("slow", timeout=60)
            return run, h.log_text(run)

    run, log = asyncio.run(main())
    assert run.state is RunState.TIMED_OUT
    assert "timed out after 1s" in log and "never" not in log
    assert processes_of_run(run.id) == [], "the job's processes on the worker side"


def test_worker_killed_mid_run_fails_the_attempt_and_the_retry_runs_elsewhere(
    redis_server, start_workers, tmp_path, processes_of_run
):
    workers = start_workers("etl", n=2)
    text = config(redis_server.url, """\
        - name: fragile
          trigger: manual
          retries: {count: 1, delay: 0s}
          EXECUTOR
          command: ["sh", "-c", "echo attempt-$FIRELINK_ATTEMPT; [ $FIRELINK_ATTEMPT = 1 ] && sleep 60; echo finished"]
        """, lease="2s")
    run_id = ""
    try:
        async def scenario():
            nonlocal run_id
            async with run_engine(text, tmp_path) as h:
                run_id = await h.trigger("fragile")

                async def worker_of_first():
                    attempts = await h.storage.list_attempts(run_id)
                    return attempts and attempts[0].handle.get("worker")

                deadline = time.monotonic() + 30
                while not (host := await worker_of_first()):
                    assert time.monotonic() < deadline, "the first attempt never reached a worker"
                    await asyncio.sleep(0.05)
                victim = next(w for w in workers if w.nodename == host)
                victim.kill()
                run = await h.wait_run(run_id, timeout=60)
                return host, run, await h.storage.list_attempts(run_id), h.log_text(run, 1), h.log_text(run, 2)

        host, run, attempts, first_log, second_log = asyncio.run(scenario())
        assert run.state is RunState.SUCCESS
        assert attempts[0].error and f"worker {host} was lost" in attempts[0].error
        assert "attempt-1" in first_log and "lost" in first_log
        assert attempts[1].handle["worker"] != host and attempts[1].exit_code == 0
        assert "attempt-2\nfinished\n" in second_log
        # With the daemon down, ``runs`` reads each attempt's worker from the database.
        listed = firelink("runs", "--json", "--state-dir", str(tmp_path))
        assert listed.returncode == 0, listed.stderr
        [shown] = json.loads(listed.stdout)
        assert [a["handle"]["worker"] for a in shown["attempts"]] == [host, attempts[1].handle["worker"]]
        table = firelink("runs", "--state-dir", str(tmp_path))
        assert "WORKER" in table.stdout and f"{host}, {attempts[1].handle['worker']}" in table.stdout
    finally:
        # A worker killed with SIGKILL cannot take its job with it (see the README): the test does.
        for pid in processes_of_run(run_id) if run_id else []:
            subprocess.run(["kill", "-9", str(pid)], check=False)


def test_daemon_restart_reattaches_and_records_the_real_exit_code(redis_server, start_workers, tmp_path):
    start_workers("etl")
    text = config(redis_server.url, """\
        - name: long
          trigger: manual
          recovery: reattach
          EXECUTOR
          command: ["sh", "-c", "i=1; while [ $i -le 15 ]; do echo tick-$i; i=$((i+1)); sleep 0.2; done; exit 7"]
        """)
    daemon = Daemon(tmp_path, text)
    try:
        run_id = daemon.trigger("long")
        log = tmp_path / "logs" / "long" / f"{run_id}.1.log"
        wait_for(lambda: log.exists() and "tick-1\n" in log.read_text(), 30, message="first output")
    finally:
        daemon.kill()

    async def main():
        async with run_engine(text, tmp_path) as h:
            run = await h.wait_run(run_id, timeout=60)
            return run, await h.storage.list_attempts(run_id), h.log_text(run, 1)

    run, attempts, text_log = asyncio.run(main())
    assert run.state is RunState.FAILED and run.exit_code == 7
    assert [a.exit_code for a in attempts] == [7]
    assert "re-attached to task" in text_log
    assert all(text_log.count(f"tick-{i}\n") == 1 for i in range(1, 16)), text_log
    shown = firelink("logs", "long", run_id, "--state-dir", str(tmp_path))
    assert shown.returncode == 0 and f"firelink: attempt 1 on worker {attempts[0].handle['worker']}" in shown.stderr


def test_broker_outage_makes_runs_wait_then_complete(redis_server, start_workers, tmp_path, caplog):
    workers = start_workers("etl", n=2)
    text = config(redis_server.url, """\
        - name: patient
          trigger: manual
          max_instances: 10
          EXECUTOR
          command: ["sh", "-c", "echo begun; sleep 2; echo done"]
        """, lease="5s")

    async def main():
        async with run_engine(text, tmp_path) as h:
            running = [await h.trigger("patient") for _ in range(5)]
            await asyncio.to_thread(wait_for, lambda: all(
                (tmp_path / "logs" / "patient" / f"{r}.1.log").exists() for r in running), 30)
            redis_server.stop()
            queued = [await h.trigger("patient") for _ in range(5)]  # sent while the broker is down
            await asyncio.to_thread(
                wait_for, lambda: "is unreachable" in caplog.text, 30, message="the daemon to say the broker is down"
            )
            # The outage itself: the broker stays down for 10 seconds.
            await asyncio.sleep(10)
            during = {(await h.storage.get_run(r)).state for r in running + queued}
            redis_server.start()  # before any assertion: a failing test must not leave the engine waiting
            # Celery's worker may exit on losing the broker (kombu fails to restore unacked messages
            # over the closed connection) once its running tasks ended: a supervisor restarts it (see
            # the README), as this test does. Attempts running meanwhile still end and are recorded.
            runs = [await h.wait_run(r, timeout=90) for r in running]
            for worker in workers:
                await asyncio.to_thread(wait_for, lambda w=worker: w.proc.poll() is not None or b"Unrecoverable" not in w.log.read_bytes(), 30)
            dead = [w for w in workers if w.proc.poll() is not None]
            if dead:
                await asyncio.to_thread(start_workers, "etl", len(dead))
            runs += [await h.wait_run(r, timeout=90) for r in queued]
            return during, runs, {r.id: await h.storage.list_attempts(r.id) for r in runs}, {r.id: h.log_text(r) for r in runs}

    during, runs, attempts, logs = asyncio.run(main())
    assert during <= {RunState.RUNNING, RunState.QUEUED}, "nothing ended while the broker was down"
    assert [r.state for r in runs] == [RunState.SUCCESS] * 10, [(r.state, r.error) for r in runs]
    for run in runs:
        assert len(attempts[run.id]) == 1
        assert logs[run.id].count("begun\n") == 1 and logs[run.id].count("done\n") == 1, logs[run.id]
    assert "answers again" in caplog.text
