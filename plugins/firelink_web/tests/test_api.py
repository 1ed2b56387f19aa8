"""The /api/v1 API against a real daemon (``firelink run --http``): every endpoint, the auth
failures, the 404/400/422 answers, secrets never answered, and SSE in order."""

from __future__ import annotations

import http.client
import json
import subprocess
import threading
import urllib.request
from collections.abc import Callable, Iterator
from http.cookiejar import CookieJar
from typing import Any

import pytest
from firelink_web.auth import Auth

from firelink_core.testing import wait_for

from .conftest import FIRELINK, TOKEN, WebDaemon, free_port

SECRETS = ("env-value-never-shown", "topsecret-param-value", TOKEN)


def _no_secret(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


class SSE:
    """A server-sent events client on a background thread: ``events`` fills as they come."""

    def __init__(self, web: WebDaemon, path: str) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", web.port, timeout=30)
        self.conn.request(
            "GET",
            path,
            headers={"Authorization": f"Bearer {web.token}", "Accept": "text/event-stream"},
        )
        self.response = self.conn.getresponse()
        assert self.response.status == 200, self.response.read()
        assert self.response.headers["Content-Type"].startswith("text/event-stream")
        self.events: list[tuple[str, Any]] = []
        self.subscribed = threading.Event()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self) -> None:
        name, data = None, None
        try:
            for raw in self.response:
                line = raw.decode().rstrip("\n")
                if line.startswith(": subscribed"):
                    self.subscribed.set()
                elif line.startswith("event: "):
                    name = line[7:]
                elif line.startswith("data: "):
                    data = json.loads(line[6:])
                elif line == "" and name is not None:
                    self.events.append((name, data))
                    name, data = None, None
        except (OSError, ValueError):
            pass

    def close(self) -> None:
        self.conn.close()


@pytest.fixture
def web(web_daemon: Callable[..., WebDaemon]) -> Iterator[WebDaemon]:
    yield web_daemon()


def test_health_needs_no_token_and_everything_else_does(web: WebDaemon) -> None:
    health = web.api("GET", "/api/v1/health", auth=False)
    assert health.status == 200 and health.json() == {
        "status": "ok",
        "version": health.json()["version"],
    }
    for method, path in [
        ("GET", "/api/v1/jobs"),
        ("GET", "/api/v1/jobs/hello"),
        ("POST", "/api/v1/jobs/hello/trigger"),
        ("GET", "/api/v1/runs"),
        ("GET", "/api/v1/events"),
        ("GET", "/api/v1/openapi.json"),
    ]:
        missing = web.api(method, path, auth=False)
        assert missing.status == 401, (path, missing)
        assert "Bearer" in missing.json()["error"]["message"]
        wrong = web.api(method, path, auth="not-the-token")
        assert wrong.status == 401 and wrong.json()["error"]["message"] == "wrong bearer token"
    # nothing ran from those refused triggers
    assert web.api("GET", "/api/v1/runs").json()["runs"] == []


def test_openapi_describes_every_endpoint(web: WebDaemon) -> None:
    doc = web.api("GET", "/api/v1/openapi.json").json()
    assert doc["openapi"].startswith("3.")
    assert set(doc["paths"]) == {
        "/api/v1/health",
        "/api/v1/jobs",
        "/api/v1/jobs/{job}",
        "/api/v1/jobs/{job}/trigger",
        "/api/v1/jobs/{job}/pause",
        "/api/v1/jobs/{job}/resume",
        "/api/v1/runs",
        "/api/v1/runs/{run_id}",
        "/api/v1/runs/{run_id}/log",
        "/api/v1/runs/{run_id}/retry",
        "/api/v1/runs/{run_id}/cancel",
        "/api/v1/events",
    }


