"""Docker jobs through the real engine (SQLite state in tmp_path) and the real daemon process."""

from __future__ import annotations

import asyncio
import json
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from firelink_core.plugin_api import RunState
from firelink_core.testing import run_engine, wait_for

pytestmark = pytest.mark.docker


def config(image: str, host: str, jobs: str) -> str:
    """A config of ``jobs``, where each ``EXECUTOR`` stands for the docker executor on the test engine."""
    executor = f'executor: {{type: docker, image: {image}, docker_host: "{host}"}}'
    return "jobs:\n" + textwrap.indent(textwrap.dedent(jobs).replace("EXECUTOR", executor), "  ")


def test_event_variables_reach_the_container(docker_host, busybox_image, tmp_path, containers_of):
    text = config(
        busybox_image,
        docker_host,
        """\
        - name: show
          trigger: manual
          EXECUTOR
          command: ["sh", "-c", "echo job=$FIRELINK_JOB attempt=$FIRELINK_ATTEMPT key=$KEY own=$OWN; echo \\"$FIRELINK_EVENT\\""]
          env: {OWN: mine}
        """,
    )

    async def main():
        async with run_engine(text, tmp_path) as h:
            run_id = await h.trigger("show", env={"KEY": "from-trigger"})
            run = await h.wait_run(run_id, timeout=30)
            return run, h.log_text(run)

    run, log = asyncio.run(main())
    assert run.state is RunState.SUCCESS, log
    assert "job=show attempt=1 key=from-trigger own=mine" in log
    event_line = log.strip().splitlines()[-1]
    assert isinstance(json.loads(event_line), dict)
    assert containers_of(run.id) == []


def test_retries_run_new_containers_until_success(docker_host, busybox_image, tmp_path, containers_of):
    data = tmp_path / "data"
    data.mkdir()
    text = config(
        busybox_image,
        docker_host,
        f"""\
        - name: flaky
          trigger: manual
          retries: {{count: 2, delay: 0s}}
          executor:
            type: docker
            image: {busybox_image}
            docker_host: "{docker_host}"
            volumes: ["{data}:/data"]
          command: ["sh", "-c", "n=$(cat /data/n 2>/dev/null || echo 0); echo $((n+1)) > /data/n; echo try-$n; [ $n -ge 1 ]"]
        """,
    )

    async def main():
        async with run_engine(text, tmp_path) as h:
            run = await h.run("flaky", timeout=30)
            attempts = await h.storage.list_attempts(run.id)
            return run, attempts, h.log_text(run, 1), h.log_text(run, 2)

    run, attempts, first, second = asyncio.run(main())
    assert run.state is RunState.SUCCESS
    assert [a.exit_code for a in attempts] == [1, 0]
    assert len({a.handle["container_id"] for a in attempts}) == 2
    assert "try-0" in first and "try-1" in second
    assert containers_of(run.id) == []


def test_timeout_through_the_engine(docker_host, busybox_image, tmp_path, containers_of):
    text = config(
        busybox_image,
        docker_host,
        """\
        - name: slow
          trigger: manual
          EXECUTOR
          timeout: 500ms
          kill_grace: 0s
          command: ["sleep", "60"]
        """,
    )

    async def main():
        async with run_engine(text, tmp_path) as h:
            return await h.run("slow", timeout=30)

    run = asyncio.run(main())
    assert run.state is RunState.TIMED_OUT
    assert containers_of(run.id) == []


def test_missing_image_is_recorded_on_the_run(docker_host, tmp_path):
    text = config(
        "firelink-absent:1",
        docker_host,
        """\
        - name: absent
          trigger: manual
          command: ["true"]
          executor: {type: docker, image: "firelink-absent:1", pull: never, docker_host: "DOCKER_HOST"}
        """.replace("DOCKER_HOST", docker_host),
    )

    async def main():
        async with run_engine(text, tmp_path) as h:
            run = await h.run("absent", timeout=30)
            return run, h.log_text(run)

    run, log = asyncio.run(main())
    assert run.state is RunState.FAILED
    assert run.error and "firelink-absent:1" in run.error and "pull: never" in run.error
    assert "pull: never" in log


def test_unreachable_engine_fails_the_run_not_the_daemon(docker_host, busybox_image, tmp_path):
    text = config(
        busybox_image,
        f"unix://{tmp_path}/absent.sock",
        """\
        - name: nowhere
          trigger: manual
          EXECUTOR
          command: ["true"]
        """,
    ) + textwrap.indent(
        textwrap.dedent(
            f"""\
            - name: fine
              trigger: manual
              executor: {{type: docker, image: {busybox_image}, docker_host: "{docker_host}"}}
              command: ["true"]
            """
        ),
        "  ",
    )

    async def main():
        async with run_engine(text, tmp_path) as h:
            failed = await h.run("nowhere", timeout=30)
            fine = await h.run("fine", timeout=30)
            return failed, fine, h.log_text(failed)

    failed, fine, log = asyncio.run(main())
    assert failed.state is RunState.FAILED
    assert failed.error and failed.error.startswith(f"cannot reach the Docker engine at unix://{tmp_path}/absent.sock")
    assert "cannot reach the Docker engine" in log
    assert fine.state is RunState.SUCCESS


