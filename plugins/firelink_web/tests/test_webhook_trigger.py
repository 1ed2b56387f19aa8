"""The webhook trigger: signatures, limits, parameters and the body file, through a real
engine (SQLite state, real job processes) and a real aiohttp server on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from aiohttp import web
from firelink_web import hooks
from firelink_web.context import CONTEXT
from firelink_web.signatures import (
    FIRELINK_HEADER,
    GITHUB_HEADER,
    SignatureError,
    sign_firelink,
    sign_github,
    verify,
)
from firelink_web.trigger import BODY_ENV, WebhookStopped, WebhookTrigger, set_served

from firelink_core import parse_config
from firelink_core.plugin_api import RunState, Trigger
from firelink_core.testing import (
    EngineHarness,
    TriggerContract,
    TriggerUnderTest,
    async_wait_for,
    run_engine,
    wait_for,
)

SECRET = "s3cr3t-hook-key"

# The job records its FIRELINK_ variables and the body file's bytes, one file per run.
RECORD = (
    "import json, os, pathlib; "
    "env = {k: v for k, v in os.environ.items() if k.startswith('FIRELINK_')}; "
    "env['BODY'] = pathlib.Path(env['FIRELINK_WEBHOOK_BODY']).read_text(); "
    "pathlib.Path(os.environ['OUT'], env['FIRELINK_RUN_ID'] + '.json').write_text(json.dumps(env))"
)


def _config(out: Path, extra: str = "") -> str:
    return f"""
