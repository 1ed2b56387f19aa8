"""A real daemon with its HTTP server for the firelink-web tests: ``firelink run CONFIG
--http 127.0.0.1:<free port>`` in a subprocess, on a temporary state directory, with a known
token (``FIRELINK_HTTP_TOKEN``). Stopped by SIGINT (twice: at once) at the end.

Use the ``web_daemon`` fixture: ``web = web_daemon(CONFIG_TEXT)`` starts one and waits until
``/api/v1/health`` answers; ``web.api("GET", "/api/v1/jobs")`` sends the bearer token.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from firelink_core.testing import wait_for

FIRELINK = str(Path(sys.executable).with_name("firelink"))
TOKEN = "test-token-0123456789abcdef"

EXAMPLE_CONFIG = """\
jobs:
  - name: hello
    description: says hello to a parameter
    command: echo "hello $FIRELINK_PARAM_WHO"
    shell: true
    env: {HELLO_SECRET: env-value-never-shown}
    params:
      who: {type: string, default: world}
      count: {type: integer, default: 1}
      api_key: {type: string, secret: true, default: none-given}
  - name: slow
    command: for i in 1 2 3 4 5 6 7 8 9 10; do echo "line $i"; sleep 0.3; done
    shell: true
  - name: nightly
    trigger: cron
    schedule: "0 3 * * *"
    command: "true"
  - name: extract
    command: "true"
  - name: transform
    command: test -e "$WEB_TEST_FLAG"
    shell: true
    depends_on: [extract]
  - name: load
    command: "true"
    depends_on: [transform]
"""
"""The example the API and browser tests use: a job with parameters (one secret), a slow job
writing a line every 0.3 s, a cron job, and a chain extract -> transform -> load whose middle
fails until the file named by WEB_TEST_FLAG exists."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Answer:
    """An HTTP answer: ``status``, ``headers``, ``body`` (bytes), ``json()``, ``text``."""

    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.body = body

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", "replace")

    def json(self) -> Any:
        return json.loads(self.body)

    def __repr__(self) -> str:
        return f"<Answer {self.status} {self.text[:300]!r}>"


class WebDaemon:
    """One daemon with its HTTP server, its config, state directory and token."""

    def __init__(self, root: Path, config_text: str, token: str = TOKEN) -> None:
        self.root = root
        self.config = root / "firelink.yaml"
        self.config.write_text(textwrap.dedent(config_text))
        self.state_dir = root / "state"
        self.flag = root / "flag"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = token
        self.stderr_path = root / "daemon.stderr"
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("FIRELINK_")}
        self.env["FIRELINK_HTTP_TOKEN"] = token
        self.env["WEB_TEST_FLAG"] = str(self.flag)
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, *extra: str, timeout: float = 30.0) -> None:
        with open(self.stderr_path, "ab") as err:
            self.proc = subprocess.Popen(
                [
                    FIRELINK,
                    "run",
                    str(self.config),
                    "--state-dir",
                    str(self.state_dir),
                    "--http",
                    f"127.0.0.1:{self.port}",
                    *extra,
                ],
                stdin=subprocess.DEVNULL,
                stdout=err,
                stderr=err,
                env=self.env,
                cwd=self.root,
            )

        def up() -> bool:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(
                    f"the daemon exited with {self.proc.returncode}:\n{self.daemon_log()}"
                )
            try:
                return self.request("GET", "/api/v1/health", auth=False).status == 200
            except OSError:
                return False

        wait_for(up, timeout, interval=0.05, message="the HTTP server answers /api/v1/health")

    def daemon_log(self) -> str:
        try:
            return self.stderr_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()

    # HTTP ---------------------------------------------------------------------
    def request(
        self,
        method: str,
        path: str,
        *,
        body: Any = None,
        data: bytes | None = None,
        headers: dict[str, str] | None = None,
        auth: bool | str = True,
        timeout: float = 30.0,
    ) -> Answer:
        """One request; ``auth`` True sends the token, a string sends that token, False none."""
        sent = dict(headers or {})
        if auth:
            sent["Authorization"] = f"Bearer {self.token if auth is True else auth}"
        if body is not None:
            data = json.dumps(body).encode()
            sent.setdefault("Content-Type", "application/json")
        req = urllib.request.Request(self.url + path, data=data, method=method, headers=sent)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 - loopback
                return Answer(resp.status, resp.headers, resp.read())
        except urllib.error.HTTPError as exc:
            return Answer(exc.code, exc.headers, exc.read())

    def api(self, method: str, path: str, **kw: Any) -> Answer:
        return self.request(method, path, **kw)

    def cli(self, *args: str, timeout: float = 60.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [FIRELINK, *args, "--state-dir", str(self.state_dir)],
            capture_output=True,
            text=True,
            env=self.env,
            cwd=self.root,
            timeout=timeout,
        )

    def login_url(self) -> str:
        """A one-time login link, as ``firelink web-url`` prints it."""
        result = self.cli("web-url")
        assert result.returncode == 0, result.stderr
        return result.stdout.strip()

    def wait_run(self, run_id: str, states: set[str], timeout: float = 30.0) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            answer = self.api("GET", f"/api/v1/runs/{run_id}")
            if answer.status != 200:
                return None
            run = answer.json()["run"]
            return run if run["state"] in states else None

        return wait_for(reached, timeout, interval=0.05, message=f"run {run_id} reaches {states}")


@pytest.fixture
def web_daemon(tmp_path: Path) -> Iterator[Callable[..., WebDaemon]]:
    """A factory: ``web_daemon(config_text=EXAMPLE_CONFIG, *run_args)`` starts one daemon."""
    started: list[WebDaemon] = []

    def start(config_text: str = EXAMPLE_CONFIG, *extra: str, token: str = TOKEN) -> WebDaemon:
        root = tmp_path / f"d{len(started)}"
        root.mkdir()
        daemon = WebDaemon(root, config_text, token)
        started.append(daemon)
        daemon.start(*extra)
        return daemon

    yield start
    for daemon in started:
        daemon.stop()
