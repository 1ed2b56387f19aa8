"""A real PostgreSQL server for the firelink-postgres tests: a private cluster in a temporary
directory, listening on 127.0.0.1 only, run as the unprivileged ``postgres`` user when the
suite runs as root, stopped by ``pg_ctl`` (then by the postmaster's PID) at the end."""

from __future__ import annotations

import glob
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from firelink_core.testing import wait_for


def _unavailable(reason: str) -> None:
    """Skip loudly, or fail on CI where the servers must run (``FIRELINK_REQUIRE_SERVERS=1``)."""
    message = f"no PostgreSQL for the firelink-postgres tests: {reason}"
    if os.environ.get("FIRELINK_REQUIRE_SERVERS") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def _bindir() -> Path | None:
    """Debian keeps initdb and pg_ctl in /usr/lib/postgresql/<version>/bin (the newest wins)."""
    found = sorted(
        glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(Path(p).parts[-3])
    )
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class PostgresServer:
    """One private cluster: ``initdb`` with trust authentication for the user ``firelink``."""

    def __init__(self, bindir: Path, root: Path) -> None:
        self.bindir = bindir
        self.root = root
        self.data = root / "data"
        self.port = free_port()
        self.dsn = f"host=127.0.0.1 port={self.port} user=firelink dbname=postgres"
        # initdb refuses to run as root: the cluster belongs to the unprivileged postgres user.
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []

    def _run(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*self.as_user, *args],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=self.root,
            check=False,
        )

    def start(self) -> None:
        if self.as_user:
            shutil.chown(self.root, "postgres", "postgres")
        done = self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.data),
            "-A",
            "trust",
            "-U",
            "firelink",
            "-E",
            "UTF8",
            "--no-sync",
        )
        if done.returncode != 0:
            _unavailable(f"initdb failed: {done.stderr[-1000:]}")
        options = f"-k {self.root} -h 127.0.0.1 -p {self.port} -c fsync=off -c max_connections=200"
        done = self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.data),
            "-o",
            options,
            "-l",
            str(self.root / "log"),
            "-w",
            "start",
        )
        if done.returncode != 0:
            log = (
                (self.root / "log").read_text(errors="replace")[-1000:]
                if (self.root / "log").exists()
                else ""
            )
            _unavailable(f"pg_ctl start failed: {done.stderr[-500:]} {log}")

    def pid(self) -> int | None:
        try:
            return int((self.data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop(self) -> None:
        pid = self.pid()
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        if pid is not None:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            os.kill(pid, signal.SIGQUIT)  # the postmaster's immediate shutdown
            wait_for(lambda: not (self.data / "postmaster.pid").exists(), timeout=10)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    bindir = _bindir()
    if bindir is None:
        _unavailable("initdb is not installed (apt-get install postgresql)")
    if os.geteuid() == 0 and shutil.which("runuser") is None:
        _unavailable("running as root needs runuser to start PostgreSQL as the postgres user")
    root = Path(tempfile.mkdtemp(prefix="flpg"))
    server = PostgresServer(bindir, root)
    try:
        server.start()
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture
def schema_name() -> str:
    """A schema no other test used: each test starts from an empty state."""
    return f"t_{uuid.uuid4().hex[:16]}"
