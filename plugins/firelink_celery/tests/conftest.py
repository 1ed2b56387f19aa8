"""Real servers for the firelink-celery tests: a private redis-server and Celery workers, stopped by PID."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from firelink_core.testing import wait_for


def _unavailable(reason: str) -> None:
    """Skip loudly, or fail on CI where the servers must run (``FIRELINK_REQUIRE_SERVERS=1``)."""
    message = f"no Redis for the firelink-celery tests: {reason}"
    if os.environ.get("FIRELINK_REQUIRE_SERVERS") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=0.5) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """A redis-server on 127.0.0.1, its files in a temporary folder; ``stop``/``start`` simulate an outage.

    The append-only file (inside that folder) keeps queued tasks and streams across a restart,
    as a production broker's persistence would.
    """

    def __init__(self, binary: str, root: Path) -> None:
        self.binary = binary
        self.root = root
        self.port = _free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started = False

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [
                self.binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
                "--appendonly", "yes", "--appendfsync", "always", "--dir", str(self.root),
                "--logfile", str(self.root / "redis.log"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.STDOUT,
        )
        deadline = time.monotonic() + 10
        while not _answers(self.port):
            if self.proc.poll() is not None or time.monotonic() > deadline:
                tail = (self.root / "redis.log").read_text(errors="replace")[-1000:]
                if self.started:
                    raise RuntimeError(f"redis-server did not start again: {tail}")
                _unavailable(f"redis-server did not start: {tail}")
            time.sleep(0.02)
        self.started = True

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            self.proc.wait(timeout=30)
        self.proc = None


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    binary = shutil.which("redis-server")
    if binary is None:
        _unavailable("redis-server is not installed (apt-get install redis-server)")
    root = Path(tempfile.mkdtemp(prefix="flredis"))
    server = RedisServer(binary, root)
    server.start()
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


class Worker:
    """One ``celery -A firelink_celery.worker worker`` process, named ``name@<host>``."""

    def __init__(self, name: str, queue: str, broker: str, root: Path, concurrency: int) -> None:
        self.name = name
        self.log = root / f"{name}.log"
        env = {**os.environ, "FIRELINK_BROKER": broker, "FIRELINK_WORKER_CONCURRENCY": str(concurrency)}
        with open(self.log, "wb") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "celery", "-A", "firelink_celery.worker", "worker", "-Q", queue,
                 "-n", f"{name}@%h", "--loglevel", "INFO", "--without-gossip", "--without-mingle", "--without-heartbeat"],
                stdout=out, stderr=subprocess.STDOUT, env=env, cwd=root,
            )
        self.nodename = f"{name}@{socket.gethostname()}"

    def wait_ready(self, timeout: float = 30) -> None:
        wait_for(lambda: b"ready." in self.log.read_bytes() or self.proc.poll() is not None, timeout,
                 message=f"worker {self.name} to start")
        assert self.proc.poll() is None, self.log.read_text(errors="replace")

    def kill(self) -> None:
        """``kill -9``."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(timeout=30)

    def stop(self) -> None:
        # SIGQUIT, Celery's cold shutdown: a warm one (SIGTERM) of the threads pool lingers for about 30s.
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGQUIT)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def start_workers(redis_server: RedisServer, tmp_path: Path) -> Iterator:
    """``start_workers(queue, n=1, concurrency=4)``: that many workers on ``queue``, ready; stopped by PID after the test."""
    started: list[Worker] = []

    def start(queue: str, n: int = 1, concurrency: int = 4) -> list[Worker]:
        workers = [Worker(f"w{len(started) + i + 1}", queue, redis_server.url, tmp_path, concurrency) for i in range(n)]
        started.extend(workers)
        for worker in workers:
            worker.wait_ready()
        return workers

    try:
        yield start
    finally:
        for worker in started:
            worker.stop()


def _processes_of_run(run_id: str) -> list[int]:
    """Processes on this host whose environment names run ``run_id`` (what a job leaves behind)."""
    needle = f"\0FIRELINK_RUN_ID={run_id}\0".encode()
    found = []
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/environ", "rb") as env:
                data = b"\0" + env.read() + b"\0"
            with open(f"/proc/{entry.name}/stat", "rb") as stat:
                state = stat.read().rsplit(b")", 1)[1].split()[0]
        except OSError:
            continue
        if needle in data and state != b"Z":
            found.append(int(entry.name))
    return found


@pytest.fixture(scope="session")
def processes_of_run():
    """``processes_of_run(run_id)``: pids on this host whose environment names that run."""
    return _processes_of_run
