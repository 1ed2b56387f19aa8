"""End-to-end fixtures: a real ``firelink run`` process on a temporary state directory, driven
only through the ``firelink`` command in subprocesses."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from firelink_core.testing import wait_for

FIRELINK = str(Path(sys.executable).with_name("firelink"))
"""The installed console script of the test virtualenv."""


def _default_sigint() -> None:
    signal.signal(signal.SIGINT, signal.SIG_DFL)


class FirelinkProcess:
    """One daemon under test, its config, its state directory and the client command."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.config = root / "firelink.yaml"
        self.state_dir = root / "state"
        self.proc: subprocess.Popen[bytes] | None = None
        self.stderr_path = root / "daemon.stderr"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FIRELINK_")}

    # config -------------------------------------------------------------
    def write_config(self, text: str) -> Path:
        self.config.write_text(textwrap.dedent(text))
        return self.config

    # the daemon -----------------------------------------------------------
    def start(self, *extra: str, wait: bool = True) -> subprocess.Popen[bytes]:
        assert self.proc is None or self.proc.poll() is not None, "already started"
        stderr = open(self.stderr_path, "ab")  # noqa: SIM115 - kept open by the child
        self.proc = subprocess.Popen(
            [FIRELINK, "run", str(self.config), "--state-dir", str(self.state_dir), *extra],
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=stderr,
            env=self.env,
            cwd=self.root,
        )
        stderr.close()
        if wait:
            self.wait_up()
        return self.proc

    def wait_up(self, timeout: float = 30.0) -> dict[str, Any]:
        def up() -> dict[str, Any] | None:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"the daemon exited with {self.proc.returncode}:\n{self.daemon_log()}")
            return self.status()

        return wait_for(up, timeout, interval=0.05, message="the daemon answers `firelink status`")

    def signal(self, sig: signal.Signals) -> None:
        assert self.proc is not None
        self.proc.send_signal(sig)

    def wait_exit(self, timeout: float = 60.0) -> int:
        assert self.proc is not None
        try:
            return self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            raise AssertionError(f"the daemon did not exit within {timeout}s:\n{self.daemon_log()}") from None

    def daemon_log(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def wait_log(self, text: str, timeout: float = 30.0) -> str:
        return wait_for(lambda: text in self.daemon_log() and self.daemon_log(), timeout, message=f"{text!r} in the daemon's log")

    # the client -------------------------------------------------------------
    def cli(self, *args: str, timeout: float = 60.0, state: bool = True) -> subprocess.CompletedProcess[str]:
        where = ["--state-dir", str(self.state_dir)] if state else []
        return subprocess.run(
            [FIRELINK, *args, *where], capture_output=True, text=True, env=self.env, cwd=self.root, timeout=timeout
        )

    def cli_popen(self, *args: str) -> subprocess.Popen[str]:
        """A client command left running (``logs -f``, ``trigger --wait``): the test ends it with
        SIGINT, as Ctrl-C would. SIGINT is reset to its default in the child because a suite run
        in the background (``cmd &`` without job control, ``nohup``) inherits it ignored, and an
        ignored SIGINT stays ignored across exec: the command would never see the Ctrl-C."""
        return subprocess.Popen(
            [FIRELINK, *args, "--state-dir", str(self.state_dir)],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=self.env, cwd=self.root,
            preexec_fn=_default_sigint,  # noqa: PLW1509 - a single-threaded test client
        )

    def status(self) -> dict[str, Any] | None:
        """``firelink status --json`` while the daemon answers, else ``None``."""
        result = self.cli("status", "--json")
        if result.returncode != 0:
            return None
        return json.loads(result.stdout)

    def job_status(self, name: str) -> dict[str, Any] | None:
        info = self.status() or {}
        return next((j for j in info.get("jobs", []) if j["name"] == name), None)

    def runs(self, *args: str) -> list[dict[str, Any]]:
        result = self.cli("runs", "--json", *args)
        assert result.returncode == 0, result.stderr
        return json.loads(result.stdout)

    def run_record(self, run_id: str) -> dict[str, Any] | None:
        return next((r for r in self.runs("--limit", "1000") if r["id"] == run_id), None)

    def wait_run_state(self, run_id: str, states: set[str], timeout: float = 30.0) -> dict[str, Any]:
        return wait_for(
            lambda: (r := self.run_record(run_id)) is not None and r["state"] in states and r,
            timeout, interval=0.05, message=f"run {run_id} reaches {states}",
        )

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def daemon(tmp_path: Path) -> Iterator[FirelinkProcess]:
    daemon = FirelinkProcess(tmp_path)
    yield daemon
    if daemon.proc is not None and daemon.proc.poll() is None:
        daemon.proc.send_signal(signal.SIGINT)
        daemon.proc.send_signal(signal.SIGINT)  # the second one stops at once
        try:
            daemon.proc.wait(15)
        except subprocess.TimeoutExpired:
            daemon.kill()