jobs:
  - name: deploy
    trigger: webhook
    secret: "{SECRET}"
    max_body: 1KiB
    params:
      ref: {{type: string, default: main}}
      count: {{type: integer, default: 1}}
      token: {{type: string, default: none, secret: true}}
    command: {json.dumps([sys.executable, "-c", RECORD])}
    env: {{OUT: "{out}"}}
{extra}"""


def _seen(out: Path) -> list[dict[str, str]]:
    return [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]


@contextlib.asynccontextmanager
async def serving(
    tmp_path: Path, extra: str = ""
) -> AsyncIterator[tuple[EngineHarness, str, Path]]:
    """A real engine with the webhook job and the hooks routes on a loopback port."""
    out = tmp_path / "out"
    out.mkdir()
    async with run_engine(_config(out, extra), tmp_path) as h:
        app = web.Application()
        app[CONTEXT] = SimpleNamespace(state_dir=h.config.state_dir)  # type: ignore[assignment]
        hooks.setup(app)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            yield h, f"http://127.0.0.1:{port}", out
        finally:
            await runner.cleanup()


async def _post(url: str, body: bytes, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(url, data=body, headers=headers) as resp,
    ):
        return resp.status, await resp.json()


async def _get(url: str, token: str) -> tuple[int, str]:
    headers = {"Authorization": f"Bearer {token}"}
    async with aiohttp.ClientSession() as session, session.get(url, headers=headers) as resp:
        return resp.status, await resp.text()


def _signed(body: bytes, *, secret: str = SECRET, at: float | None = None) -> dict[str, str]:
    stamp = int(time.time() if at is None else at)
    return {FIRELINK_HEADER: sign_firelink(secret, body, stamp), "Content-Type": "application/json"}


async def _nothing_stored(h: EngineHarness) -> None:
    await h.settle()
    assert await h.runs() == []
    assert await h.storage.pending_events() == []


# --------------------------------------------------------------------------- signatures


def test_github_signature_holds_for_its_body_only() -> None:
    body = b'{"ref": "v1"}'
    header = {GITHUB_HEADER: sign_github(SECRET, body)}
    assert verify(header, body, SECRET, now=time.time()).scheme == "github"
    with pytest.raises(SignatureError, match="does not match"):
        verify(header, body + b" ", SECRET, now=time.time())
    with pytest.raises(SignatureError, match="does not match"):
        verify(header, body, "another secret", now=time.time())
    with pytest.raises(SignatureError, match="sha256="):
        verify({GITHUB_HEADER: "sha1=abc"}, body, SECRET, now=time.time())


def test_firelink_signature_refuses_a_timestamp_over_five_minutes_away() -> None:
    body = b"payload"
    now = 1_800_000_000.0
    fresh = {FIRELINK_HEADER: sign_firelink(SECRET, body, int(now) - 299)}
    assert verify(fresh, body, SECRET, now=now).scheme == "firelink"
    for stamp in (int(now) - 301, int(now) + 301):
        with pytest.raises(SignatureError, match="more than 300 seconds"):
            verify({FIRELINK_HEADER: sign_firelink(SECRET, body, stamp)}, body, SECRET, now=now)
    # The timestamp is signed: moving it forward breaks the signature.
    digest = fresh[FIRELINK_HEADER].split("v1=")[1]
    moved = {FIRELINK_HEADER: f"t={int(now)},v1={digest}"}
    with pytest.raises(SignatureError, match="does not match"):
        verify(moved, body, SECRET, now=now)


def test_missing_or_malformed_signatures_say_what_is_expected() -> None:
    with pytest.raises(SignatureError, match="missing signature"):
        verify({}, b"x", SECRET, now=time.time())
    with pytest.raises(SignatureError, match="t=<unix seconds>,v1="):
        verify({FIRELINK_HEADER: "v1=abc"}, b"x", SECRET, now=time.time())
    with pytest.raises(SignatureError, match="no secret"):
        verify({GITHUB_HEADER: sign_github("", b"x")}, b"x", "", now=time.time())


def test_a_refusal_never_shows_the_expected_signature() -> None:
    body = b"{}"
    right = sign_github(SECRET, body).split("=")[1]
    try:
        verify({GITHUB_HEADER: "sha256=00"}, body, SECRET, now=time.time())
    except SignatureError as exc:
        assert right not in str(exc) and SECRET not in str(exc)


def test_options_are_checked() -> None:
    assert WebhookTrigger.check({"secret": "x", "max_body": "2MiB", "keep_bodies": "1d"}) == []
    problems = WebhookTrigger.check({"secret": "x", "max_body": "lots", "keep_bodies": "soon"})
    assert [p.path for p in problems] == [("max_body",), ("keep_bodies",)]


# --------------------------------------------------------------------------- through the engine


def test_a_signed_post_makes_one_run_with_the_body_file_and_parameters(tmp_path: Path) -> None:
    # "token" names a secret parameter: a body never sets one (it keeps its default);
    # "other" names none: it is only in the body file.
    body2 = json.dumps({"ref": "v2.1", "count": "3", "token": "x", "other": {"a": 1}}).encode()

    async def main() -> None:
        async with serving(tmp_path) as (h, url, out):
            status, answer = await _post(f"{url}/hooks/deploy", body2, _signed(body2))
            assert status == 202, answer
            (run,) = await h.wait_runs("deploy", 1)
            assert run.state is RunState.SUCCESS
            assert run.event_id == answer["event_id"]
            assert run.options["params"] == {"ref": "v2.1", "count": 3, "token": "***"}

    asyncio.run(main())
    (env,) = _seen(tmp_path / "out")
    assert env["BODY"] == body2.decode()
    assert env["FIRELINK_PARAM_REF"] == "v2.1" and env["FIRELINK_PARAM_COUNT"] == "3"
    assert env["FIRELINK_PARAM_TOKEN"] == "none"
    assert env["FIRELINK_TRIGGER"] == "webhook"
    event = json.loads(env["FIRELINK_EVENT"])
    assert event["signature"] == "firelink" and event["bytes"] == len(body2)
    path = Path(env[BODY_ENV])
    assert path.is_relative_to(tmp_path) and (path.stat().st_mode & 0o777) == 0o600


def test_github_signed_non_json_body_runs_with_the_defaults(tmp_path: Path) -> None:
    body = b"plain text, not JSON"

    async def main() -> None:
        async with serving(tmp_path) as (h, url, _):
            headers = {GITHUB_HEADER: sign_github(SECRET, body), "X-GitHub-Event": "push"}
            status, answer = await _post(f"{url}/hooks/deploy", body, headers)
            assert status == 202, answer
            (run,) = await h.wait_runs("deploy", 1)
            assert run.state is RunState.SUCCESS and run.payload["github_event"] == "push"

    asyncio.run(main())
    (env,) = _seen(tmp_path / "out")
    assert env["BODY"] == body.decode() and env["FIRELINK_PARAM_REF"] == "main"


def test_bad_signature_replay_and_oversize_store_nothing(tmp_path: Path) -> None:
    body = b'{"ref": "x"}'

    async def main() -> None:
        async with serving(tmp_path) as (h, url, _):
            hook = f"{url}/hooks/deploy"
            refused = [
                await _post(hook, body, {}),
                await _post(hook, body, _signed(body, secret="wrong")),
                await _post(hook, body, {GITHUB_HEADER: "sha256=" + "0" * 64}),
                await _post(hook, body, _signed(body, at=time.time() - 301)),  # a replay
            ]
            assert [status for status, _ in refused] == [401, 401, 401, 401], refused
            assert all(SECRET not in json.dumps(answer) for _, answer in refused)
            big = b"x" * 1025
            status, answer = await _post(hook, big, _signed(big))
            assert status == 413 and "max_body" in answer["error"]

            async def chunks() -> AsyncIterator[bytes]:  # no Content-Length: counted as it comes
                for _ in range(8):
                    yield b"y" * 512

            chunked = b"y" * 4096
            status, answer = await _post(hook, chunks(), _signed(chunked))  # type: ignore[arg-type]
            assert status == 413, answer
            await _nothing_stored(h)
            assert not list((h.config.state_dir / "webhooks").rglob("*.body"))

    asyncio.run(main())
    assert _seen(tmp_path / "out") == []


def test_invalid_parameter_is_422_naming_it_and_the_same_request_twice_runs_once(
    tmp_path: Path,
) -> None:
    async def main() -> None:
        async with serving(tmp_path) as (h, url, _):
            hook = f"{url}/hooks/deploy"
            bad = b'{"count": "many"}'
            status, answer = await _post(hook, bad, _signed(bad))
            assert status == 422 and answer["param"] == "count" and "integer" in answer["error"]
            await _nothing_stored(h)

            good = b'{"count": 2}'
            headers = _signed(good)
            first = await _post(hook, good, headers)
            second = await _post(hook, good, headers)  # the same signed request again
            assert first[0] == 202 and second == (200, {"duplicate": True})
            await h.settle()
            runs = await h.wait_runs("deploy", 1)
            assert len(runs) == 1 and runs[0].options["params"]["count"] == 2

    asyncio.run(main())


def test_unknown_job_or_a_job_without_webhook_is_404(tmp_path: Path) -> None:
    extra = """
  - name: other
    trigger: manual
    command: ["true"]
