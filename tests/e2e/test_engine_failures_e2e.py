"""A failure inside the engine after a run was claimed ends the run as failed, with the
reason: never a run left ``running`` with ``trigger --wait`` waiting for ever."""

from __future__ import annotations

CONFIG = """\
jobs:
  - name: job
    trigger: manual
    command: ["true"]
"""


def test_a_log_folder_that_cannot_be_made_fails_the_run_with_the_reason(daemon) -> None:
    daemon.write_config(CONFIG)
    daemon.start()
    # The job's log folder cannot be made: a file stands where it goes.
    (daemon.state_dir / "logs").mkdir(mode=0o700, exist_ok=True)
    (daemon.state_dir / "logs" / "job").write_text("a file where the job's log folder goes\n")

    result = daemon.cli("trigger", "job", "--wait", "--json", timeout=60)
    assert result.returncode != 0, result.stdout
    runs = daemon.runs("job")
    assert [r["state"] for r in runs] == ["failed"], runs
    reason = runs[0]["reason"]
    assert "the engine could not run the attempt" in reason and "logs" in reason, reason
    status = daemon.job_status("job")
    assert status is not None and status["running"] == 0 and status["state"] != "running", status
