"""``NotifierContract``: what every notifier owes the engine, as reusable tests against a real receiver."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from ..plugin_api import (
    AttemptRecord,
    Notifier,
    RunEvent,
    RunFailed,
    RunInterrupted,
    RunQueued,
    RunRecord,
    RunRecovered,
    RunRetrying,
    RunSkipped,
    RunStarted,
    RunState,
    RunSucceeded,
    RunTimedOut,
    RunUpstreamFailed,
    RunWaiting,
)
from ._contexts import notifier_context
from ._wait import wait_for

__all__ = ["NotifierContract", "NotifierUnderTest", "sample_run_events"]

SECRET_ENV_VALUE = "firelink-contract-secret-value"
"""Put in the run's ``env``: no delivery may contain it."""


@dataclass
class NotifierUnderTest:
    """What a notifier plugin's test supplies to :class:`NotifierContract`."""

    cls: type[Notifier]
    options: Mapping[str, Any]
    """Options that deliver to the test's receiver."""
    delivered: Callable[[], Sequence[Any]]
    """Everything the receiver got so far, one item per delivery (a request body, a mail, a
    log record); the contract checks the count and that no item's text holds a secret."""
    failing_options: Mapping[str, Any] | None = None
    """Options whose delivery must fail (a refused port, a program that exits 1); ``None``
    skips the failure test."""
    secrets: Sequence[str] = field(default_factory=tuple)
    """Values of ``failing_options`` (a token in a URL, a password) no error message may show."""
    timeout: float = 30.0


def sample_run_events(log_path: str | Path | None = None) -> list[RunEvent]:
    """One event of each kind, for a failed-then-retried run of job ``etl`` (run ``run123``)."""
    now = time.time()
    run = RunRecord(
        id="run123", job="etl", state=RunState.FAILED, trigger="schedule", created_at=now - 5,
        started_at=now - 4, finished_at=now, attempts=3, exit_code=2,
        env={"FIRELINK_CONTRACT": SECRET_ENV_VALUE}, log_path=None if log_path is None else str(log_path),
    )
    attempt = AttemptRecord(run_id=run.id, number=3, executor="local", started_at=now - 4)
    return [
        RunQueued(run=run), RunWaiting(run=run), RunStarted(run=run, attempt=attempt),
        RunRetrying(run=run, attempt=attempt, delay=30.0), RunSucceeded(run=run), RunFailed(run=run, attempt=attempt),
        RunTimedOut(run=run), RunSkipped(run=run, detail="overlap"), RunUpstreamFailed(run=run),
        RunInterrupted(run=run), RunRecovered(run=run),
    ]


class NotifierContract:
    """Subclass it as ``Test<Name>NotifierContract`` and override the ``notifier_under_test`` fixture::

        class TestWebhookNotifierContract(NotifierContract):
            @pytest.fixture
            def notifier_under_test(self, httpserver) -> NotifierUnderTest:
                httpserver.expect_request("/hook").respond_with_data("ok")
                return NotifierUnderTest(
                    WebhookNotifier, {"url": httpserver.url_for("/hook")},
                    delivered=lambda: [request.data for request, _ in httpserver.log],
                )

    Every contract in ``firelink_core.testing`` asks for one fixture, ``<subject>_under_test``,
    returning a ``<Subject>UnderTest`` that says what the contract cannot guess. The notifier
    gets :func:`~firelink_core.testing.notifier_context` with a real run log of 50 lines.
    Each test runs its own event loop, so no async pytest plugin is needed.
    """

    @pytest.fixture
    def notifier_under_test(self) -> NotifierUnderTest:
        raise NotImplementedError("override the notifier_under_test fixture")

    @pytest.fixture
    def run_log(self, tmp_path: Path) -> Path:
        log = tmp_path / "state" / "logs" / "etl" / "run123.3.log"
        log.parent.mkdir(parents=True, exist_ok=True)
        log.write_text("".join(f"line {i}\n" for i in range(50)))
        return log

    def make(self, nut: NotifierUnderTest, options: Mapping[str, Any], tmp_path: Path) -> Notifier:
        return nut.cls("contract", dict(options), notifier_context(tmp_path / "state"))

    def deliver(self, notifier: Notifier, events: Sequence[RunEvent], timeout: float) -> None:
        """Start the notifier, send it ``events`` one by one, stop it (raises what ``notify`` raised)."""

        async def main() -> None:
            await notifier.start()
            try:
                for event in events:
                    await asyncio.wait_for(notifier.notify(event), timeout)
            finally:
                await notifier.stop()

        asyncio.run(main())

    # ------------------------------------------------------------------ the contract
    def test_declares_type_and_described_schema(self, notifier_under_test: NotifierUnderTest) -> None:
        cls = notifier_under_test.cls
        assert isinstance(cls.type_name, str) and cls.type_name
        assert cls.config_schema.get("type") == "object"
        for name, prop in cls.config_schema.get("properties", {}).items():
            assert prop.get("description"), f"option {name!r} has no description"
        assert cls.check(notifier_under_test.options) == [], "the contract's options must be valid"

    def test_one_event_is_one_delivery(self, notifier_under_test: NotifierUnderTest, run_log, tmp_path) -> None:
        before = len(notifier_under_test.delivered())
        failed = next(e for e in sample_run_events(run_log) if isinstance(e, RunFailed))
        self.deliver(self.make(notifier_under_test, notifier_under_test.options, tmp_path), [failed],
                     notifier_under_test.timeout)
        wait_for(lambda: len(notifier_under_test.delivered()) > before, notifier_under_test.timeout,
                 message="the delivery never arrived")
        assert len(notifier_under_test.delivered()) == before + 1

    def test_every_event_kind_is_delivered_without_the_runs_env(
        self, notifier_under_test: NotifierUnderTest, run_log, tmp_path
    ) -> None:
        events = sample_run_events(run_log)
        before = len(notifier_under_test.delivered())
        self.deliver(self.make(notifier_under_test, notifier_under_test.options, tmp_path), events,
                     notifier_under_test.timeout)
        wait_for(lambda: len(notifier_under_test.delivered()) >= before + len(events), notifier_under_test.timeout,
                 message=f"{len(events)} deliveries")
        for item in notifier_under_test.delivered()[before:]:
            text = item.decode(errors="replace") if isinstance(item, bytes) else str(item)
            assert SECRET_ENV_VALUE not in text, "a delivery shows a value of the run's env"

    def test_a_failed_delivery_raises_without_secrets(
        self, notifier_under_test: NotifierUnderTest, run_log, tmp_path
    ) -> None:
        if notifier_under_test.failing_options is None:
            pytest.skip("no failing_options given")
        failed = next(e for e in sample_run_events(run_log) if isinstance(e, RunFailed))
        notifier = self.make(notifier_under_test, notifier_under_test.failing_options, tmp_path)
        with pytest.raises(Exception) as info:  # noqa: PT011 - any exception reports the failure
            self.deliver(notifier, [failed], notifier_under_test.timeout)
        assert not isinstance(info.value, (asyncio.TimeoutError, asyncio.CancelledError)), "notify hung"
        for secret in notifier_under_test.secrets:
            assert secret not in str(info.value), "the error message shows a secret"

    def test_start_and_stop_without_events(self, notifier_under_test: NotifierUnderTest, tmp_path) -> None:
        self.deliver(self.make(notifier_under_test, notifier_under_test.options, tmp_path), [],
                     notifier_under_test.timeout)
