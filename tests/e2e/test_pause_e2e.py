"""``firelink pause``, ``resume``, ``explain`` and the circuit breaker (``pause_after_failures``)
against the real daemon, driven only through the ``firelink`` command (issue 13)."""

from __future__ import annotations

import json
import signal
import time
from typing import Any

from firelink_core.testing import wait_for

from .conftest import FirelinkProcess


def _json(result: Any) -> Any:
    assert result.returncode == 0, f"exit {result.returncode}: {result.stderr}"
    return json.loads(result.stdout)


def _explain(daemon: FirelinkProcess, job: str, limit: int = 200) -> dict[str, Any]:
    return _json(daemon.cli("explain", job, "--limit", str(limit), "--json"))


def _skips(daemon: FirelinkProcess, job: str, reason: str) -> list[dict[str, Any]]:
    return [
        d
        for d in _explain(daemon, job)["decisions"]
        if d["outcome"] == "skipped" and d["reason"] == reason
    ]


def _started_runs(daemon: FirelinkProcess, job: str) -> list[dict[str, Any]]:
    return [r for r in daemon.runs(job, "--limit", "1000") if r["state"] != "skipped"]


TICK = """
jobs:
  - name: tick
    trigger: interval
    every: 1s
    catchup: latest
    command: ["true"]
  - name: other
    trigger: manual
    command: ["true"]
"""


def test_pause_skips_a_per_second_job_across_a_restart_then_resume_catches_up_once(
    daemon: FirelinkProcess,
) -> None:
    daemon.write_config(TICK)
    daemon.start()
    wait_for(
        lambda: any(r["state"] == "success" for r in _started_runs(daemon, "tick")),
        20,
        message="tick runs",
    )

    paused = daemon.cli("pause", "tick", "--reason", "database maintenance")
    assert paused.returncode == 0, paused.stderr
    assert "tick paused: database maintenance" in paused.stderr
    # Runs already queued when the pause came may still finish; after that, none is made.
    wait_for(
        lambda: len(_skips(daemon, "tick", "paused: database maintenance")) >= 1,
        10,
        message="a first skip",
    )
    before = {r["id"] for r in _started_runs(daemon, "tick")}
    wait_for(
        lambda: len(_skips(daemon, "tick", "paused: database maintenance")) >= 4,
        15,
        message="four skips",
    )
    assert {r["id"] for r in _started_runs(daemon, "tick")} == before

    status = daemon.job_status("tick")
    assert status is not None and status["state"] == "paused"
    assert status["paused"]["reason"] == "database maintenance" and status["paused"]["since"]
    text = daemon.cli("status")
    assert "tick: since" in text.stdout and "database maintenance" in text.stdout
    assert daemon.job_status("other")["paused"] is None

    refused = daemon.cli("trigger", "tick")
    assert refused.returncode == 1
    assert "paused (database maintenance)" in refused.stderr and "--force" in refused.stderr

    # The pause is stored: a restart keeps it, and the fires go on being skipped.
    daemon.signal(signal.SIGTERM)
    assert daemon.wait_exit() == 0
    offline = daemon.cli("status", "--json", "-c", str(daemon.config))
    assert offline.returncode == 3  # the daemon is down: the pause is read from the database
    tick = next(j for j in json.loads(offline.stdout)["jobs"] if j["name"] == "tick")
    assert tick["state"] == "paused" and tick["paused"]["reason"] == "database maintenance"
    assert "tick: since" in daemon.cli("status", "-c", str(daemon.config)).stdout
    daemon.start()
    assert daemon.job_status("tick")["state"] == "paused"
    skipped = len(_skips(daemon, "tick", "paused: database maintenance"))
    wait_for(
        lambda: len(_skips(daemon, "tick", "paused: database maintenance")) >= skipped + 2,
        15,
        message="skips after the restart",
    )
    assert {r["id"] for r in _started_runs(daemon, "tick")} == before

    # Fires are on whole seconds: the resume (the command takes about 0.3 s to reach the
    # daemon) lands away from the next one, which would otherwise stand for the latest
    # skipped fire (timer.CATCHUP_MERGE: within 0.1 s of it) instead of a catch-up run.
    wait_for(lambda: time.time() % 1 < 0.15, 2, interval=0.005, message="just after a whole second")
    resumed = _json(daemon.cli("resume", "tick", "--catch-up", "--json"))
    assert resumed["resumed"][0]["resumed"] is True and resumed["resumed"][0]["caught_up"] == 1

    def after_resume() -> list[dict[str, Any]]:
        return [r for r in _started_runs(daemon, "tick") if r["id"] not in before]

    wait_for(
        lambda: sum(r["state"] == "success" for r in after_resume()) >= 3,
        20,
        message="runs after the resume",
    )
    caught_up = [r for r in after_resume() if r["payload"].get("catchup")]
    assert len(caught_up) == 1, caught_up  # catchup: latest: one run for every skipped fire
    assert daemon.job_status("tick")["paused"] is None
    outcomes = [d["outcome"] for d in _explain(daemon, "tick", 20)["decisions"]]
    assert "resumed" in outcomes and "ran" in outcomes

    # Without --catch-up the job goes on from now: no catch-up run.
    assert daemon.cli("pause", "tick").returncode == 0
    wait_for(
        lambda: len(_skips(daemon, "tick", "paused")) >= 2, 15, message="skips of the second pause"
    )
    plain = _json(daemon.cli("resume", "tick", "--json"))
    assert plain["resumed"][0]["caught_up"] == 0
    count = len(after_resume())
    wait_for(lambda: len(after_resume()) >= count + 2, 20, message="runs after the second resume")
    assert len([r for r in after_resume() if r["payload"].get("catchup")]) == 1


