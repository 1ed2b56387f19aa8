"""The ``webhook`` trigger: a job started by a signed ``POST /hooks/{job}`` on firelink-web's server.

The trigger owns what a request becomes: its signature checked (``signatures.py``), the body
written as a file (``bodies.py``), the top-level JSON keys matching the job's ``params:``
taken as parameters, and the event stored through ``context.emit`` before the server answers
202. The server (``hooks.py``) finds a job's started trigger through ``find_webhook`` and
does the HTTP part (size limit, status codes).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from firelink_core.plugin_api import (
    Problem,
    Trigger,
    TriggerContext,
    TriggerEvent,
    TriggerSpec,
    duration_schema,
    parse_duration,
    parse_size,
    size_schema,
)

from .bodies import BodyStore
from .signatures import verify

__all__ = [
    "BODY_ENV",
    "DEFAULT_MAX_BODY",
    "WebhookStopped",
    "WebhookTrigger",
    "find_webhook",
    "set_served",
]

BODY_ENV = "FIRELINK_WEBHOOK_BODY"
"""The variable holding the path of the request's body file."""
DEFAULT_MAX_BODY = "1MiB"
_DEFAULT_KEEP = "7d"
_HEADER_MAX = 200

_started: dict[tuple[str, str], WebhookTrigger] = {}
"""The started webhook triggers by (state directory, job): what ``hooks.py`` serves."""


def _where(state_dir: Path, job: str) -> tuple[str, str]:
    return (str(Path(state_dir).resolve()), job)


_served: set[str] = set()
"""The state directories whose daemon's HTTP server listens (webhook requests can arrive)."""


def find_webhook(state_dir: Path, job: str) -> WebhookTrigger | None:
    """The started webhook trigger of ``job`` in the daemon of ``state_dir``, if any."""
    return _started.get(_where(state_dir, job))


def set_served(state_dir: Path, served: bool) -> None:
    """The HTTP server of the daemon of ``state_dir`` started (or stopped) listening: its
    webhook triggers are healthy from then on. Until then they show ``starting``: without a
    server (no ``--http``, no ``http:``) a webhook job never fires, and status says so."""
    where = _where(state_dir, "")[0]
    if not served:
        _served.discard(where)
        return
    _served.add(where)
    for (folder, _), trigger in _started.items():
        if folder == where:
            trigger.context.set_health("ok")


class WebhookStopped(Exception):
    """A request reached a trigger that stopped meanwhile: nothing was stored."""


class WebhookTrigger(Trigger):
    """Fires for each correctly signed ``POST /hooks/{job}`` (served by ``firelink run --http``)."""

    type_name = "webhook"
    description = "Run on a signed POST /hooks/JOB to firelink-web's HTTP server (GitHub or firelink HMAC-SHA256)"
    config_schema: Mapping[str, Any] = {
        "type": "object",
        "properties": {
            "secret": {
                "description": (
                    "The shared HMAC-SHA256 key requests are signed with; write it as ${VAR} to keep it"
                    " out of the config file"
                ),
                "type": "string",
                "minLength": 1,
            },
            "max_body": size_schema(
                "Largest request body accepted; larger ones get 413", DEFAULT_MAX_BODY
            ),
            "keep_bodies": duration_schema(
                "How long the files of request bodies are kept (deleted when a later request arrives)",
                _DEFAULT_KEEP,
            ),
        },
        "required": ["secret"],
        "additionalProperties": False,
    }

    @classmethod
    def check(cls, options: Mapping[str, Any], *, config_dir: Path | None = None) -> list[Problem]:
        problems = []
        for key, parse in (("max_body", parse_size), ("keep_bodies", parse_duration)):
            if key in options:
                try:
                    parse(options[key])
                except ValueError as exc:
                    problems.append(Problem((key,), str(exc)))
        if "max_body" in options and not problems and parse_size(options["max_body"]) < 1:
            problems.append(Problem(("max_body",), "max_body must be at least 1 byte"))
        return problems

    def __init__(self, spec: TriggerSpec, context: TriggerContext) -> None:
        super().__init__(spec, context)
        self._secret = str(self.options.get("secret") or "")
        self.max_body = parse_size(self.options.get("max_body", DEFAULT_MAX_BODY))
        keep = parse_duration(self.options.get("keep_bodies", _DEFAULT_KEEP))
        self.bodies = BodyStore(
            Path(context.state_dir) / "webhooks" / _folder_name(context.job.name), keep
        )
        self._key = _where(context.state_dir, context.job.name)
        self._running = False

    def __repr__(self) -> str:  # never shows the secret
        return f"WebhookTrigger({self.spec.key!r})"

    async def start(self) -> None:
        self._running = True
        _started[self._key] = self  # a reloaded job's new trigger replaces the old one
        if self._key[0] in _served:
            self.context.set_health("ok")

    async def stop(self) -> None:
        self._running = False
        if _started.get(self._key) is self:
            del _started[self._key]

    async def receive(self, body: bytes, headers: Mapping[str, str]) -> TriggerEvent | None:
        """Turn a request into a stored event; ``None`` when the same signed request came before.

        Raises ``signatures.SignatureError`` (nothing stored) and
        ``firelink_core.params.ParamError`` for a parameter the body gives wrongly (nothing
        stored), ``WebhookStopped`` once the trigger stopped (the daemon is stopping or the
        job was reloaded). The caller limits the body to ``max_body``."""
        if not self._running:
            raise WebhookStopped(f"the webhook trigger of job {self.context.job.name!r} is stopped")
        verified = verify(headers, body, self._secret, now=self.context.clock.now())
        params = self._params(body)
        path = await asyncio.to_thread(self.bodies.write, body)
        try:
            event = await self.context.emit(
                self._payload(body, headers, verified.scheme),
                {BODY_ENV: str(path)},
                dedupe_key=verified.dedupe_key,
                params=params,
            )
        except BaseException:
            await asyncio.to_thread(self.bodies.remove, path)
            raise
        if event is None:
            await asyncio.to_thread(self.bodies.remove, path)
        await asyncio.to_thread(self.bodies.prune)
        return event

    def _params(self, body: bytes) -> dict[str, Any] | None:
        """The top-level JSON keys of the body naming a declared, non-secret parameter."""
        declared = self.context.job.params
        if not declared:
            return None
        try:
            data = json.loads(body)
        except (ValueError, UnicodeDecodeError):
            return None
        if not isinstance(data, dict):
            return None
        return {
            name: value
            for name, value in data.items()
            if name in declared and not declared[name].secret
        }

    @staticmethod
    def _payload(body: bytes, headers: Mapping[str, str], scheme: str) -> dict[str, Any]:
        """What ``FIRELINK_EVENT`` says about the request (never its body or signature)."""
        payload: dict[str, Any] = {"webhook": True, "signature": scheme, "bytes": len(body)}
        for field, header in (
            ("content_type", "Content-Type"),
            ("github_event", "X-GitHub-Event"),
            ("delivery", "X-GitHub-Delivery"),
        ):
            value = headers.get(header)
            if value:
                payload[field] = value[:_HEADER_MAX]
        return payload


def _folder_name(job: str) -> str:
    """A job name as one safe path component."""
    safe = "".join(c if c.isalnum() or c in "-_." else "_" for c in job).lstrip(".")
    return safe or "_"
