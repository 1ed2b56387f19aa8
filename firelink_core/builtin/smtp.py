"""Built-in ``email`` notifier: one SMTP message per event, with the run's last log lines."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from ..plugin_api import Notifier, Problem, RunEvent, duration_schema, hookimpl, parse_duration
from ._notify_common import event_body, event_text, redact

if TYPE_CHECKING:  # smtplib and email load when a message is sent: an idle daemon does not carry them
    from email.message import EmailMessage

__all__ = ["EmailNotifier", "EmailError"]


class EmailError(Exception):
    """A message that could not be sent (the text never contains the password)."""


class EmailNotifier(Notifier):
    """Sends each event as a plain-text mail through an SMTP server (STARTTLS, SSL or plain)."""

    type_name = "email"
    description = "An e-mail per run event through SMTP (STARTTLS/SSL, login)"
    config_schema: Mapping[str, Any] = {
        "type": "object",
        "properties": {
            "host": {"type": "string", "description": "SMTP server host name."},
            "port": {
                "type": "integer",
                "minimum": 1,
                "maximum": 65535,
                "description": "SMTP port (default: 465 for ssl, 587 for starttls, 25 for none).",
            },
            "security": {
                "enum": ["starttls", "ssl", "none"],
                "default": "starttls",
                "description": "starttls upgrades a plain connection; ssl connects with TLS; none sends in clear text.",
            },
            "username": {"type": "string", "description": "Login user name (omit for no login)."},
            "password": {"type": "string", "description": "Login password; write ${SMTP_PASSWORD}, never the value."},
            "from": {"type": "string", "description": "Sender address."},
            "to": {
                "oneOf": [{"type": "string"}, {"type": "array", "items": {"type": "string"}, "minItems": 1}],
                "description": "Recipient address or list of addresses.",
            },
            "subject_prefix": {"type": "string", "default": "[firelink]", "description": "Prefix of every subject."},
            "timeout": duration_schema("Timeout of the SMTP conversation.", "30s"),
            "verify": {
                "type": "boolean",
                "default": True,
                "description": "Verify the server's TLS certificate (turn off only for a private test server).",
            },
            "log_lines": {
                "type": "integer",
                "minimum": 0,
                "default": 20,
                "description": "How many last lines of the run's log to put in the message.",
            },
        },
        "required": ["host", "from", "to"],
    }

    @classmethod
    def check(cls, options: Mapping[str, Any], *, config_dir: Any = None) -> list[Problem]:
        problems = []
        if ("username" in options) != ("password" in options):
            problems.append(Problem(("username",), "username and password go together"))
        return problems

    def _message(self, event: RunEvent) -> EmailMessage:
        from email.message import EmailMessage

        body = event_body(event, self.context, log_lines=int(self.options.get("log_lines", 20)))
        to = self.options["to"]
        msg = EmailMessage()
        msg["Subject"] = f"{self.options.get('subject_prefix', '[firelink]')} {body['job']}: {body['event']}"
        msg["From"] = str(self.options["from"])
        msg["To"] = ", ".join([to] if isinstance(to, str) else list(to))
        lines = [event_text(body), ""]
        lines += [f"{key}: {value}" for key, value in body.items() if key != "log_tail" and value is not None]
        if body.get("log_tail"):
            lines += ["", "Last log lines:", body["log_tail"]]
        msg.set_content("\n".join(lines))
        return msg

    def _send(self, msg: EmailMessage) -> None:
        import smtplib

        security = self.options.get("security", "starttls")
        port = int(self.options.get("port") or {"ssl": 465, "starttls": 587}.get(security, 25))
        timeout = parse_duration(self.options.get("timeout", "30s"))
        context = ssl.create_default_context()
        if not self.options.get("verify", True):
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        host = str(self.options["host"])
        if security == "ssl":
            client: smtplib.SMTP = smtplib.SMTP_SSL(host, port, timeout=timeout, context=context)
        else:
            client = smtplib.SMTP(host, port, timeout=timeout)
        with client:
            if security == "starttls":
                client.starttls(context=context)
            if self.options.get("username"):
                client.login(str(self.options["username"]), str(self.options.get("password", "")))
            client.send_message(msg)

    async def notify(self, event: RunEvent) -> None:
        import smtplib

        msg = self._message(event)
        try:
            await asyncio.to_thread(self._send, msg)
        except (smtplib.SMTPException, OSError, ssl.SSLError) as exc:
            text = f"email notifier {self.name!r}: {type(exc).__name__}: {exc}"
            raise EmailError(redact(text, [self.options.get("password")])) from None


@hookimpl(trylast=True)
def firelink_register_notifiers() -> list[type[Notifier]]:
    return [EmailNotifier]
