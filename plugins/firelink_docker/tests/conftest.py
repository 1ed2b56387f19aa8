"""A real Docker engine for the tests: a private dockerd on a temporary socket, and a busybox image."""

from __future__ import annotations

import io
import logging
import os
import shutil
import signal
import subprocess
import tarfile
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from firelink_core.plugin_api import AttemptRequest
from firelink_core.testing import RecordingReporter, executor_context

IMAGE = "firelink-test-busybox:latest"
LOGGER = logging.getLogger("firelink.test.docker")
BUSYBOX = "/bin/busybox"


def _unavailable(reason: str) -> None:
    """Skip loudly, or fail on CI where the engine must run (``FIRELINK_REQUIRE_SERVERS=1``)."""
    message = f"no Docker engine for the firelink-docker tests: {reason}"
    if os.environ.get("FIRELINK_REQUIRE_SERVERS") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _mounted(path: Path) -> bool:
    with open("/proc/mounts") as mounts:
        return any(line.split()[1] == str(path) for line in mounts if len(line.split()) > 1)


@pytest.fixture(scope="session")
def docker_host() -> Iterator[str]:
    """``unix://…/docker.sock`` of a dockerd started for this session and stopped after it."""
    import docker

    dockerd = shutil.which("dockerd")
    if dockerd is None:
        _unavailable("dockerd is not installed (apt-get install docker.io busybox-static)")
    if os.geteuid() != 0:
        _unavailable("dockerd needs root")
    # A short folder: the socket path must fit in a unix socket address (~108 bytes).
    root = Path(tempfile.mkdtemp(prefix="fld", dir="/tmp"))
    url = f"unix://{root}/docker.sock"
    log_file = open(root / "dockerd.log", "wb")  # noqa: SIM115 - closed at teardown
    # The four network flags keep dockerd away from the host's firewall, routing and bridges.
    proc = subprocess.Popen(
        [
            dockerd,
            "--host", url,
            "--data-root", str(root / "data"),
            "--exec-root", str(root / "exec"),
            "--pidfile", str(root / "docker.pid"),
            "--iptables=false",
            "--ip-forward=false",
            "--ip-masq=false",
            "--bridge=none",
            "--shutdown-timeout=2",
        ],
        stdout=log_file,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            if proc.poll() is not None:
                tail = (root / "dockerd.log").read_text(errors="replace")[-2000:]
                _unavailable(f"dockerd exited with {proc.returncode}:\n{tail}")
            try:
                # The client asks the engine for its API version as it is made.
                docker.DockerClient(base_url=url, timeout=5).close()
                break
            except Exception:  # noqa: BLE001 - not answering yet
                if time.monotonic() > deadline:
                    _unavailable("dockerd did not answer within 30s")
                time.sleep(0.1)
        yield url
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        log_file.close()
        netns = root / "exec" / "netns" / "default"
        if netns.exists() and _mounted(netns):
            subprocess.run(["umount", str(netns)], check=False)
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def docker_client(docker_host: str) -> Iterator[object]:
    import docker

    client = docker.DockerClient(base_url=docker_host)
    try:
        yield client
    finally:
        client.close()


@pytest.fixture(scope="session")
def busybox_image(docker_client) -> str:
    """A ``FROM scratch`` image holding the host's static busybox and its applet links."""
    if not os.path.exists(BUSYBOX):
        _unavailable(f"{BUSYBOX} is missing (apt-get install busybox-static)")
    dockerfile = b'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox", "--install", "-s", "/bin"]\n'
    context = io.BytesIO()
    with tarfile.open(fileobj=context, mode="w") as tar:
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(dockerfile)
        tar.addfile(info, io.BytesIO(dockerfile))
        tar.add(BUSYBOX, arcname="busybox")
    context.seek(0)
    docker_client.images.build(fileobj=context, custom_context=True, tag=IMAGE, rm=True)
    return IMAGE


@pytest.fixture
def engine_env(docker_host: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Point the SDK's usual environment (DOCKER_HOST) at the test engine."""
    monkeypatch.setenv("DOCKER_HOST", docker_host)
    return docker_host


@pytest.fixture
def make_request(tmp_path: Path, busybox_image: str):
    """``make_request(command, **fields)``: an AttemptRequest for the busybox image."""
    counter = iter(range(1, 1_000_000))

    def make(command=None, *, options: dict | None = None, **fields) -> AttemptRequest:
        run_id = fields.pop("run_id", None) or f"run{next(counter)}x{uuid.uuid4().hex[:8]}"
        job = fields.pop("job", "job")
        attempt = fields.pop("attempt", 1)
        values = {
            "run_id": run_id,
            "job": job,
            "attempt": attempt,
            "command": command,
            "shell": False,
            "env": {"FIRELINK_JOB": job, "FIRELINK_RUN_ID": run_id, "FIRELINK_ATTEMPT": str(attempt)},
            "cwd": None,
            "timeout": None,
            "kill_grace": 1.0,
            "options": {"image": busybox_image, **(options or {})},
            "log_path": tmp_path / "state" / "logs" / job / f"{run_id}.{attempt}.log",
            "log_max_bytes": 1024 * 1024,
        }
        values.update(fields)
        return AttemptRequest(**values)

    return make


@pytest.fixture
def make_executor(tmp_path: Path):
    """``make_executor(state_dir=None, config_dir=None)``: a DockerExecutor as an engine makes it."""
    from firelink_docker.executor import DockerExecutor

    def make(state_dir: Path | None = None, config_dir: Path | None = None) -> DockerExecutor:
        context = executor_context(state_dir or tmp_path / "state", config_dir or tmp_path, logger=LOGGER)
        return DockerExecutor(context)

    return make


@pytest.fixture
def reporter() -> RecordingReporter:
    return RecordingReporter()


@pytest.fixture
def containers_of(docker_client):
    """``containers_of(run_id)``: every container (running or not) of one run, by its labels."""

    def find(run_id: str) -> list:
        return docker_client.containers.list(all=True, sparse=True, filters={"label": f"firelink.run_id={run_id}"})

    return find
