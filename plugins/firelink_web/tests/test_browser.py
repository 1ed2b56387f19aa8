"""The dashboard in a real browser: Debian's chromium driven by Playwright's Python package,
against a real ``firelink run --http`` daemon, logged in through the link ``firelink
web-url`` prints. No browser is downloaded: the tests use ``/usr/bin/chromium`` (scripts/test
installs it) and skip loudly without it (fail on CI, ``FIRELINK_REQUIRE_SERVERS=1``).

A screenshot of each page is saved under ``tests/screenshots/`` (git-ignored), the tests'
artifact.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from firelink_core.testing import wait_for

pytestmark = pytest.mark.browser

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = Path(__file__).parent / "screenshots"
REPO = Path(__file__).resolve().parents[3]
WAIT = 30_000
"""Milliseconds a page waits for what it expects."""

CONFIG = """\
    jobs:
      - name: greet
        description: Says hello, slowly.
        trigger: manual
        params:
          who: {type: string, default: world, description: who to greet}
          times: {type: integer, default: 3}
          api_key: {type: string, secret: true, default: none-given}
        command: ["sh", "-c", "for i in $(seq 1 $FIRELINK_PARAM_TIMES); do echo \\"hello $FIRELINK_PARAM_WHO $i\\"; sleep 0.5; done"]
      - name: extract
        trigger: manual
        command: ["sh", "-c", "echo extracted"]
      - name: transform
        depends_on: [extract]
        command: ["sh", "-c", "echo transforming; test -e \\"$WEB_TEST_FLAG\\" || { echo no flag; exit 3; }"]
      - name: load
        depends_on: [transform]
        command: ["sh", "-c", "echo loaded"]
      - name: nightly
        description: A schedule, to show next fires.
        trigger: cron
        schedule: "0 3 * * *"
        command: ["true"]
"""
"""A job with a parameter form (one secret) writing a line every 0.5 s, a chain extract ->
transform -> load whose middle fails until the file named by WEB_TEST_FLAG exists, a cron job."""


def _unavailable(reason: str) -> None:
    message = f"no browser for the dashboard tests: {reason}"
    if os.environ.get("FIRELINK_REQUIRE_SERVERS") == "1":
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def runs(web: Any, job: str) -> list[dict[str, Any]]:
    """The job's runs, newest first (through the API)."""
    answer = web.api("GET", f"/api/v1/runs?job={job}&limit=100")
    assert answer.status == 200, answer
    return answer.json()["runs"]


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not os.access(CHROMIUM, os.X_OK):
        _unavailable(
            f"{CHROMIUM} is missing (apt-get install chromium; scripts/test does it as root)"
        )
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        _unavailable("the playwright package is not installed (scripts/dev-install installs it)")
    SCREENSHOTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def web(web_daemon: Callable[..., Any]) -> Any:
    """A real daemon (the conftest's ``web_daemon``) serving CONFIG."""
    return web_daemon(CONFIG)


def _login(browser: Any, web: Any) -> tuple[Any, Any]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.set_default_timeout(WAIT)
    page.goto(web.login_url())
    assert page.url.startswith(web.url), page.url
    return context, page


@pytest.fixture
def page(browser: Any, web: Any) -> Iterator[Any]:
    """A fresh browser context logged in through the one-time link."""
    context, page = _login(browser, web)
    try:
        yield page
    finally:
        context.close()


def shot(page: Any, name: str) -> None:
    page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def test_login_link_opens_the_dashboard_once(browser: Any, web: Any) -> None:
    context = browser.new_context()
    try:
        page = context.new_page()
        page.set_default_timeout(WAIT)
        link = web.login_url()
        page.goto(link)
        assert page.locator("h1").first.inner_text().startswith("Jobs")
        cookies = context.cookies()
        session = [c for c in cookies if c["name"] == "firelink_session"]
        assert session and session[0]["httpOnly"] and session[0]["sameSite"] == "Strict"
        # The link is used up: a second browser cannot log in with it.
        other = browser.new_context()
        try:
            response = other.new_page().goto(link)
            assert response is not None and response.status == 401
        finally:
            other.close()
    finally:
        context.close()


def test_without_login_the_pages_are_refused(browser: Any, web: Any) -> None:
    context = browser.new_context()
    try:
        response = context.new_page().goto(web.url + "/jobs")
        assert response is not None and response.status == 401
    finally:
        context.close()