def test_pause_resume_and_explain_errors(daemon: FirelinkProcess) -> None:
    daemon.write_config(TICK)
    daemon.start()
    unknown = daemon.cli("pause", "tickk")
    assert (
        unknown.returncode == 2 and "no job named 'tickk'; did you mean 'tick'?" in unknown.stderr
    )
    assert daemon.cli("resume", "tickk").returncode == 2
    assert "did you mean 'tick'" in daemon.cli("explain", "tickk").stderr
    nothing = daemon.cli("pause")
    assert nothing.returncode == 2 and "--all" in nothing.stderr
    # nothing was paused by the refused requests
    assert all(job["paused"] is None for job in daemon.status()["jobs"])

    every = _json(daemon.cli("pause", "--all", "--reason", "freeze", "--json"))
    assert sorted(p["job"] for p in every["paused"]) == ["other", "tick"]
    again = _json(daemon.cli("pause", "tick", "--json"))
    assert again["paused"][0]["changed"] is False and again["paused"][0]["reason"] == "freeze"
    forced = daemon.cli("trigger", "other", "--force", "--wait")
    assert forced.returncode == 0, forced.stderr
    explained = daemon.cli("explain", "tick")
    assert explained.returncode == 0 and "waiting for: paused for" in explained.stdout
    # a reload, with the job changed, keeps the pause
    daemon.write_config(TICK.replace('command: ["true"]', 'command: ["echo", "changed"]', 1))
    reloaded = daemon.cli("reload")
    assert reloaded.returncode == 0 and "changed tick" in reloaded.stderr + reloaded.stdout
    assert daemon.job_status("tick")["paused"]["reason"] == "freeze"
    back = _json(daemon.cli("resume", "--all", "--json"))
    assert sorted(item["job"] for item in back["resumed"]) == ["other", "tick"]
    assert all(job["paused"] is None for job in daemon.status()["jobs"])
    daemon.kill()
    down = daemon.cli("pause", "tick")
    assert down.returncode == 3


