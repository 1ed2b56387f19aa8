"""The real daemon on the postgres storage, driven through the ``firelink`` command only: a
triggered run is stored in PostgreSQL, survives a ``kill -9``, and is read back by
``firelink runs`` with the daemon down; the DSN's password appears nowhere."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from firelink_core.testing import wait_for

pytestmark = pytest.mark.postgres

FIRELINK = str(Path(sys.executable).with_name("firelink"))
PASSWORD = "Sup3r-s3cret-pw"  # the test cluster trusts loopback: any password is accepted


class Daemon:
    def __init__(self, root: Path, dsn: str) -> None:
        self.root = root
        self.config = root / "firelink.yaml"
        self.state_dir = root / "state"
        self.log = root / "daemon.log"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FIRELINK_")}
        self.env["FIRELINK_DSN"] = dsn
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(
                [FIRELINK, "run", str(self.config), "--state-dir", str(self.state_dir)],
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=out,
                env=self.env,
                cwd=self.root,
            )
        wait_for(self.up, 30, interval=0.05, message="the daemon answers `firelink status`")

    def up(self) -> bool:
        if self.proc is not None and self.proc.poll() is not None:
            raise AssertionError(
                f"the daemon exited with {self.proc.returncode}:\n{self.log.read_text()}"
            )
        return self.cli("status").returncode == 0

    def cli(
        self, *args: str, env: dict[str, str] | None = None
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [FIRELINK, *args, "--state-dir", str(self.state_dir)],
            capture_output=True,
            text=True,
            env=self.env if env is None else env,
            cwd=self.root,
            timeout=60,
        )

    def stop(self, sig: signal.Signals = signal.SIGINT) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(30)


@pytest.fixture
def daemon(postgres_server, schema_name: str, tmp_path: Path):
    dsn = f"postgresql://firelink:{PASSWORD}@127.0.0.1:{postgres_server.port}/postgres"
    daemon = Daemon(tmp_path, dsn)
    daemon.config.write_text(
        textwrap.dedent(f"""\
        storage:
          type: postgres
          dsn: ${{FIRELINK_DSN}}
          schema: {schema_name}
          pool_size: 3
        jobs:
          - name: hello
            trigger: manual
            command: ["sh", "-c", "echo hello from $FIRELINK_JOB"]
        """)
    )
    yield daemon
    daemon.stop(signal.SIGKILL)


def _runs(daemon: Daemon, *args: str) -> list[dict[str, Any]]:
    result = daemon.cli("runs", "--json", "--config", str(daemon.config), *args)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def test_runs_are_kept_in_postgres_across_a_kill_and_read_with_the_daemon_down(
    daemon: Daemon,
) -> None:
    daemon.start()
    first = daemon.cli("trigger", "hello", "--wait")
    assert first.returncode == 0, first.stdout + first.stderr
    daemon.stop(signal.SIGKILL)  # nothing acknowledged may be lost

    daemon.start()
    second = daemon.cli("trigger", "hello", "--wait")
    assert second.returncode == 0, second.stdout + second.stderr
    live = _runs(daemon, "hello")
    daemon.stop()

    offline = _runs(daemon, "hello")  # the daemon is down: read through open_readonly
    assert [r["state"] for r in offline] == ["success", "success"]
    assert [r["id"] for r in offline] == [r["id"] for r in live]
    logs = daemon.cli(
        "logs", "hello", offline[0]["id"][:8], "--config", str(daemon.config)
    )  # a short id
    assert "hello from hello" in logs.stdout, logs.stdout + logs.stderr

    everything = daemon.log.read_text() + json.dumps(offline) + logs.stdout + logs.stderr
    assert PASSWORD not in everything


def test_reading_the_history_without_the_dsn_says_so(daemon: Daemon) -> None:
    daemon.start()
    assert daemon.cli("trigger", "hello", "--wait").returncode == 0
    daemon.stop()
    env = {k: v for k, v in daemon.env.items() if k != "FIRELINK_DSN"}
    result = daemon.cli("runs", "--config", str(daemon.config), env=env)
    assert result.returncode == 1
    assert "${FIRELINK_DSN} is not set" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_a_second_daemon_on_the_same_schema_is_refused(daemon: Daemon, tmp_path: Path) -> None:
    daemon.start()
    other_state = tmp_path / "other-state"
    second = subprocess.run(
        [FIRELINK, "run", str(daemon.config), "--state-dir", str(other_state)],
        capture_output=True,
        text=True,
        env=daemon.env,
        cwd=daemon.root,
        timeout=60,
    )
    assert second.returncode != 0
    assert "is in use by another firelink daemon: one daemon per schema" in second.stderr, (
        second.stderr
    )
    assert "Traceback" not in second.stderr and PASSWORD not in second.stderr
    assert daemon.cli("trigger", "hello", "--wait").returncode == 0  # the first one is unharmed