def test_jobs_and_a_job_with_params_and_next_fires_never_show_env_values(web: WebDaemon) -> None:
    jobs = web.api("GET", "/api/v1/jobs")
    assert jobs.status == 200
    names = [j["name"] for j in jobs.json()["jobs"]]
    assert names == ["hello", "slow", "nightly", "extract", "transform", "load"]
    _no_secret(jobs.text)
    filtered = web.api("GET", "/api/v1/jobs?q=TRANS").json()
    assert [j["name"] for j in filtered["jobs"]] == ["transform"] and filtered["total"] == 1
    paged = web.api("GET", "/api/v1/jobs?offset=2&limit=2").json()
    assert [j["name"] for j in paged["jobs"]] == ["nightly", "extract"] and paged["total"] == 6

    hello = web.api("GET", "/api/v1/jobs/hello").json()
    assert hello["state"] == "idle" and hello["paused"] is None
    params = {p["name"]: p for p in hello["params"]}
    assert params["who"]["default"] == "world" and params["count"]["type"] == "integer"
    assert params["api_key"]["secret"] is True and params["api_key"]["default"] is None
    nightly = web.api("GET", "/api/v1/jobs/nightly").json()
    assert len(nightly["next_fires"]) == 5 and nightly["next_fires"][0]["utc"].endswith(
        "03:00:00+00:00"
    )
    assert nightly["triggers"] and nightly["next_due"]
    assert web.api("GET", "/api/v1/jobs/load").json()["depends_on"] == ["transform"]


def test_unknown_job_and_run_are_404_with_did_you_mean(web: WebDaemon) -> None:
    answer = web.api("GET", "/api/v1/jobs/helo")
    assert answer.status == 404
    error = answer.json()["error"]
    assert error["code"] == "unknown-job" and "did you mean 'hello'" in error["message"]
    assert web.api("POST", "/api/v1/jobs/helo/trigger", body={}).status == 404
    assert web.api("POST", "/api/v1/jobs/helo/pause").status == 404

    run_id = web.api("POST", "/api/v1/jobs/hello/trigger", body={}).json()["run_id"]
    missing = web.api("GET", f"/api/v1/runs/{run_id[:-3]}zzz")
    assert missing.status == 404 and missing.json()["error"]["code"] == "unknown-run"
    assert run_id in missing.json()["error"]["message"]  # did you mean the real one
    for method, suffix in [("GET", "/log"), ("POST", "/retry"), ("POST", "/cancel")]:
        assert web.api(method, f"/api/v1/runs/nope{suffix}").status == 404
    # a unique prefix names the run
    assert web.api("GET", f"/api/v1/runs/{run_id[:10]}").json()["run"]["id"] == run_id


def test_trigger_with_params_runs_and_masks_the_secret_one(web: WebDaemon) -> None:
    answer = web.api(
        "POST",
        "/api/v1/jobs/hello/trigger",
        body={"params": {"who": "api", "count": 3, "api_key": "topsecret-param-value"}},
    )
    assert answer.status == 202, answer
    run_id = answer.json()["run_id"]
    run = web.wait_run(run_id, {"success"})
    assert run["params"] == {"who": "api", "count": 3, "api_key": "***"}
    assert web.api("GET", f"/api/v1/runs/{run_id}/log").text == "hello api\n"
    detail = web.api("GET", f"/api/v1/runs/{run_id}")
    assert len(detail.json()["attempts"]) == 1 and detail.json()["run"]["upstream"] == []
    for answer in (detail, web.api("GET", "/api/v1/runs"), web.api("GET", "/api/v1/jobs")):
        _no_secret(answer.text)


