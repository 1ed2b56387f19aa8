"""Shared machinery of the benchmarks: daemons and peers in temp dirs, clean-up, statistics."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

import yaml

from firelink_core._control import ControlClient, ControlError, DaemonNotRunning

T = TypeVar("T")

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
FIRELINK = str(BIN / "firelink")
PEER_PYTHON = REPO / "bench" / ".venv-apscheduler" / "bin" / "python"
BENCH_DIR = REPO / "bench"


class BenchError(Exception):
    """A benchmark could not run at all (as opposed to a missed target)."""


# --------------------------------------------------------------------------- statistics


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


def percentile(values: Sequence[float], p: float) -> float:
    """Nearest-rank percentile (p in 0..100) of ``values``."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = max(1, -(-len(ordered) * p // 100))
    return ordered[int(rank) - 1]


def ratio(a: float, b: float) -> float | None:
    if b == 0 or a != a or b != b:  # nan checks: a benchmark part that did not produce a figure
        return None
    return a / b


# --------------------------------------------------------------------------- waiting


def wait_until(check: Callable[[], T | None], timeout: float, what: str, interval: float = 0.02) -> T:
    """Poll ``check`` until it returns a truthy value; BenchError after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > deadline:
            raise BenchError(f"timed out after {timeout:.0f}s waiting for {what}")
        time.sleep(interval)


# --------------------------------------------------------------------------- processes


def kill_group(proc: subprocess.Popen[Any], grace: float = 5.0) -> None:
    """SIGTERM the process group of ``proc`` (started with a new session), then SIGKILL."""
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(grace)
        except subprocess.TimeoutExpired:
            pass
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signal.SIGKILL)  # leftovers of the group (children) too
    with contextlib.suppress(subprocess.TimeoutExpired):
        proc.wait(grace)


@contextlib.contextmanager
def temp_dir(prefix: str) -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix=f"firelink-bench-{prefix}-") as d:
        yield Path(d)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# --------------------------------------------------------------------------- the daemon


def bench_env() -> dict[str, str]:
    """The environment of the processes under test: ours without FIRELINK_* settings, except
    FIRELINK_PLUGINS (lets a developer load an extra plugin)."""
    return {k: v for k, v in os.environ.items() if not k.startswith("FIRELINK_") or k == "FIRELINK_PLUGINS"}


def write_config(path: Path, config: dict[str, Any]) -> Path:
    # Block style without aliases: what a person writes, and what the loader reads fastest.
    path.write_text(yaml.safe_dump(config, sort_keys=False, default_flow_style=None))
    return path


@dataclass
class Daemon:
    """One ``firelink run`` process on a temp state directory, measured from outside."""

    root: Path
    config: dict[str, Any]
    extra_env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None
    started: float = 0.0
    """time.monotonic() just before the process was started."""

    @property
    def state_dir(self) -> Path:
        return self.root / "state"

    @property
    def config_path(self) -> Path:
        return self.root / "firelink.yaml"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    @property
    def db_path(self) -> Path:
        return self.state_dir / "firelink.db"

    def client(self, timeout: float = 60.0) -> ControlClient:
        return ControlClient(self.state_dir, timeout=timeout)

    def start(self, wait: bool = True, timeout: float = 60.0) -> None:
        write_config(self.config_path, self.config)
        log = open(self.root / "daemon.log", "ab")  # noqa: SIM115 - the child keeps it
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [FIRELINK, "run", str(self.config_path), "--state-dir", str(self.state_dir),
             "--log-level", "warning"],
            stdin=subprocess.DEVNULL, stdout=log, stderr=log, cwd=self.root,
            env={**bench_env(), **self.extra_env}, start_new_session=True,
        )
        log.close()
        if wait:
            self.wait_ready(timeout)

    def ping(self) -> dict[str, Any] | None:
        if self.proc is not None and self.proc.poll() is not None:
            raise BenchError(f"the daemon exited with {self.proc.returncode}: {self.log_tail()}")
        try:
            return self.client(timeout=5).request("ping")
        except (DaemonNotRunning, ControlError, OSError):
            return None

    def wait_ready(self, timeout: float = 60.0) -> float:
        """Wait until the daemon answers; seconds since the process was started."""
        wait_until(self.ping, timeout, "the daemon to answer on its control socket", interval=0.01)
        return time.monotonic() - self.started

    def request(self, cmd: str, **args: Any) -> Any:
        return self.client().request(cmd, **args)

    def log_tail(self, lines: int = 15) -> str:
        try:
            text = (self.root / "daemon.log").read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                pass
        kill_group(self.proc)


@contextlib.contextmanager
def daemon(name: str, config: dict[str, Any], *, wait: bool = True, **kwargs: Any) -> Iterator[Daemon]:
    with temp_dir(name) as root:
        d = Daemon(root, config, **kwargs)
        try:
            d.start(wait=wait)
            yield d
        finally:
            d.stop()


# --------------------------------------------------------------------------- peers


@dataclass
class Peer:
    """A peer process (APScheduler 3 in its own virtualenv, or a reference loop) that prints
    JSON lines: the last one before serving is ``{"ready": true}``."""

    argv: list[str]
    proc: subprocess.Popen[str] | None = None
    messages: list[dict[str, Any]] = field(default_factory=list)
    started: float = 0.0

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self, timeout: float = 60.0) -> float:
        """Start and wait for ready; seconds since start."""
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            self.argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            text=True, start_new_session=True, env=bench_env(),
        )
        assert self.proc.stdout is not None
        # readline blocks: bound it by killing the peer from a timer if it never gets ready
        with _kill_after(self.proc, timeout):
            while True:
                line = self.proc.stdout.readline()
                if not line:
                    err = self.proc.stderr.read() if self.proc.stderr else ""
                    raise BenchError(f"peer {' '.join(self.argv[1:3])} exited before ready: {err[-800:]}")
                message = json.loads(line)
                self.messages.append(message)
                if message.get("ready"):
                    return time.monotonic() - self.started

    def stop(self) -> None:
        if self.proc is not None:
            kill_group(self.proc)
            for stream in (self.proc.stdout, self.proc.stderr):
                if stream is not None:
                    stream.close()


@contextlib.contextmanager
def _kill_after(proc: subprocess.Popen[Any], timeout: float) -> Iterator[None]:
    import threading

    timer = threading.Timer(timeout, lambda: kill_group(proc, grace=1))
    timer.start()
    try:
        yield
    finally:
        timer.cancel()


def apscheduler_peer(*args: str) -> Peer:
    if not PEER_PYTHON.exists():
        raise BenchError(f"{PEER_PYTHON} is missing: run bench/run (it creates the peer's virtualenv)")
    return Peer([str(PEER_PYTHON), str(BENCH_DIR / "peer_apscheduler.py"), *args])


@contextlib.contextmanager
def running(peer: Peer, timeout: float = 60.0) -> Iterator[Peer]:
    try:
        peer.start(timeout)
        yield peer
    finally:
        peer.stop()
