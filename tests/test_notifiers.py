"""The built-in notifiers against real servers on loopback: HTTP (webhook), SMTP (email), a program."""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import sys
import time
from pathlib import Path

import pytest
from aiosmtpd.controller import Controller

from firelink_core.builtin.command import CommandNotifier, CommandNotifierError
from firelink_core.builtin.log import LogNotifier
from firelink_core.builtin.smtp import EmailError, EmailNotifier
from firelink_core.builtin.webhook import WebhookError, WebhookNotifier
from firelink_core.plugin_api import NotifierContext, RunFailed, RunRecord, RunRetrying, RunState
from firelink_core.testing import NotifierContract, NotifierUnderTest, notifier_context

RUN_LOG = "run.log"


@pytest.fixture
def context(tmp_path: Path) -> NotifierContext:
    """A notifier context whose log tail is a real file's last lines (the run's ``log_path``)."""
    (tmp_path / RUN_LOG).write_text("".join(f"line {i}\n" for i in range(50)))
    return notifier_context(tmp_path)


def _failed_event(context: NotifierContext) -> RunFailed:
    now = time.time()
    run = RunRecord(
        id="run123", job="etl", state=RunState.FAILED, trigger="cron", created_at=now - 5,
        started_at=now - 4, finished_at=now, attempts=3, exit_code=2, log_path=str(context.state_dir / RUN_LOG),
    )
    return RunFailed(run=run)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_webhook_posts_the_documented_json_body(httpserver, context) -> None:
    httpserver.expect_oneshot_request("/hook/SECRETTOKEN", method="POST").respond_with_data("ok")
    notifier = WebhookNotifier("ops", {"url": httpserver.url_for("/hook/SECRETTOKEN"), "log_lines": 3}, context)
    asyncio.run(notifier.notify(_failed_event(context)))
    (request, _response), = httpserver.log
    body = json.loads(request.data)
    assert body["event"] == "failure"
    assert body["job"] == "etl" and body["run_id"] == "run123"
    assert body["exit_code"] == 2 and body["attempt"] == 3 and body["state"] == "failed"
    assert body["log_tail"] == "line 47\nline 48\nline 49"
    assert request.headers["Content-Type"] == "application/json"


def test_webhook_slack_format_has_text(httpserver, context) -> None:
    httpserver.expect_oneshot_request("/slack", method="POST").respond_with_data("ok")
    notifier = WebhookNotifier("slack", {"url": httpserver.url_for("/slack"), "format": "slack"}, context)
    asyncio.run(notifier.notify(_failed_event(context)))
    body = json.loads(httpserver.log[0][0].data)
    assert "job 'etl' failure" in body["text"] and "exit 2" in body["text"]
    assert body["firelink"]["run_id"] == "run123"


def test_webhook_retries_server_errors_then_succeeds(httpserver, context) -> None:
    httpserver.expect_ordered_request("/h").respond_with_data("busy", status=503)
    httpserver.expect_ordered_request("/h").respond_with_data("busy", status=500)
    httpserver.expect_ordered_request("/h").respond_with_data("ok")
    notifier = WebhookNotifier("ops", {"url": httpserver.url_for("/h"), "retries": 3, "backoff": "10ms"}, context)
    asyncio.run(notifier.notify(_failed_event(context)))
    assert len(httpserver.log) == 3


def test_webhook_does_not_retry_a_client_error_and_never_shows_the_url(httpserver, context) -> None:
    httpserver.expect_request("/hook/SECRETTOKEN").respond_with_data("no", status=404)
    url = httpserver.url_for("/hook/SECRETTOKEN")
    notifier = WebhookNotifier("ops", {"url": url, "retries": 3, "backoff": "10ms"}, context)
    with pytest.raises(WebhookError) as info:
        asyncio.run(notifier.notify(_failed_event(context)))
    assert "HTTP 404" in str(info.value)
    assert "SECRETTOKEN" not in str(info.value)
    assert len(httpserver.log) == 1