def test_a_paused_watch_job_runs_each_file_created_during_the_pause_after_resume(
    daemon: FirelinkProcess,
) -> None:
    inbox = daemon.root / "inbox"
    inbox.mkdir()
    daemon.write_config("""
    jobs:
      - name: ingest
        trigger: watch
        source: ./inbox
        settle: 0
        overlap: queue
        command: ["sh", "-c", "echo got $FIRELINK_FS_PATH"]
    """)
    daemon.start()
    wait_for(
        lambda: daemon.job_status("ingest")["next_due"] is None and daemon.job_status("ingest"), 10
    )
    assert daemon.cli("pause", "ingest", "--reason", "upstream deploy").returncode == 0
    names = ["a.csv", "b.csv", "c.csv"]
    for name in names:
        (inbox / name).write_text(name)

    def held() -> list[dict[str, Any]]:
        return [d for d in _explain(daemon, "ingest")["decisions"] if d["outcome"] == "held"]

    wait_for(lambda: len(held()) == 3, 20, message="three held events")
    assert held()[0]["reason"] == "paused: upstream deploy; runs after resume"
    assert daemon.runs("ingest") == []
    assert "3 event(s) held" in _explain(daemon, "ingest")["waiting_for"]

    # The held events are stored: a restart holds them again, none lost, none doubled.
    assert daemon.cli("stop").returncode == 0
    daemon.start()
    wait_for(
        lambda: "3 event(s) held" in _explain(daemon, "ingest")["waiting_for"],
        20,
        message="the events held again after the restart",
    )
    assert daemon.runs("ingest") == []
    assert len(held()) == 3  # recorded once each, not again by the new daemon

    resumed = _json(daemon.cli("resume", "ingest", "--json"))
    assert resumed["resumed"][0]["released"] == 3

    def done() -> list[dict[str, Any]]:
        return [r for r in daemon.runs("ingest") if r["state"] == "success"]

    wait_for(lambda: len(done()) == 3, 30, message="one run per file")
    paths = sorted(r["env"]["FIRELINK_FS_PATH"] for r in daemon.runs("ingest"))
    assert paths == sorted(str((inbox / name).resolve()) for name in names)  # one run each


def test_pause_after_failures_opens_the_circuit_and_one_webhook_says_so(
    daemon: FirelinkProcess, httpserver
) -> None:
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    daemon.write_config(f"""
    notifiers:
      hook: {{type: webhook, url: "{httpserver.url_for("/hook")}", retries: 0, timeout: 5s}}
    jobs:
      - name: flaky
        trigger: interval
        every: 1s
        command: ["false"]
        pause_after_failures: 3
        notify: [{{notifier: hook, on: [tripped]}}]
    """)
    daemon.start()
    wait_for(
        lambda: (daemon.job_status("flaky") or {}).get("state") == "paused",
        30,
        message="the breaker opens",
    )
    status = daemon.job_status("flaky")
    assert (
        status["paused"]["reason"] == "3 consecutive failures"
        and status["paused"]["by"] == "breaker"
    )
    wait_for(
        lambda: len(_skips(daemon, "flaky", "circuit open: 3 consecutive failures")) >= 2,
        15,
        message="fires skipped while the circuit is open",
    )
    failed = [r for r in daemon.runs("flaky") if r["state"] == "failed"]
    assert len(failed) == 3
    wait_for(lambda: len(httpserver.log) >= 1, 10, message="the webhook notification")
    bodies = [json.loads(request.data) for request, _response in httpserver.log]
    assert [b["event"] for b in bodies] == ["tripped"]
    assert bodies[0]["job"] == "flaky" and "3 consecutive failures" in bodies[0]["reason"]
    decisions = _explain(daemon, "flaky")["decisions"]
    assert [d for d in decisions if d["outcome"] == "tripped"][0]["run_id"] == failed[0]["id"]
    refused = daemon.cli("trigger", "flaky")
    assert refused.returncode == 1 and "circuit breaker" in refused.stderr

    # resume resets the count: three more failures before it opens again
    assert daemon.cli("resume", "flaky").returncode == 0
    wait_for(
        lambda: (daemon.job_status("flaky") or {}).get("state") == "paused",
        30,
        message="the breaker opens again",
    )
    assert len([r for r in daemon.runs("flaky") if r["state"] == "failed"]) == 6
    wait_for(lambda: len(httpserver.log) >= 2, 10, message="the second notification")