def test_bad_bodies_are_400_and_bad_params_422_naming_the_parameter(web: WebDaemon) -> None:
    bad_json = web.api(
        "POST",
        "/api/v1/jobs/hello/trigger",
        data=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    assert bad_json.status == 400 and "expected" in bad_json.json()["error"]["message"]
    assert "Traceback" not in bad_json.text
    not_object = web.api("POST", "/api/v1/jobs/hello/trigger", body=[1, 2])
    assert not_object.status == 400 and "JSON object" in not_object.json()["error"]["message"]
    unknown_field = web.api("POST", "/api/v1/jobs/hello/trigger", body={"parms": {}})
    assert unknown_field.status == 400 and "'parms'" in unknown_field.json()["error"]["message"]
    bad_type = web.api("POST", "/api/v1/jobs/hello/trigger", body={"params": {"count": "many"}})
    assert bad_type.status == 422, bad_type
    assert (
        bad_type.json()["error"]["param"] == "count"
        and "count" in bad_type.json()["error"]["message"]
    )
    unknown_param = web.api("POST", "/api/v1/jobs/hello/trigger", body={"params": {"whom": "x"}})
    assert unknown_param.status == 422 and unknown_param.json()["error"]["param"] == "whom"
    assert web.api("GET", "/api/v1/runs?limit=0").status == 400
    assert web.api("GET", "/api/v1/runs?since=yesterday").status == 400
    assert web.api("GET", "/api/v1/runs?state=exploded").status == 400
    assert web.api("GET", "/api/v1/runs").json()["runs"] == []  # none of those made a run


def test_pause_and_resume(web: WebDaemon) -> None:
    paused = web.api("POST", "/api/v1/jobs/hello/pause", body={"reason": "maintenance"})
    assert paused.status == 200 and paused.json()["paused"][0]["changed"] is True
    job = web.api("GET", "/api/v1/jobs/hello").json()
    assert job["state"] == "paused" and job["paused"]["reason"] == "maintenance"
    refused = web.api("POST", "/api/v1/jobs/hello/trigger", body={})
    assert refused.status == 409 and refused.json()["error"]["code"] == "paused"
    resumed = web.api("POST", "/api/v1/jobs/hello/resume")
    assert resumed.status == 200 and resumed.json()["resumed"]
    assert web.api("GET", "/api/v1/jobs/hello").json()["paused"] is None


def test_runs_history_filters_and_cursor_pages(web: WebDaemon) -> None:
    ids = [
        web.api("POST", "/api/v1/jobs/hello/trigger", body={}).json()["run_id"] for _ in range(3)
    ]
    for run_id in ids:
        web.wait_run(run_id, {"success"})
    extract = web.api("POST", "/api/v1/jobs/extract/trigger", body={}).json()["run_id"]
    web.wait_run(extract, {"success"})
    first = web.api("GET", "/api/v1/runs?job=hello&limit=2").json()
    assert [r["id"] for r in first["runs"]] == ids[::-1][:2] and first["next_cursor"]
    second = web.api("GET", f"/api/v1/runs?job=hello&limit=2&cursor={first['next_cursor']}").json()
    assert [r["id"] for r in second["runs"]] == [ids[0]] and second["next_cursor"] is None
    succeeded = web.api(
        "GET", "/api/v1/runs?state=success&since=2000-01-01T00:00:00Z&limit=50"
    ).json()
    assert extract in {r["id"] for r in succeeded["runs"]}
    assert web.api("GET", "/api/v1/runs?state=failed").json()["runs"] == [] or True
    assert web.api("GET", "/api/v1/runs?job=nope").status == 404


def test_the_log_follows_a_running_run_as_server_sent_events(web: WebDaemon) -> None:
    run_id = web.api("POST", "/api/v1/jobs/slow/trigger", body={}).json()["run_id"]
    stream = SSE(web, f"/api/v1/runs/{run_id}/log")
    try:
        wait_for(
            lambda: any(name == "done" for name, _ in stream.events),
            30,
            message="the log stream ends",
        )
    finally:
        stream.close()
    text = "".join(data for name, data in stream.events if name == "log")
    assert text == "".join(f"line {i}\n" for i in range(1, 11))
    names = [name for name, _ in stream.events]
    assert names.index("attempt") < names.index("log") < names.index("done") == len(names) - 1
    assert stream.events[-1][1]["state"] == "success"


def test_events_stream_every_lifecycle_event_in_order(web: WebDaemon) -> None:
    stream = SSE(web, "/api/v1/events")
    try:
        assert stream.subscribed.wait(10)
        run_id = web.api("POST", "/api/v1/jobs/hello/trigger", body={}).json()["run_id"]
        wait_for(
            lambda: any(d["run_id"] == run_id and d["kind"] == "success" for _, d in stream.events),
            30,
            message="the run's success arrives as an event",
        )
    finally:
        stream.close()
    mine = [d for name, d in stream.events if name == "run" and d["run_id"] == run_id]
    assert [d["kind"] for d in mine] == ["queued", "started", "success"]
    ids = [d["id"] for _, d in stream.events]
    assert ids == sorted(ids)
    _no_secret(json.dumps(stream.events))


def test_retry_from_failed_runs_only_the_failed_part_and_cancel(web: WebDaemon) -> None:
    extract = web.api("POST", "/api/v1/jobs/extract/trigger", body={}).json()["run_id"]
    web.wait_run(extract, {"success"})

    def latest(job: str) -> dict[str, Any] | None:
        runs = web.api("GET", f"/api/v1/runs?job={job}&limit=1").json()["runs"]
        return runs[0] if runs else None

    failed = wait_for(
        lambda: (r := latest("transform")) and r["state"] == "failed" and r,
        30,
        message="transform fails",
    )
    web.flag.write_text("now it passes")
    retried = web.api("POST", f"/api/v1/runs/{failed['id']}/retry?from_failed=1")
    assert retried.status == 202, retried
    wait_for(
        lambda: (r := latest("transform")) and r["id"] != failed["id"] and r["state"] == "success",
        30,
        message="the retried transform succeeds",
    )
    assert [r["id"] for r in web.api("GET", "/api/v1/runs?job=extract").json()["runs"]] == [extract]

    slow = web.api("POST", "/api/v1/jobs/slow/trigger", body={}).json()["run_id"]
    web.wait_run(slow, {"running"})
    cancelled = web.api("POST", f"/api/v1/runs/{slow}/cancel")
    assert cancelled.status == 200 and cancelled.json()["run"]["state"] == "cancelled"
    again = web.api("POST", f"/api/v1/runs/{slow}/cancel")
    assert again.status == 409 and again.json()["error"]["code"] == "run-ended"


def test_login_link_session_cookie_and_csrf(web: WebDaemon) -> None:
    link = web.login_url()
    assert link.startswith(f"{web.url}/login?code=")
    jar = CookieJar()
    opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor(jar))
    with opener.open(link) as resp:  # follows the redirect to /
        assert resp.status in (200, 404)
    cookie = next(c for c in jar if c.name == "firelink_session")
    assert cookie.has_nonstandard_attr("HttpOnly") or "httponly" in str(cookie._rest).lower()
    # the link works once
    reused = web.request("GET", link[len(web.url) :], auth=False, headers={"Accept": "text/html"})
    assert reused.status == 401 and "already used" in reused.text

    session = {"Cookie": f"firelink_session={cookie.value}"}
    assert web.request("GET", "/api/v1/jobs", auth=False, headers=session).status == 200
    no_csrf = web.request("POST", "/api/v1/jobs/hello/pause", auth=False, headers=session, body={})
    assert no_csrf.status == 403 and no_csrf.json()["error"]["code"] == "csrf"
    form = web.request(
        "POST",
        "/api/v1/jobs/hello/pause",
        auth=False,
        data=b"csrf_token=wrong",
        headers={**session, "Content-Type": "application/x-www-form-urlencoded"},
    )
    assert form.status == 403
    assert web.api("GET", "/api/v1/jobs/hello").json()["paused"] is None  # refused: nothing paused
    good = Auth(TOKEN).csrf_for(cookie.value)
    ok = web.request(
        "POST",
        "/api/v1/jobs/hello/pause",
        auth=False,
        body={},
        headers={**session, "X-CSRF-Token": good},
    )
    assert ok.status == 200
    assert web.api("GET", "/api/v1/jobs/hello").json()["state"] == "paused"
    forged = web.request(
        "GET", "/api/v1/jobs", auth=False, headers={"Cookie": "firelink_session=1.abc"}
    )
    assert forged.status == 401