def test_webhook_refused_connection_fails_cleanly(context) -> None:
    url = f"http://127.0.0.1:{_free_port()}/hook/SECRETTOKEN"
    notifier = WebhookNotifier("ops", {"url": url, "retries": 1, "backoff": "10ms", "timeout": "2s"}, context)
    with pytest.raises(WebhookError) as info:
        asyncio.run(notifier.notify(_failed_event(context)))
    assert "failed after 2 tries" in str(info.value)
    assert "SECRETTOKEN" not in str(info.value)


class _Inbox:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], bytes]] = []

    async def handle_DATA(self, server, session, envelope):  # noqa: N802 - aiosmtpd's handler API
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), envelope.content))
        return "250 OK"


@pytest.fixture
def smtp_server():
    inbox = _Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=_free_port())
    controller.start()
    try:
        yield controller, inbox
    finally:
        controller.stop()


def test_email_sends_one_message_with_the_log_tail(smtp_server, context) -> None:
    controller, inbox = smtp_server
    options = {
        "host": "127.0.0.1", "port": controller.port, "security": "none",
        "from": "firelink@example.com", "to": ["ops@example.com", "dev@example.com"], "log_lines": 2,
    }
    asyncio.run(EmailNotifier("mail", options, context).notify(_failed_event(context)))
    (sender, recipients, content), = inbox.messages
    text = content.decode().replace("\r\n", "\n")
    assert sender == "firelink@example.com"
    assert recipients == ["ops@example.com", "dev@example.com"]
    assert "Subject: [firelink] etl: failure" in text
    assert "line 48\nline 49" in text and "line 47" not in text


def test_email_failure_never_shows_the_password(context) -> None:
    options = {
        "host": "127.0.0.1", "port": _free_port(), "security": "none", "from": "a@b.c", "to": "d@e.f",
        "username": "u", "password": "hunter2-secret", "timeout": "2s",
    }
    with pytest.raises(EmailError) as info:
        asyncio.run(EmailNotifier("mail", options, context).notify(_failed_event(context)))
    assert "hunter2-secret" not in str(info.value)
    assert "email notifier 'mail'" in str(info.value)


def test_command_gets_the_event_on_stdin(tmp_path, context) -> None:
    out = tmp_path / "event.json"
    script = f"import sys; open({str(out)!r}, 'w').write(sys.stdin.read())"
    notifier = CommandNotifier("cmd", {"command": [sys.executable, "-c", script]}, context)
    event = RunRetrying(run=_failed_event(context).run, delay=30.0)
    asyncio.run(notifier.notify(event))
    body = json.loads(out.read_text())
    assert body["event"] == "retry" and body["retry_in"] == 30.0 and body["job"] == "etl"


def test_command_that_hangs_is_killed_at_its_timeout(context) -> None:
    notifier = CommandNotifier("cmd", {"command": ["sleep", "30"], "timeout": "300ms"}, context)
    started = time.monotonic()
    with pytest.raises(CommandNotifierError, match="timed out"):
        asyncio.run(notifier.notify(_failed_event(context)))
    assert time.monotonic() - started < 10  # killed, not waited for


def test_command_failure_reports_exit_and_stderr(context) -> None:
    notifier = CommandNotifier("cmd", {"command": ["sh", "-c", "echo boom >&2; exit 3"]}, context)
    with pytest.raises(CommandNotifierError, match="exit 3: boom"):
        asyncio.run(notifier.notify(_failed_event(context)))


def test_a_webhook_that_never_answers_delays_no_run(tmp_path) -> None:
    """Through the real engine: the endpoint accepts the connection and then says nothing."""
    from firelink_core.testing import async_wait_for, run_engine

    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)  # connections queue in the backlog; nobody ever answers
        port = silent.getsockname()[1]
        config = f"""
notifiers:
  hook: {{type: webhook, url: "http://127.0.0.1:{port}/hook", timeout: 3s, retries: 0}}
jobs:
  - name: failing
    trigger: manual
    command: ["sh", "-c", "exit 4"]
    notify: [{{notifier: hook, "on": [started, failure]}}]
  - name: next
    trigger: manual
    command: ["true"]
"""

        async def scenario() -> None:
            async with run_engine(config, tmp_path) as h:
                run = await h.run("failing", timeout=10)
                after = await h.run("next", timeout=10)
                assert run.state is RunState.FAILED and run.exit_code == 4
                assert after.state is RunState.SUCCESS
                # both runs are over while both deliveries still hang
                assert h.engine.notifier_failures == 0
                await async_wait_for(lambda: h.engine.notifier_failures == 2, 15)

        asyncio.run(scenario())


