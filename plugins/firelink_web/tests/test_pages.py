"""The dashboard's pages over HTTP against a real daemon (no browser; the conftest's example
config unless said): server-side pages and filters over 10,000 jobs, 404s with "did you mean",
no secret on any page, the static assets shipped in the package."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import Any


def _page(web: Any, path: str, status: int = 200) -> str:
    answer = web.api("GET", path, headers={"Accept": "text/html"})
    assert answer.status == status, answer
    assert answer.headers["Content-Type"].startswith("text/html")
    return answer.text


def _rows(html: str) -> list[str]:
    return re.findall(r'data-job-row="([^"]+)"', html)


def test_ten_thousand_jobs_are_paged_and_filtered_on_the_server(
    web_daemon: Callable[..., Any],
) -> None:
    lines = ["jobs:"]
    for i in range(10_000):
        lines += [f"  - name: job{i:05d}", "    trigger: manual", '    command: ["true"]']
    web = web_daemon("\n".join(lines) + "\n")

    started = time.monotonic()
    first = _page(web, "/jobs")
    elapsed = time.monotonic() - started
    assert _rows(first) == [f"job{i:05d}" for i in range(100)]
    assert "page 1 of 100" in first and 'rel="next"' in first
    assert len(first) < 200_000  # a page, not the whole list
    assert elapsed < 5, elapsed  # generous: the bench measures the real number

    last = _page(web, "/jobs?page=100")
    assert _rows(last)[-1] == "job09999" and 'rel="next"' not in last
    assert _rows(_page(web, "/jobs?page=999")) == _rows(last)  # past the end: the last page

    found = _page(web, "/jobs?q=JOB0999")
    assert _rows(found) == [f"job0999{i}" for i in range(10)]
    assert "(10 of 10000)" in found

    assert web.api("POST", "/api/v1/jobs/job04242/pause", body={}).status == 200
    paused = _page(web, "/jobs?state=paused")
    assert _rows(paused) == ["job04242"]


def test_unknown_job_and_run_pages_are_404_with_suggestions(
    web_daemon: Callable[..., Any],
) -> None:
    web = web_daemon()
    html = _page(web, "/jobs/helo", 404)
    assert 'href="/jobs/hello"' in html and "Traceback" not in html
    assert "no run" in _page(web, "/runs/0123456789abcdef", 404).lower()
    assert 'href="/jobs/hello"' in _page(web, "/graph?job=helo", 404)
    for fragment in ("row", "head", "runs"):
        assert web.api("GET", f"/jobs/hello/{fragment}").status == 200
        assert web.api("GET", f"/jobs/helo/{fragment}").status == 404


def test_pages_never_show_secrets(web_daemon: Callable[..., Any]) -> None:
    web = web_daemon()
    answer = web.api(
        "POST",
        "/jobs/hello/trigger",
        data=b"param.who=pages&param.api_key=top-secret-param",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    )
    assert answer.status == 200, answer  # followed the 303 to the run page
    run_id = re.search(r'data-run="([0-9a-f]{32})"', answer.text).group(1)  # type: ignore[union-attr]
    web.wait_run(run_id, {"success"})
    pages = [
        _page(web, "/jobs"),
        _page(web, "/jobs/hello"),
        _page(web, "/runs"),
        _page(web, f"/runs/{run_id}"),
        _page(web, f"/runs/{run_id}/facts"),
        _page(web, "/graph"),
    ]
    run_page = pages[3]
    assert "hello pages" in run_page and "api_key=***" in run_page
    for html in pages:
        assert "top-secret-param" not in html
        assert "env-value-never-shown" not in html
        assert web.token not in html


def test_without_auth_pages_are_refused_and_static_assets_are_public(
    web_daemon: Callable[..., Any],
) -> None:
    web = web_daemon()
    assert web.api("GET", "/jobs", auth=False).status == 401
    assert web.api("GET", "/jobs", auth="wrong-token").status == 401
    assert web.api("POST", "/jobs/hello/pause", auth=False, data=b"").status == 401
    for name, kind in (("firelink.js", "javascript"), ("firelink.css", "text/css")):
        answer = web.api("GET", f"/static/{name}", auth=False)
        assert answer.status == 200 and kind in answer.headers["Content-Type"]
    # The root leads to the jobs page.
    assert "<h1>Jobs" in _page(web, "/")


def test_a_link_cannot_make_a_page_say_something(web_daemon: Callable[..., Any]) -> None:
    web = web_daemon()
    for query in ("flash=you+are+hacked", "done=you+are+hacked", "done=paused&kind=x"):
        html = _page(web, f"/jobs?{query}")
        assert "hacked" not in html
    assert '<div class="flash' in _page(web, "/jobs/hello?done=paused")


def test_the_trigger_form_is_built_from_params_and_refusals_name_the_parameter(
    web_daemon: Callable[..., Any],
) -> None:
    web = web_daemon(
        """\
        jobs:
          - name: report
            trigger: manual
            params:
              day: {type: string, pattern: "^[0-9]{4}-[0-9]{2}-[0-9]{2}$", description: the day}
              format: {enum: [pdf, html], default: pdf}
              draft: {type: boolean, default: false}
              token: {type: string, secret: true, default: not-shown-default}
            command: ["sh", "-c", "echo $FIRELINK_PARAM_DAY $FIRELINK_PARAM_FORMAT"]
        """
    )
    form = _page(web, "/jobs/report")
    assert 'name="param.day"' in form and "required" in form and "the day" in form
    assert '<option value="html"' in form and '<option value="pdf" selected' in form
    assert '<option value="false" selected' in form
    assert 'type="password"' in form and "not-shown-default" not in form
    refused = web.api(
        "POST",
        "/jobs/report/trigger",
        data=b"param.day=yesterday&param.format=pdf",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"},
    )
    assert refused.status == 422
    assert "parameter &#39;day&#39;" in refused.text and "yesterday" in refused.text
    assert web.api("GET", "/api/v1/runs?job=report").json()["runs"] == []
    started = web.api(
        "POST",
        "/jobs/report/trigger",
        data=b"param.day=2026-05-01&param.format=html&param.draft=true",
        headers={"Content-Type": "application/x-www-form-urlencoded", "Accept": "text/html"},
    )
    assert started.status == 200 and "day=2026-05-01" in started.text, started
