"""``firelink run`` under a ``Type=notify`` unit: READY, RELOADING, STOPPING on ``$NOTIFY_SOCKET``."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from firelink_core._systemd import SystemdNotifier

FIRELINK = str(Path(sys.executable).with_name("firelink"))
CONFIG = """\
jobs:
  - name: env
    trigger: manual
    command: ["sh", "-c", "printenv NOTIFY_SOCKET || echo unset"]
"""


def _monotonic_usec() -> int:
    return time.clock_gettime_ns(time.CLOCK_MONOTONIC) // 1000


class Manager:
    """The service manager's end: a datagram socket the daemon notifies."""

    def __init__(self, address: str) -> None:
        self.address = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)

    def next(self, timeout: float = 30.0) -> dict[str, str]:
        """The next notification as a dict, waiting at most ``timeout`` seconds."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            raise AssertionError(f"no notification within {timeout}s") from None
        return dict(line.split("=", 1) for line in data.decode().splitlines())

    def close(self) -> None:
        self.sock.close()


@pytest.fixture(params=["path", "abstract"])
def manager(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Manager]:
    if request.param == "path":
        address = str(tmp_path / "notify.sock")
    else:
        address = f"@firelink-test-{uuid.uuid4().hex}"
    m = Manager(address)
    yield m
    m.close()


def _firelink(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([FIRELINK, *args], capture_output=True, text=True, env=env, timeout=60)


def test_the_daemon_notifies_ready_reloading_and_stopping_in_order(tmp_path: Path, manager: Manager) -> None:
    config = tmp_path / "firelink.yaml"
    config.write_text(textwrap.dedent(CONFIG))
    state = tmp_path / "state"
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIRELINK_")}
    env["FIRELINK_STATE_DIR"] = str(state)
    log = tmp_path / "daemon.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [FIRELINK, "run", str(config)], stdin=subprocess.DEVNULL, stdout=out, stderr=out,
            env={**env, "NOTIFY_SOCKET": manager.address},
        )
    try:
        assert manager.next() == {"READY": "1"}, log.read_text()
        # READY means "answers": a client command works at once.
        assert _firelink("status", env=env).returncode == 0

        # Jobs do not inherit the socket (they would speak for the daemon).
        triggered = _firelink("trigger", "env", "--wait", env=env)
        assert triggered.stdout.strip() == "unset", triggered

        before = _monotonic_usec()
        if manager.address.startswith("@"):
            proc.send_signal(signal.SIGHUP)
        else:
            assert _firelink("reload", env=env).returncode == 0
        reloading = manager.next()
        assert reloading.keys() == {"RELOADING", "MONOTONIC_USEC"} and reloading["RELOADING"] == "1"
        assert before <= int(reloading["MONOTONIC_USEC"]) <= _monotonic_usec()
        assert manager.next() == {"READY": "1"}

        proc.send_signal(signal.SIGTERM)
        assert manager.next() == {"STOPPING": "1"}
        assert proc.wait(60) == 0, log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_a_missing_socket_never_fails_the_daemon(tmp_path: Path) -> None:
    notifier = SystemdNotifier(str(tmp_path / "gone.sock"))
    assert notifier.notify("READY=1") is False
    notifier.stopping()  # logged, not raised
    assert SystemdNotifier(None).notify("READY=1") is False
