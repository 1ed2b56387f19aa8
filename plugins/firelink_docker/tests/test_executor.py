"""The docker executor called directly, against a real Docker engine."""

from __future__ import annotations

import asyncio

import pytest

from firelink_core.plugin_api import parse_dropped_marker

pytestmark = pytest.mark.docker


def run_attempt(executor, request, reporter):
    async def main():
        await executor.start()
        try:
            return await executor.run(request, reporter)
        finally:
            await executor.stop()

    return asyncio.run(main())


def log_text(request) -> str:
    return request.log_path.read_text(errors="replace")


def test_exit_code_and_both_streams(engine_env, make_executor, make_request, reporter, containers_of):
    request = make_request(["sh", "-c", "echo to-stdout; echo to-stderr >&2; exit 3"])
    result = run_attempt(make_executor(), request, reporter)
    assert result.exit_code == 3 and not result.ok and result.error is None
    log = log_text(request)
    assert "to-stdout\n" in log and "to-stderr\n" in log
    assert reporter.handles and reporter.handles[0]["container_id"]
    assert containers_of(request.run_id) == []  # removed by default


def test_success_and_labels(engine_env, make_executor, make_request, reporter, docker_client):
    request = make_request(["true"], options={"remove": False, "labels": {"team": "data"}}, job="etl.daily")
    result = run_attempt(make_executor(), request, reporter)
    assert result.ok
    container = docker_client.containers.get(reporter.handles[0]["container_id"])
    try:
        labels = container.labels
        assert labels["firelink.job"] == "etl.daily"
        assert labels["firelink.run_id"] == request.run_id
        assert labels["firelink.attempt"] == "1"
        assert labels["team"] == "data"
    finally:
        container.remove(force=True)


def test_container_gets_only_the_attempt_environment(
    engine_env, make_executor, make_request, reporter, monkeypatch
):
    monkeypatch.setenv("DAEMON_ONLY_SECRET", "must-not-leak")
    request = make_request(
        ["env"],
        env={"FIRELINK_JOB": "job", "FIRELINK_EVENT": '{"key": "a b"}', "SHARED": "from-job"},
        options={"env": {"SHARED": "from-executor", "EXTRA": 42}},
    )
    result = run_attempt(make_executor(), request, reporter)
    assert result.ok
    lines = set(log_text(request).splitlines())
    assert {"FIRELINK_JOB=job", 'FIRELINK_EVENT={"key": "a b"}', "SHARED=from-job", "EXTRA=42"} <= lines
    assert not any("DAEMON_ONLY_SECRET" in line for line in lines)


def test_shell_string_and_split_string(engine_env, make_executor, make_request, reporter):
    shell = make_request("echo $((6 * 7)) | tr 4 X", shell=True)
    assert run_attempt(make_executor(), shell, reporter).ok
    assert "X2" in log_text(shell)
    split = make_request("echo 'one arg'  two", options={"entrypoint": "/bin/busybox"})
    assert run_attempt(make_executor(), split, reporter).ok
    assert "one arg two" in log_text(split)


def test_executor_command_working_dir_and_user(engine_env, make_executor, make_request, reporter):
    request = make_request(
        ["false"], options={"command": ["sh", "-c", "pwd; id -u"], "working_dir": "/tmp", "user": "1234"}
    )
    assert run_attempt(make_executor(), request, reporter).ok
    assert log_text(request).splitlines()[-2:] == ["/tmp", "1234"]


def test_bind_mounts_read_write_and_read_only(engine_env, make_executor, make_request, reporter, tmp_path):
    config_dir = tmp_path / "conf"
    (config_dir / "in").mkdir(parents=True)
    (config_dir / "in" / "data.txt").write_text("hello from the host\n")
    out = tmp_path / "out"
    out.mkdir()
    out.chmod(0o777)
    request = make_request(
        ["sh", "-c", "cat /in/data.txt > /out/copy.txt && echo written > /in/nope.txt"],
        options={"volumes": ["./in:/in:ro", {"source": str(out), "target": "/out"}]},
    )
    result = run_attempt(make_executor(config_dir=config_dir), request, reporter)
    assert (out / "copy.txt").read_text() == "hello from the host\n"
    assert result.exit_code != 0
    assert "Read-only file system" in log_text(request)
    assert not (config_dir / "in" / "nope.txt").exists()


def test_network_none(engine_env, make_executor, make_request, reporter, docker_client):
    request = make_request(["sh", "-c", "ls /sys/class/net"], options={"network": "none", "remove": False})
    assert run_attempt(make_executor(), request, reporter).ok
    container = docker_client.containers.get(reporter.handles[0]["container_id"])
    try:
        assert container.attrs["HostConfig"]["NetworkMode"] == "none"
        assert log_text(request).split() == ["lo"]
    finally:
        container.remove(force=True)


def test_timeout_stops_and_removes_the_container(engine_env, make_executor, make_request, reporter, containers_of):
    request = make_request(["sh", "-c", "echo started; sleep 60"], timeout=0.5, kill_grace=0.0)
    result = run_attempt(make_executor(), request, reporter)
    assert result.timed_out and not result.ok
    log = log_text(request)
    assert "started" in log and "timed out" in log
    assert containers_of(request.run_id) == []


def test_cancellation_stops_the_container_and_reraises(engine_env, make_executor, make_request, reporter, containers_of):
    request = make_request(["sleep", "60"], kill_grace=0.0)
    executor = make_executor()

    async def main():
        await executor.start()
        task = asyncio.create_task(executor.run(request, reporter))
        await asyncio.wait_for(reporter.started_event.wait(), 30)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        await executor.stop()

    asyncio.run(main())
    assert containers_of(request.run_id) == []