def test_the_example_jobs_are_listed(browser: Any, web_daemon: Callable[..., Any]) -> None:
    web = web_daemon((REPO / "examples" / "firelink.yaml").read_text())
    (web.root / "inbox").mkdir(exist_ok=True)
    context, page = _login(browser, web)
    try:
        page.goto(web.url + "/jobs")
        for job in ("heartbeat", "after-heartbeat", "hello", "inbox"):
            assert page.locator(f'tr[data-job-row="{job}"]').count() == 1, job
        # heartbeat fires every 5 s: its row shows a run without a reload.
        page.locator('tr[data-job-row="heartbeat"] .strip a').first.wait_for()
        shot(page, "jobs")
        page.fill('input[name="q"]', "heart")
        page.wait_for_url("**/jobs?q=heart*")
        assert page.locator("tr[data-job-row]").count() == 2
    finally:
        context.close()


def test_trigger_with_params_shows_the_log_growing(page: Any, web: Any) -> None:
    page.goto(web.url + "/jobs/greet")
    shot(page, "job")
    page.fill('input[name="param.who"]', "browser")
    page.fill('input[name="param.times"]', "10")
    page.fill('input[name="param.api_key"]', "s3cr3t-param-value")
    page.click('#trigger-form button[type="submit"]')
    page.wait_for_url("**/runs/*")
    # Mark this document: a reload would lose the mark.
    page.evaluate("window.__noReload = true")
    log = page.locator("#log")
    page.wait_for_function("document.getElementById('log').textContent.includes('hello browser 1')")
    first = log.inner_text()
    assert "hello browser 10" not in first
    page.wait_for_function(
        "document.getElementById('log').textContent.includes('hello browser 10')"
    )
    assert page.evaluate("window.__noReload") is True
    page.locator("h1 [data-run-state]").filter(has_text="success").wait_for()
    # The facts follow too: the finished run offers Retry (no Cancel), still without a reload.
    page.locator('#run-facts button:has-text("Retry from failed")').wait_for()
    assert page.locator('#run-facts button:has-text("Cancel")').count() == 0
    assert "exit code 0" in page.locator("#run-facts").inner_text()
    assert page.evaluate("window.__noReload") is True
    assert "hello browser 1" in log.inner_text() and "hello browser 10" in log.inner_text()
    shot(page, "run")
    facts = page.locator("#run-facts").inner_text()
    assert "who=browser" in facts and "api_key=***" in facts
    assert "s3cr3t-param-value" not in page.content()
    assert runs(web, "greet")[0]["state"] == "success"


def test_a_bad_parameter_is_shown_on_the_form(page: Any, web: Any) -> None:
    before = len(runs(web, "greet"))
    page.goto(web.url + "/jobs/greet")
    # The browser's own check would stop a non-number: send the form as a user's script could.
    page.evaluate("document.querySelector('input[name=\"param.times\"]').type = 'text'")
    page.fill('input[name="param.times"]', "many")
    with page.expect_response(lambda r: r.url.endswith("/trigger")) as info:
        page.click('#trigger-form button[type="submit"]')
    assert info.value.status == 422
    assert "times" in page.locator(".flash.error").inner_text()
    assert len(runs(web, "greet")) == before


def test_pause_shows_the_job_paused(page: Any, web: Any) -> None:
    page.goto(web.url + "/jobs/nightly")
    page.click('button:has-text("Pause")')
    page.wait_for_url("**/jobs/nightly*")
    page.locator("#paused-badge").wait_for()
    page.goto(web.url + "/jobs?q=nightly")
    row = page.locator('tr[data-job-row="nightly"]')
    assert "paused" in row.locator("td.paused").inner_text()
    shot(page, "jobs-paused")
    page.goto(web.url + "/jobs/nightly")
    page.click('button:has-text("Resume")')
    page.wait_for_url("**/jobs/nightly*")
    assert page.locator("#paused-badge").count() == 0


def test_a_form_without_its_csrf_token_is_refused(page: Any, web: Any) -> None:
    page.goto(web.url + "/jobs/nightly")
    page.evaluate("document.querySelectorAll('input[name=csrf_token]').forEach(e => e.remove())")
    with page.expect_response(lambda r: r.url.endswith("/pause")) as info:
        page.click('button:has-text("Pause")')
    assert info.value.status == 403
    page.goto(web.url + "/jobs/nightly")
    assert page.locator("#paused-badge").count() == 0


