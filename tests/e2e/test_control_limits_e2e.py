"""The control socket against hostile clients: bounded memory, idle deadlines, a connection
cap, and a clear answer to every malformed request, from a real daemon."""

from __future__ import annotations

import json
import selectors
import socket
import time
from typing import Any

import pytest

from firelink_core._control import IDLE_TIMEOUT, MAX_CONNECTIONS, MAX_LINE
from firelink_core.testing import wait_for

from .conftest import FirelinkProcess

CONFIG = """
jobs:
  - name: ok
    trigger: manual
    command: ["sh", "-c", "echo hello"]
"""


@pytest.fixture
def up(daemon: FirelinkProcess) -> FirelinkProcess:
    daemon.write_config(CONFIG)
    daemon.start()
    return daemon


def connect(daemon: FirelinkProcess, timeout: float = 30) -> socket.socket:
    def attempt() -> socket.socket | None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(timeout)
        try:
            sock.connect(str(daemon.state_dir / "firelink.sock"))
        except BlockingIOError:  # the listen backlog is full until the daemon accepts more
            sock.close()
            return None
        return sock

    return wait_for(attempt, 30, interval=0.01, message="the daemon accepts a connection")


def read_all(sock: socket.socket) -> list[dict[str, Any]]:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return [json.loads(part) for part in data.splitlines()]


def exchange(daemon: FirelinkProcess, line: bytes) -> list[dict[str, Any]]:
    with connect(daemon) as sock:
        sock.sendall(line)
        sock.shutdown(socket.SHUT_WR)
        return read_all(sock)


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmRSS:"))


def no_traceback(daemon: FirelinkProcess) -> None:
    log = daemon.daemon_log()
    assert "Traceback" not in log and "RecursionError" not in log, log[-3000:]


# --------------------------------------------------------------------------- memory and time


def test_many_connections_sending_endless_lines_keep_the_daemon_small(up: FirelinkProcess) -> None:
    pid = up.proc.pid
    before = rss_kib(pid)
    chunk = b"x" * 65536
    clients = [connect(up) for _ in range(300)]
    selector = selectors.DefaultSelector()
    for sock in clients:
        sock.setblocking(False)
        selector.register(sock, selectors.EVENT_WRITE, data=[0])
    # Each client pushes 1 MB without a newline, as fast as the daemon takes it.
    deadline = time.monotonic() + 60
    while selector.get_map() and time.monotonic() < deadline:
        for key, _ in selector.select(timeout=0.5):
            try:
                key.data[0] += key.fileobj.send(chunk)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:  # answered and closed by the daemon
                key.data[0] = 1 << 20
            if key.data[0] >= 1 << 20:
                selector.unregister(key.fileobj)
    grown = rss_kib(pid) - before
    selector.close()
    for sock in clients:
        sock.close()
    assert grown < 100 * 1024, f"the daemon grew by {grown} KiB"
    assert up.status() is not None
    (answer,) = exchange(up, b"x" * (MAX_LINE + 10))
    assert "request line too long" in answer["error"]["message"]
    no_traceback(up)


def test_a_connection_cap_answers_busy(up: FirelinkProcess) -> None:
    idle = [connect(up) for _ in range(MAX_CONNECTIONS)]
    try:
        # The daemon may not have accepted every one yet: the cap shows within a moment.
        for _ in range(50):
            answer = exchange(up, b'{"cmd": "ping"}\n')
            if not answer[0]["ok"]:
                break
            time.sleep(0.05)
        assert answer[0]["error"]["code"] == "busy"
    finally:
        for sock in idle:
            sock.close()
    assert up.status() is not None  # freed connections make room again


def test_an_idle_connection_is_closed_after_its_deadline(up: FirelinkProcess) -> None:
    started = time.monotonic()
    silent = connect(up, timeout=IDLE_TIMEOUT + 20)
    partial = connect(up, timeout=IDLE_TIMEOUT + 20)
    partial.sendall(b'{"cmd": "pi')
    try:
        for sock in (silent, partial):
            (answer,) = read_all(sock)
            assert answer["error"]["code"] == "timeout"
    finally:
        silent.close()
        partial.close()
    assert time.monotonic() - started < IDLE_TIMEOUT + 10
    assert up.status() is not None


