"""``POST /hooks/{job}``: the webhook trigger's endpoint (no bearer token: the request's
HMAC signature is its authentication).

Answers: 202 ``{"event_id": ...}`` once the event is stored; 200 ``{"duplicate": true}`` for
the same signed request sent again; 401 for a missing, wrong or stale signature; 404 when the
job has no started webhook trigger; 413 above the trigger's ``max_body``; 422 naming a
parameter the body gives wrongly; 503 when storage fails or the trigger is stopping. Nothing is stored but on 202.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from aiohttp import web

from firelink_core.plugin_api import ParamError, StorageError

from .context import CONTEXT
from .signatures import SignatureError
from .trigger import WebhookStopped, WebhookTrigger, find_webhook, set_served

__all__ = ["read_limited", "setup"]

log = logging.getLogger("firelink.web.hooks")
_CHUNK = 64 * 1024


def setup(app: web.Application) -> None:
    """Add the webhook route to ``app`` (the shared context is ``app[CONTEXT]``)."""
    app.router.add_post("/hooks/{job}", receive)
    state_dir = _state_dir(app)

    async def listening(_: web.Application) -> None:
        set_served(state_dir, True)

    async def closing(_: web.Application) -> None:
        set_served(state_dir, False)

    app.on_startup.append(listening)
    app.on_cleanup.append(closing)


def _state_dir(app: web.Application) -> Path:
    """The daemon's state directory: webhook triggers are found by it and their job."""
    context: Any = app[CONTEXT]
    state_dir = getattr(context, "state_dir", None)
    if state_dir is None:
        state_dir = context.host.state_dir
    return Path(state_dir)


def _error(status: int, message: str, **extra: object) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


async def read_limited(request: web.Request, limit: int) -> bytes | None:
    """The request's body, or ``None`` as soon as it is longer than ``limit`` bytes."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    while True:
        chunk = await request.content.read(_CHUNK)
        if not chunk:
            return b"".join(chunks)
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)


async def receive(request: web.Request) -> web.Response:
    """One webhook request: checked, then stored as the job's event."""
    job = request.match_info["job"]
    trigger: WebhookTrigger | None = find_webhook(_state_dir(request.app), job)
    if trigger is None:
        return _error(404, f"no job {job!r} with a webhook trigger is running")
    body = await read_limited(request, trigger.max_body)
    if body is None:
        log.info("webhook %s: body over %d bytes refused", job, trigger.max_body)
        return _error(
            413, f"the body is larger than this trigger's max_body ({trigger.max_body} bytes)"
        )
    try:
        event = await trigger.receive(body, request.headers)
    except SignatureError as exc:
        log.info("webhook %s: refused: %s", job, exc)
        return _error(401, str(exc))
    except ParamError as exc:
        return _error(422, exc.message, param=exc.param)
    except WebhookStopped:
        return _error(503, "the daemon is stopping or reloading this job; send it again later")
    except StorageError as exc:
        log.warning("webhook %s: the event could not be stored: %s", job, exc)
        return _error(503, "the event could not be stored; send it again later")
    if event is None:
        return web.json_response({"duplicate": True}, status=200)
    log.info("webhook %s: event %s stored", job, event.id)
    return web.json_response({"event_id": event.id, "job": job}, status=202)