def test_failed_chain_graph_and_retry_from_failed(page: Any, web: Any) -> None:
    # The graph is open while the chain fails: transform turns red without a reload.
    page.goto(web.url + "/graph")
    page.evaluate("window.__noReload = true")
    job_tab = page.context.new_page()
    job_tab.goto(web.url + "/jobs/transform")
    job_tab.evaluate("window.__noReload = true")
    other = page.context.new_page()
    other.goto(web.url + "/jobs/extract")
    other.click('#trigger-form button[type="submit"]')
    other.wait_for_url("**/runs/*")
    page.locator('g[data-graph-job="transform"].s-failed').wait_for()
    page.locator('g[data-graph-job="load"].s-upstream_failed').wait_for()
    assert page.evaluate("window.__noReload") is True
    shot(page, "graph-failed")
    # transform's own page shows it failing, and its failed run, without a reload.
    job_tab.locator("#job-head .state.s-failing").wait_for()
    job_tab.locator("table.runs .state.s-failed").wait_for()
    assert job_tab.evaluate("window.__noReload") is True
    # A fresh graph page draws the failure too.
    page.goto(web.url + "/graph")
    assert page.locator('g[data-graph-job="transform"].s-failed').count() == 1

    load_run = wait_for(
        lambda: (
            (found := runs(web, "load")) and found[0]["state"] == "upstream_failed" and found[0]
        ),
        30,
        message="load's run is upstream_failed",
    )
    web.flag.write_text("")
    page.goto(web.url + f"/runs/{load_run['id']}")
    page.click('button:has-text("Retry from failed")')
    page.wait_for_url("**/runs/*")
    wait_for(
        lambda: (found := runs(web, "load")) and found[0]["state"] == "success",
        30,
        message="load succeeds after transform is retried",
    )
    transform = runs(web, "transform")
    assert [r["state"] for r in transform] == ["success", "failed"]
    assert len(runs(web, "extract")) == 1
    page.goto(web.url + "/runs?job=transform")
    assert page.locator("table.runs tbody tr").count() == 2
    shot(page, "runs")
    page.goto(web.url + "/graph")
    page.locator('g[data-graph-job="transform"].s-success').wait_for()
    shot(page, "graph")


def test_runs_and_a_job_page_show_new_runs_without_a_reload(page: Any, web: Any) -> None:
    page.goto(web.url + "/runs")
    page.evaluate("window.__noReload = true")
    other = page.context.new_page()
    other.goto(web.url + "/jobs/greet")
    other.evaluate("window.__noReload = true")
    answer = web.api("POST", "/api/v1/jobs/greet/trigger", body={"params": {"times": "1"}})
    assert answer.status in (200, 201, 202), answer
    run_id = answer.json()["run_id"]
    for tab in (page, other):
        tab.locator(f'table.runs [data-run-state="{run_id}"]').filter(has_text="success").wait_for()
        assert tab.evaluate("window.__noReload") is True
    shot(other, "job-live")


def test_cancel_ends_a_running_run(page: Any, web: Any) -> None:
    answer = web.api("POST", "/api/v1/jobs/greet/trigger", body={"params": {"times": "60"}})
    run_id = answer.json()["run_id"]
    page.goto(web.url + f"/runs/{run_id}")
    page.wait_for_function("document.getElementById('log').textContent.includes('hello world 1')")
    page.click('#run-facts button:has-text("Cancel")')
    page.wait_for_url(f"**/runs/{run_id}?done=cancelled")
    assert page.locator(".flash").inner_text() == "cancelled"
    page.locator("h1 [data-run-state]").filter(has_text="cancelled").wait_for()
    assert runs(web, "greet")[0]["state"] == "cancelled"


def test_unknown_job_page_suggests(page: Any, web: Any) -> None:
    response = page.goto(web.url + "/jobs/gret")
    assert response is not None and response.status == 404
    assert page.locator('a[href="/jobs/greet"]').count() == 1


def test_browser_artifacts_are_ignored_by_git() -> None:
    if shutil.which("git") is None or not (REPO / ".git").exists():
        pytest.skip("not a git checkout")
    result = subprocess.run(
        ["git", "check-ignore", "-q", str(SCREENSHOTS / "job.png")], cwd=REPO, capture_output=True
    )
    assert result.returncode == 0
