"""Built-in ``webhook`` notifier: an HTTP POST of the event as JSON (or Slack-compatible text)."""

from __future__ import annotations

import asyncio
import json
import urllib.error
from collections.abc import Mapping
from typing import Any

from ..plugin_api import (
    FIRELINK_VERSION,
    Notifier,
    Problem,
    RunEvent,
    duration_schema,
    hookimpl,
    parse_duration,
)
from ._notify_common import event_body, event_text, redact

__all__ = ["WebhookNotifier", "WebhookError"]

class WebhookError(Exception):
    """A delivery that failed after every retry (the message never contains the URL)."""


class WebhookNotifier(Notifier):
    """POSTs each event to ``url``; retries connection errors, 429 and 5xx with backoff."""

    type_name = "webhook"
    description = "HTTP POST of each run event as JSON (or Slack-compatible text)"
    config_schema: Mapping[str, Any] = {
        "type": "object",
        "properties": {
            "url": {
                "type": "string",
                "description": "Where to POST. Put tokens in an environment variable: url: ${SLACK_WEBHOOK_URL}.",
            },
            "format": {
                "enum": ["json", "slack"],
                "default": "json",
                "description": "json: the documented event body; slack: {\"text\": ...} plus the body under \"firelink\".",
            },
            "headers": {
                "type": "object",
                "additionalProperties": {"type": "string"},
                "default": {},
                "description": "Extra HTTP headers (values may use ${ENV_VAR}).",
            },
            "timeout": duration_schema("Timeout of one HTTP request.", "10s"),
            "retries": {
                "type": "integer",
                "minimum": 0,
                "default": 3,
                "description": "Retries after a failed request (connection error, HTTP 429 or 5xx).",
            },
            "backoff": duration_schema("Delay before the first retry; doubled for each further retry.", "1s"),
            "log_lines": {
                "type": "integer",
                "minimum": 0,
                "default": 20,
                "description": "How many last lines of the run's log to include as log_tail.",
            },
        },
        "required": ["url"],
    }

    @classmethod
    def check(cls, options: Mapping[str, Any], *, config_dir: Any = None) -> list[Problem]:
        url = str(options.get("url", ""))
        if "${" not in url and not url.startswith(("http://", "https://")):
            return [Problem(("url",), "expected an http:// or https:// URL")]
        return []

    def _secrets(self) -> list[str]:
        return [str(self.options.get("url", ""))] + [str(v) for v in dict(self.options.get("headers") or {}).values()]

    def _payload(self, event: RunEvent) -> bytes:
        body = event_body(event, self.context, log_lines=int(self.options.get("log_lines", 20)))
        if self.options.get("format", "json") == "slack":
            tail = body.get("log_tail") or ""
            text = event_text(body) + (f"\n```{tail[-1500:]}```" if tail else "")
            return json.dumps({"text": text, "firelink": body}).encode()
        return json.dumps(body).encode()

    def _post(self, data: bytes, timeout: float) -> int:
        import urllib.request  # here, not at the top: http.client and its imports cost an idle daemon ~3 MB

        headers = {"Content-Type": "application/json", "User-Agent": f"firelink/{FIRELINK_VERSION}"}
        headers.update({str(k): str(v) for k, v in dict(self.options.get("headers") or {}).items()})
        request = urllib.request.Request(str(self.options["url"]), data=data, headers=headers, method="POST")
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - user-configured URL
            return int(response.status)

    async def notify(self, event: RunEvent) -> None:
        data = self._payload(event)
        timeout = parse_duration(self.options.get("timeout", "10s"))
        retries = int(self.options.get("retries", 3))
        delay = parse_duration(self.options.get("backoff", "1s"))
        last = ""
        for attempt in range(retries + 1):
            try:
                await asyncio.to_thread(self._post, data, timeout)
                return
            except urllib.error.HTTPError as exc:
                last = f"HTTP {exc.code}"
                if exc.code != 429 and exc.code < 500:
                    break  # the request itself is wrong: retrying cannot help
            except (urllib.error.URLError, OSError, TimeoutError) as exc:
                reason = getattr(exc, "reason", exc)
                last = f"{type(reason).__name__}: {reason}"
            if attempt < retries:
                await asyncio.sleep(delay * (2**attempt))
        raise WebhookError(
            redact(f"webhook notifier {self.name!r}: delivery failed after {attempt + 1} tries: {last}", self._secrets())
        )


@hookimpl(trylast=True)
def firelink_register_notifiers() -> list[type[Notifier]]:
    return [WebhookNotifier]