"""

    async def main() -> None:
        async with serving(tmp_path, extra) as (h, url, _):
            for job in ("nope", "other"):
                status, answer = await _post(f"{url}/hooks/{job}", b"{}", _signed(b"{}"))
                assert status == 404 and "webhook" in answer["error"]
            await _nothing_stored(h)

    asyncio.run(main())


def test_a_paused_job_holds_the_event_and_runs_it_on_resume(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(tmp_path) as (h, url, _):
            await h.engine.pause(["deploy"])
            status, _ = await _post(f"{url}/hooks/deploy", b"{}", _signed(b"{}"))
            assert status == 202
            await h.settle()
            assert await h.runs("deploy") == []
            await h.engine.resume(["deploy"])
            (run,) = await h.wait_runs("deploy", 1)
            assert run.state is RunState.SUCCESS

    asyncio.run(main())


def test_old_bodies_are_pruned_when_a_request_arrives(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(tmp_path) as (h, url, _):
            folder = h.config.state_dir / "webhooks" / "deploy"
            folder.mkdir(parents=True, exist_ok=True)
            old = folder / "1-old.body"
            old.write_bytes(b"old")
            stamp = time.time() - 8 * 86400
            os.utime(old, (stamp, stamp))
            status, _ = await _post(f"{url}/hooks/deploy", b"{}", _signed(b"{}"))
            assert status == 202
            await async_wait_for(lambda: not old.exists(), timeout=5)
            await h.wait_runs("deploy", 1)

    asyncio.run(main())


def test_the_trigger_shows_starting_until_the_http_server_listens(tmp_path: Path) -> None:
    def health(h: EngineHarness) -> str:
        (job,) = [j for j in h.engine.status() if j.name == "deploy"]
        return job.health["deploy#0"].state

    async def main() -> None:
        alone = tmp_path / "alone"
        alone.mkdir()
        async with run_engine(_config(alone), alone) as h:
            assert health(h) == "starting"  # no server: the job cannot fire
        async with serving(tmp_path) as (h, _, _):
            assert health(h) == "ok"

    asyncio.run(main())


# --------------------------------------------------------------------------- the real daemon

FIRELINK = str(Path(sys.executable).with_name("firelink"))


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _start_daemon(root: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
    with open(root / "daemon.log", "ab") as log:
        return subprocess.Popen(
            [
                FIRELINK,
                "run",
                str(root / "firelink.yaml"),
                "--state-dir",
                str(root / "state"),
                "--http",
                f"127.0.0.1:{_free_port()}",
            ],
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=log,
            env=env,
            cwd=root,
        )


def _url(root: Path, proc: subprocess.Popen[bytes]) -> str:
    """The server's address once it listens (the daemon writes it to ``http.json``)."""

    def listening() -> str | None:
        if proc.poll() is not None:
            raise AssertionError(f"the daemon exited: {(root / 'daemon.log').read_text()}")
        try:
            return json.loads((root / "state" / "http.json").read_text())["url"]
        except (FileNotFoundError, ValueError, KeyError):
            return None

    return wait_for(listening, 30, interval=0.05, message="the daemon's HTTP server listens")