def test_log_keeps_the_tail_within_the_cap(engine_env, make_executor, make_request, reporter):
    script = "i=0; while [ $i -lt 4000 ]; do echo line-$i-padding-padding-padding; i=$((i+1)); done"
    request = make_request(["sh", "-c", script], log_max_bytes=8192)
    assert run_attempt(make_executor(), request, reporter).ok
    data = request.log_path.read_bytes()
    assert len(data) <= 8192 + 64
    dropped, _ = parse_dropped_marker(data)
    assert dropped > 100_000
    assert data.rstrip().endswith(b"line-3999-padding-padding-padding")


def test_missing_image_with_pull_never(engine_env, make_executor, make_request, reporter):
    request = make_request(["true"], options={"image": "firelink-no-such-image:1", "pull": "never"})
    result = run_attempt(make_executor(), request, reporter)
    assert result.error and "firelink-no-such-image:1" in result.error and "pull: never" in result.error
    assert result.error in log_text(request)
    assert reporter.handles == []


def test_pull_failure_is_an_attempt_error(engine_env, make_executor, make_request, reporter):
    # Nothing listens on 127.0.0.1:9, so the pull fails at once.
    request = make_request(["true"], options={"image": "127.0.0.1:9/firelink/absent:1"})
    result = run_attempt(make_executor(), request, reporter)
    assert result.error and result.error.startswith("cannot pull image '127.0.0.1:9/firelink/absent:1'")
    assert "pulling image" in log_text(request)


def test_engine_unreachable(make_executor, make_request, reporter, tmp_path):
    request = make_request(["true"], options={"docker_host": f"unix://{tmp_path}/absent.sock"})
    result = run_attempt(make_executor(), request, reporter)
    assert result.error and result.error.startswith(f"cannot reach the Docker engine at unix://{tmp_path}/absent.sock")
    assert result.error in log_text(request)


def test_explicit_docker_host(docker_host, make_executor, make_request, reporter, monkeypatch):
    monkeypatch.setenv("DOCKER_HOST", "unix:///nonexistent/docker.sock")
    request = make_request(["echo", "via option"], options={"docker_host": docker_host})
    assert run_attempt(make_executor(), request, reporter).ok
    assert "via option" in log_text(request)


def test_out_of_memory_is_reported(engine_env, make_executor, make_request, reporter):
    request = make_request(
        ["sh", "-c", "dd if=/dev/zero of=/dev/null bs=64M count=1"], options={"memory": "8m"}
    )
    result = run_attempt(make_executor(), request, reporter)
    assert result.exit_code == 137 and not result.ok
    # Docker itself sometimes misses the OOM event; then the log says what is likely.
    assert (result.error and "ran out of memory" in result.error) or "may have run out of memory" in log_text(request)


def test_leftover_containers_of_this_daemon_are_removed(
    engine_env, make_executor, make_request, reporter, docker_client, tmp_path, busybox_image
):
    executor = make_executor()
    mine = docker_client.containers.create(
        busybox_image, ["true"], labels={"firelink.scope": executor.scope, "firelink.run_id": "old"}
    )
    other = docker_client.containers.create(
        busybox_image, ["true"], labels={"firelink.scope": str(tmp_path / "elsewhere"), "firelink.run_id": "x"}
    )
    try:
        assert run_attempt(executor, make_request(["true"]), reporter).ok
        remaining = {c.id for c in docker_client.containers.list(all=True)}
        assert mine.id not in remaining
        assert other.id in remaining
    finally:
        other.remove(force=True)


def test_invalid_options_at_run_time_are_attempt_errors(engine_env, make_executor, make_request, reporter):
    request = make_request(["true"], options={"memory": "lots"})
    result = run_attempt(make_executor(), request, reporter)
    assert result.error and "memory" in result.error and "lots" in result.error


def test_timeout_sends_the_stop_signal_and_waits_the_grace(engine_env, make_executor, make_request, reporter):
    script = 'trap "echo got-usr1; exit 5" USR1; echo ready; while true; do sleep 0.1; done'
    request = make_request(["sh", "-c", script], timeout=0.5, kill_grace=30.0, options={"stop_signal": "SIGUSR1"})
    result = run_attempt(make_executor(), request, reporter)
    # The job's own handler ran (no SIGKILL within the grace) and its exit code is kept.
    assert result.timed_out and result.exit_code == 5
    assert "got-usr1" in log_text(request)


def test_remove_orphans_with_runs_to_keep(engine_env, make_executor, docker_client, busybox_image):
    executor = make_executor()

    def running(run_id: str):
        labels = {"firelink.scope": executor.scope, "firelink.run_id": run_id}
        container = docker_client.containers.create(busybox_image, ["sleep", "60"], labels=labels)
        container.start()
        return container

    kept, orphan = running("kept"), running("orphan")
    try:

        async def main():
            untouched = await executor.remove_orphans()
            removed = await executor.remove_orphans(keep_runs={"kept"})
            await executor.stop()
            return untouched, removed

        untouched, removed = asyncio.run(main())
        assert untouched == []  # running containers stay unless the caller names the runs to keep
        assert removed == [orphan.id]
        kept.reload()
        assert kept.status == "running"
    finally:
        for container in (kept, orphan):
            try:
                container.remove(force=True)
            except Exception:  # noqa: BLE001 - already removed by the test
                pass