def test_explain_names_the_upstream_a_run_waits_on_and_the_one_that_failed(
    daemon: FirelinkProcess,
) -> None:
    daemon.write_config("""
    jobs:
      - name: extract
        trigger: manual
        command: ["sh", "-c", "exit $FAIL"]
      - name: load
        trigger: manual
        depends_on: [extract]
        command: ["true"]
    """)
    daemon.start()
    waiting = daemon.cli("trigger", "load", "--json")
    assert waiting.returncode == 0, waiting.stderr

    def outcomes() -> list[tuple[str, str | None]]:
        return [(d["outcome"], d["reason"]) for d in _explain(daemon, "load")["decisions"]]

    wait_for(
        lambda: ("waiting", "waiting for extract") in outcomes(),
        15,
        message="load waits on extract",
    )
    assert "waiting on upstream extract" in _explain(daemon, "load")["waiting_for"]
    failed = daemon.cli("trigger", "extract", "--env", "FAIL=3", "--wait")
    assert failed.returncode == 3
    wait_for(
        lambda: any(o == "upstream_failed" and "extract" in (r or "") for o, r in outcomes()),
        15,
        message="load gives up: extract failed",
    )
    text = daemon.cli("explain", "load").stdout
    assert "upstream failed" in text and "extract" in text


def test_explain_says_which_fires_missed_while_the_daemon_was_down_were_not_run(
    daemon: FirelinkProcess,
) -> None:
    daemon.write_config("""
    jobs:
      - name: tick
        trigger: interval
        every: 1s
        catchup: latest
        misfire_grace: 2s
        command: ["true"]
    """)
    daemon.start()
    wait_for(lambda: _started_runs(daemon, "tick"), 15, message="a first run")
    assert daemon.cli("stop").returncode == 0
    stopped = time.time()
    # six fires missed: four of them older than misfire_grace, two within it
    wait_for(lambda: time.time() > stopped + 6, 10, message="six seconds of downtime")
    daemon.start()

    def skip_reasons() -> set[str]:
        return {
            d["reason"] for d in _explain(daemon, "tick")["decisions"] if d["outcome"] == "skipped"
        }

    # the catch-up is planned just after start-up: wait for it, not for the status answer
    wait_for(
        lambda: "missed fires past misfire_grace (2s)" in skip_reasons()
        and any(r and r.endswith("missed fire(s) not run (catchup: latest)") for r in skip_reasons()),
        15,
        message="both kinds of missed fires explained",
    )

    def catch_ups() -> list[dict[str, Any]]:
        return [r for r in _started_runs(daemon, "tick") if r["payload"].get("catchup")]

    merged = "the missed fire is not caught up: the next fire is due in"
    # The latest fire within misfire_grace runs as one catch-up run, unless the restart came
    # within a tenth of a second of the next whole second: then that regular fire stands in
    # for it (docs/engine.md), and the daemon says so.
    wait_for(lambda: catch_ups() or merged in daemon.daemon_log(), 15, message="the catch-up run")
    # two regular fires later there is still at most one catch-up run, and one unless merged
    regular_before = len(_started_runs(daemon, "tick")) - len(catch_ups())
    wait_for(
        lambda: len(_started_runs(daemon, "tick")) - len(catch_ups()) >= regular_before + 2,
        15,
        message="two more regular fires",
    )
    assert len(catch_ups()) == (0 if merged in daemon.daemon_log() else 1)


def test_a_paused_downstream_job_makes_no_automatic_run_until_resumed(
    daemon: FirelinkProcess,
) -> None:
    daemon.write_config("""
    jobs:
      - name: extract
        trigger: manual
        command: ["true"]
      - name: report
        depends_on: [extract]
        command: ["true"]
    """)
    daemon.start()
    assert daemon.cli("pause", "report").returncode == 0
    assert daemon.cli("trigger", "extract", "--wait").returncode == 0
    wait_for(
        lambda: (
            [
                d["reason"]
                for d in _explain(daemon, "report")["decisions"]
                if d["outcome"] == "skipped"
            ]
            == ["paused"]
        ),
        15,
        message="the automatic run skipped",
    )
    assert daemon.runs("report") == []
    assert daemon.cli("resume", "report").returncode == 0
    assert daemon.cli("trigger", "extract", "--wait").returncode == 0
    wait_for(
        lambda: [r["state"] for r in daemon.runs("report")] == ["success"],
        15,
        message="report runs",
    )