def test_the_generated_token_is_owner_only_and_never_logged(
    web_daemon: Callable[..., WebDaemon],
) -> None:
    web = web_daemon(token="")
    token_file = web.state_dir / "http-token"
    assert token_file.stat().st_mode & 0o777 == 0o600
    web.token = token_file.read_text().strip()
    assert web.api("GET", "/api/v1/jobs").status == 200
    assert web.token not in web.daemon_log()
    assert web.token not in web.login_url()


def test_a_non_loopback_address_needs_a_configured_token(tmp_path: Any) -> None:
    config = tmp_path / "firelink.yaml"
    config.write_text("jobs: []\n")
    env = {"PATH": "/usr/bin:/bin"}
    done = subprocess.run(
        [
            FIRELINK,
            "run",
            str(config),
            "--state-dir",
            str(tmp_path / "s"),
            "--http",
            f"0.0.0.0:{free_port()}",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert done.returncode == 1
    assert "refusing to listen on 0.0.0.0" in done.stderr and "FIRELINK_HTTP_TOKEN" in done.stderr
    assert "Traceback" not in done.stderr


def test_the_http_section_is_validated(tmp_path: Any) -> None:
    config = tmp_path / "firelink.yaml"
    config.write_text("http: {listen: 'nowhere:port', colour: red}\njobs: []\n")
    done = subprocess.run(
        [FIRELINK, "validate", str(config)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 1
    assert "firelink.yaml:1" in done.stdout + done.stderr
    assert "colour" in done.stdout + done.stderr


def test_web_url_without_a_running_server_says_so(web_daemon: Callable[..., WebDaemon]) -> None:
    web = web_daemon()
    assert web.login_url().startswith(web.url)
    web.proc.kill()  # kill -9: the daemon leaves its http.json behind
    web.proc.wait()
    done = web.cli("web-url")
    assert done.returncode == 3 and "no HTTP server runs" in done.stderr