# --------------------------------------------------------------------------- malformed requests


BAD_REQUESTS = [
    ("deep array", b"[" * 20_000 + b"]" * 20_000, "nested too deeply"),
    ("deeper than a line", b"[" * 50_000 + b"]" * 50_000, "request line too long"),
    ("not json", b"not json", "not JSON"),
    ("not an object", b"[1, 2]", "JSON object"),
    ("cmd not text", b'{"cmd": 5}', "string 'cmd'"),
    ("unknown field", b'{"cmd": "status", "verbose": true}', "unknown field 'verbose'"),
    ("stop grace NaN", b'{"cmd": "stop", "grace": NaN}', "NaN is not a JSON number"),
    ("stop grace Infinity", b'{"cmd": "stop", "grace": Infinity}', "Infinity is not a JSON number"),
    ("stop grace huge", b'{"cmd": "stop", "grace": 1e308}', "grace must be a number of seconds"),
    ("stop grace negative", b'{"cmd": "stop", "grace": -1}', "grace must be"),
    ("stop grace text", b'{"cmd": "stop", "grace": "5"}', "grace must be"),
    ("stop grace bool", b'{"cmd": "stop", "grace": true}', "grace must be"),
    ("runs limit bool", b'{"cmd": "runs", "limit": true}', "limit must be a positive integer"),
    ("runs limit zero", b'{"cmd": "runs", "limit": 0}', "limit must be a positive integer"),
    ("runs limit float", b'{"cmd": "runs", "limit": 2.5}', "limit must be a positive integer"),
    ("runs states", b'{"cmd": "runs", "states": ["bogus"]}', "states must be run states"),
    ("runs states object", b'{"cmd": "runs", "states": [{}]}', "states must be run states"),
    ("runs job", b'{"cmd": "runs", "job": 5}', "job name is required"),
    ("trigger job", b'{"cmd": "trigger", "job": ["ok"]}', "job name is required"),
    ("trigger env", b'{"cmd": "trigger", "job": "ok", "env": ["A"]}', "env must map names to strings"),
    ("trigger env name", b'{"cmd": "trigger", "job": "ok", "env": {"A=B": "x"}}', "holds '=' or NUL"),
    ("trigger env NUL", b'{"cmd": "trigger", "job": "ok", "env": {"A": "x\\u0000y"}}', "holds NUL"),
    ("trigger flag", b'{"cmd": "trigger", "job": "ok", "with_upstream": "yes"}', "with_upstream must be true or false"),
    ("trigger follow", b'{"cmd": "trigger", "job": "ok", "follow": 1}', "follow must be true or false"),
    ("follow run_id", b'{"cmd": "follow", "run_id": 5}', "run_id must be a non-empty string"),
    ("follow no run_id", b'{"cmd": "follow"}', "run_id is required"),
    ("run run_id", b'{"cmd": "run", "run_id": {}}', "run_id must be a non-empty string"),
]


def test_every_bad_request_gets_a_clear_answer(up: FirelinkProcess) -> None:
    for name, body, message in BAD_REQUESTS:
        messages = exchange(up, body + b"\n")
        assert len(messages) == 1, (name, messages)
        (answer,) = messages
        assert answer["ok"] is False, name
        assert message in answer["error"]["message"], (name, answer)
    assert up.runs() == []  # no bad trigger made a run
    assert up.status() is not None
    no_traceback(up)
    # A stop refused above left the daemon running; a proper one stops it.
    assert up.cli("stop", "--grace", "1s").returncode == 0
    assert up.wait_exit() == 0


def test_a_huge_limit_means_all_runs(up: FirelinkProcess) -> None:
    assert up.cli("trigger", "ok", "--wait").returncode == 0
    (answer,) = exchange(up, b'{"cmd": "runs", "limit": 100000000000000000000000000000}\n')
    assert answer["ok"] is True and len(answer["result"]["runs"]) == 1
    result = up.cli("runs", "--limit", str(10**30))
    assert result.returncode == 0, result.stderr
    no_traceback(up)
