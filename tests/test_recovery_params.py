"""The run that retries one a daemon crash interrupted keeps the parameters it was given."""

from __future__ import annotations

from firelink_core.engine.recovery import replacement_run
from firelink_core.records import RunRecord, RunState


def _run(options: dict[str, object]) -> RunRecord:
    return RunRecord(
        id="a" * 32,
        job="deploy",
        trigger="webhook",
        trigger_key="deploy#0",
        event_id="e" * 32,
        payload={},
        env={"FIRELINK_WEBHOOK_BODY": "/state/body"},
        created_at=1.0,
        state=RunState.RUNNING,
        options=options,
    )


def test_a_crash_retry_keeps_the_run_parameters_and_env() -> None:
    new = replacement_run(_run({"params": {"ref": "v9", "token": "***"}}), 2.0)
    assert new.options["params"] == {"ref": "v9", "token": "***"}
    assert new.options["recovery_of"] == "a" * 32 and new.parent_run == "a" * 32
    assert new.env == {"FIRELINK_WEBHOOK_BODY": "/state/body"}


def test_a_run_without_parameters_gets_none() -> None:
    assert "params" not in replacement_run(_run({}), 2.0).options