def _runs(root: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    result = subprocess.run(
        [FIRELINK, "runs", "--json", "--state-dir", str(root / "state")],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _done(runs: list[dict[str, Any]], event_id: str) -> dict[str, Any] | None:
    """The successful run doing the event's work: its run, or the run retrying it after the
    crash (the kill may land before its run started, or during it)."""
    (first,) = [r for r in runs if r["event_id"] == event_id] or [None]
    if first is None:
        return None
    for run in runs:
        if run["state"] == "success" and (
            run is first or run["options"].get("recovery_of") == first["id"]
        ):
            return run
    return None


def test_kill_9_right_after_the_202_still_runs_the_job_after_restart(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (tmp_path / "firelink.yaml").write_text(_config(out).replace(f'"{SECRET}"', "${HOOK_SECRET}"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIRELINK_")}
    env["HOOK_SECRET"] = SECRET
    env["FIRELINK_HTTP_TOKEN"] = "web-token-for-the-test"
    body = b'{"ref": "release-7"}'
    proc = _start_daemon(tmp_path, env)
    try:
        url = _url(tmp_path, proc)
        status, answer = asyncio.run(_post(f"{url}/hooks/deploy", body, _signed(body)))
        proc.kill()  # SIGKILL as soon as the 202 is read
        proc.wait(30)
        assert status == 202, answer
        (tmp_path / "state" / "http.json").unlink(missing_ok=True)  # left by the killed daemon
        proc = _start_daemon(tmp_path, env)
        url = _url(tmp_path, proc)
        run = wait_for(
            lambda: _done(_runs(tmp_path, env), answer["event_id"]),
            60,
            interval=0.1,
            message="the event stored before the kill is run to success",
        )
        # The secret is in no answer of the API or the dashboard about the job.
        for path in ("/api/v1/jobs/deploy", "/jobs/deploy", f"/api/v1/runs/{run['id']}"):
            status, text = asyncio.run(_get(url + path, env["FIRELINK_HTTP_TOKEN"]))
            assert status == 200 and SECRET not in text, (path, status)
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    seen = [env for env in _seen(out) if env["FIRELINK_RUN_ID"] == run["id"]]
    assert (
        seen and seen[0]["BODY"] == body.decode() and seen[0]["FIRELINK_PARAM_REF"] == "release-7"
    )
    log = (tmp_path / "daemon.log").read_text()
    assert SECRET not in log and "Traceback" not in log


# --------------------------------------------------------------------------- the contract


class TestWebhookTriggerContract(TriggerContract):
    """What every trigger owes the engine; the contract's state directory is served (as the
    daemon's HTTP server does), and a fire is a signed request handed to the trigger."""

    @pytest.fixture
    def trigger_under_test(self, tmp_path: Path) -> Iterator[TriggerUnderTest]:
        async def fire(trigger: Trigger) -> None:
            assert isinstance(trigger, WebhookTrigger)
            with contextlib.suppress(WebhookStopped):
                await trigger.receive(b'{"a": 1}', _signed(b'{"a": 1}'))

        set_served(tmp_path, True)
        try:
            yield TriggerUnderTest(WebhookTrigger, {"secret": SECRET}, fire, quiet_period=0.3)
        finally:
            set_served(tmp_path, False)


def test_a_reload_with_a_new_secret_takes_effect_at_once(tmp_path: Path) -> None:
    async def main() -> None:
        async with serving(tmp_path) as (h, url, out):
            text = _config(out).replace(SECRET, "rotated-secret")
            config, _ = parse_config(
                text,
                str(tmp_path / "firelink.yaml"),
                plugins=h.engine.plugins,
                state_dir=tmp_path,
                interpolate=True,
            )
            result = await h.engine.reload(dataclasses.replace(config, state_dir=tmp_path))
            assert result.changed == ["deploy"]
            old = await _post(f"{url}/hooks/deploy", b"{}", _signed(b"{}"))
            new = await _post(f"{url}/hooks/deploy", b"{}", _signed(b"{}", secret="rotated-secret"))
            assert old[0] == 401 and new[0] == 202, (old, new)
            assert len(await h.wait_runs("deploy", 1)) == 1

    asyncio.run(main())