# --------------------------------------------------------------------------- crash and restart


FIRELINK = [sys.executable, "-c", "from firelink_core.cli import main; main()"]


def firelink(*args: str, **kwargs) -> subprocess.CompletedProcess:
    return subprocess.run([*FIRELINK, *args], capture_output=True, text=True, timeout=60, **kwargs)


def crashed_daemon(tmp_path: Path, text: str, containers_of) -> tuple[str, str]:
    """Run ``firelink run`` on ``text``, trigger job ``long``, ``kill -9`` the daemon while
    the job's container runs; return the run id and the container id."""
    config_file = tmp_path / "firelink.yaml"
    config_file.write_text(text)
    daemon_log = open(tmp_path / "daemon.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        [*FIRELINK, "run", "--state-dir", str(tmp_path), str(config_file)],
        stdout=daemon_log,
        stderr=subprocess.STDOUT,
    )
    try:
        wait_for(
            lambda: (tmp_path / "firelink.sock").exists() or proc.poll() is not None,
            30,
            message="the daemon's control socket",
        )
        assert proc.poll() is None, (tmp_path / "daemon.log").read_text()
        # Exit code 3: the daemon is not answering yet (its socket file may precede listening).
        triggered = wait_for(
            lambda: (r := firelink("trigger", "long", "--state-dir", str(tmp_path))).returncode != 3 and r,
            30,
            message="the daemon to accept a trigger",
        )
        assert triggered.returncode == 0, triggered.stderr
        run_id = triggered.stdout.strip()
        running = wait_for(
            lambda: [c for c in containers_of(run_id) if c.status == "running"],
            30,
            message="the job's container to run",
        )
        # Output the daemon wrote before the crash stays in the log.
        log = tmp_path / "logs" / "long" / f"{run_id}.1.log"
        wait_for(lambda: log.exists() and "tick-1" in log.read_text(), 30, message="first output")
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        daemon_log.close()
    return run_id, running[0].id


def scope_containers(client, state_dir: Path) -> list:
    """Every container of the daemon whose state directory is ``state_dir``."""
    return client.containers.list(all=True, sparse=True, filters={"label": f"firelink.scope={state_dir.resolve()}"})


LONG = """\
- name: long
  trigger: manual
  EXECUTOR
  recovery: {recovery}
  kill_grace: 0s
  command: ["sh", "-c", "i=1; while [ $i -le {ticks} ]; do echo tick-$i; i=$((i+1)); sleep 0.2; done; exit 7"]
"""


def test_crash_then_reattach_records_the_containers_result(docker_host, busybox_image, tmp_path, containers_of):
    text = config(busybox_image, docker_host, LONG.format(recovery="reattach", ticks=15))
    run_id, container_id = crashed_daemon(tmp_path, text, containers_of)
    assert [c.id for c in containers_of(run_id)] == [container_id]  # it outlived the daemon

    async def main():
        async with run_engine(text, tmp_path) as h:
            run = await h.wait_run(run_id, timeout=30)
            return run, await h.storage.list_attempts(run_id), h.log_text(run, 1)

    run, attempts, log = asyncio.run(main())
    assert run.state is RunState.FAILED and run.exit_code == 7
    assert [a.exit_code for a in attempts] == [7]
    assert "tick-1\n" in log and "tick-15\n" in log and "re-attached" in log
    assert log.count("tick-15\n") == 1
    assert containers_of(run_id) == []


def test_crash_then_retry_stops_the_old_container(
    docker_host, busybox_image, tmp_path, containers_of, docker_client
):
    text = config(busybox_image, docker_host, LONG.format(recovery="retry", ticks=3000))
    run_id, container_id = crashed_daemon(tmp_path, text, containers_of)

    async def main():
        async with run_engine(text, tmp_path, grace=0) as h:
            run = await h.wait_run(run_id, timeout=30)
            runs = await h.runs("long")
            return run, runs

    run, runs = asyncio.run(main())
    assert run.state is RunState.INTERRUPTED
    assert any(r.parent_run == run_id for r in runs), "recovery: retry queues a new run"
    assert containers_of(run_id) == []
    assert container_id not in {c.id for c in docker_client.containers.list(all=True)}
    left = [(c.status, c.attrs.get("Labels", {}).get("firelink.run_id")) for c in scope_containers(docker_client, tmp_path)]
    assert left == [], "the retry's container went with the engine"


def test_crash_with_recovery_fail(docker_host, busybox_image, tmp_path, containers_of, docker_client):
    text = config(busybox_image, docker_host, LONG.format(recovery="fail", ticks=3000))
    run_id, _container_id = crashed_daemon(tmp_path, text, containers_of)

    async def main():
        async with run_engine(text, tmp_path) as h:
            run = await h.wait_run(run_id, timeout=30)
            return run, await h.runs("long")

    run, runs = asyncio.run(main())
    assert run.state is RunState.INTERRUPTED
    assert [r.id for r in runs] == [run_id]
    assert scope_containers(docker_client, tmp_path) == []


@pytest.fixture(autouse=True)
def _no_leftover_docker_host(monkeypatch):
    # Jobs here name their engine; the daemon's own DOCKER_HOST must not matter.
    monkeypatch.delenv("DOCKER_HOST", raising=False)