def _self_signed(tmp_path: Path) -> tuple[Path, Path]:
    import datetime

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number()).not_valid_before(now - datetime.timedelta(minutes=1))
        .not_valid_after(now + datetime.timedelta(hours=1)).sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return cert_path, key_path


def test_email_over_starttls_with_login(tmp_path, context) -> None:
    import ssl

    from aiosmtpd.smtp import AuthResult

    cert, key = _self_signed(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        logins.append((auth_data.login, auth_data.password))
        return AuthResult(success=True)

    inbox = _Inbox()
    controller = Controller(
        inbox, hostname="127.0.0.1", port=_free_port(), tls_context=tls, require_starttls=True,
        authenticator=authenticator, auth_require_tls=True,
    )
    controller.start()
    try:
        options = {
            "host": "127.0.0.1", "port": controller.port, "security": "starttls", "verify": False,
            "username": "firelink", "password": "s3cret", "from": "f@example.com", "to": "o@example.com",
        }
        asyncio.run(EmailNotifier("mail", options, context).notify(_failed_event(context)))
        assert logins == [(b"firelink", b"s3cret")]
        assert len(inbox.messages) == 1
        # verification on (the default) refuses the self-signed certificate
        with pytest.raises(EmailError, match="CERTIFICATE_VERIFY_FAILED|certificate verify failed"):
            asyncio.run(EmailNotifier("mail", {**options, "verify": True}, context).notify(_failed_event(context)))
    finally:
        controller.stop()


# --------------------------------------------------------------------------- the notifier contract


class TestLogNotifierContract(NotifierContract):
    @pytest.fixture
    def notifier_under_test(self, caplog) -> NotifierUnderTest:
        caplog.set_level(logging.INFO, logger="firelink.contract")
        return NotifierUnderTest(
            LogNotifier, {"logger": "firelink.contract"},
            delivered=lambda: [r.getMessage() for r in caplog.records if r.name == "firelink.contract"],
        )


class TestWebhookNotifierContract(NotifierContract):
    @pytest.fixture
    def notifier_under_test(self, httpserver) -> NotifierUnderTest:
        httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
        return NotifierUnderTest(
            WebhookNotifier, {"url": httpserver.url_for("/hook")},
            delivered=lambda: [request.data for request, _response in httpserver.log],
            failing_options={"url": f"http://127.0.0.1:{_free_port()}/hook/SECRETTOKEN", "retries": 0},
            secrets=["SECRETTOKEN"],
        )


class TestCommandNotifierContract(NotifierContract):
    @pytest.fixture
    def notifier_under_test(self, tmp_path) -> NotifierUnderTest:
        inbox = tmp_path / "deliveries"
        inbox.mkdir()
        script = f"import sys, uuid; open({str(inbox)!r} + '/' + uuid.uuid4().hex, 'w').write(sys.stdin.read())"
        return NotifierUnderTest(
            CommandNotifier, {"command": [sys.executable, "-c", script]},
            delivered=lambda: [path.read_text() for path in sorted(inbox.iterdir())],
            failing_options={"command": ["sh", "-c", "exit 1"]},
        )


class TestEmailNotifierContract(NotifierContract):
    @pytest.fixture
    def notifier_under_test(self, smtp_server) -> NotifierUnderTest:
        controller, inbox = smtp_server
        options = {"host": "127.0.0.1", "security": "none", "from": "f@example.com", "to": "o@example.com"}
        return NotifierUnderTest(
            EmailNotifier, {**options, "port": controller.port},
            delivered=lambda: [content for _sender, _recipients, content in inbox.messages],
            failing_options={
                **options, "port": _free_port(), "username": "u", "password": "hunter2-secret", "timeout": "2s",
            },
            secrets=["hunter2-secret"],
        )
