"""The JSON API under ``/api/v1`` (described by ``/api/v1/openapi.json``).

Every operation is a control request served in-process (``WebContext.request``): the answers
and errors are the CLI's. Errors are ``{"error": {"code", "message", ...}}`` with a status:
404 for an unknown job or run (with ``suggestions``), 400 for a malformed request, 422 for a
parameter the job refuses, 409 when the state forbids the operation.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import math
from collections.abc import Awaitable, Callable
from datetime import datetime
from pathlib import Path
from typing import Any

from aiohttp import web

from firelink_core.plugin_api import FIRELINK_VERSION as __version__
from firelink_core.plugin_api import ControlError, attempt_log_path, suggest, to_jsonable

from .context import CONTEXT, WebContext, public_run
from .openapi import openapi_document

__all__ = ["setup", "error_response", "sse_headers"]

PREFIX = "/api/v1"
MAX_LIMIT = 500
STATUS_OF: dict[str, int] = {
    "unknown-job": 404,
    "unknown-run": 404,
    "no-runs": 404,
    "bad-request": 400,
    "bad-param": 422,
    "ambiguous-run": 409,
    "paused": 409,
    "cannot-retry": 409,
    "run-ended": 409,
    "cannot-backfill": 409,
    "stopping": 503,
}
RECENT_RUNS = 200


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, **data: Any) -> None:
        super().__init__(message)
        self.status, self.code, self.message, self.data = status, code, message, data


def error_response(status: int, code: str, message: str, **data: Any) -> web.Response:
    """``{"error": {"code", "message", ...}}`` with ``status``."""
    return web.json_response({"error": {"code": code, "message": message, **data}}, status=status)


def _did_you_mean(message: str, suggestions: list[str]) -> str:
    if not suggestions:
        return message
    return f"{message}; did you mean {' or '.join(map(repr, suggestions))}?"


@web.middleware
async def _errors(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    if not request.path.startswith(PREFIX):
        return await handler(request)
    try:
        return await handler(request)
    except ApiError as exc:
        return error_response(exc.status, exc.code, exc.message, **exc.data)
    except ControlError as exc:
        data = dict(exc.data)
        message = _did_you_mean(exc.message, list(data.get("suggestions") or []))
        return error_response(STATUS_OF.get(exc.code, 500), exc.code, message, **data)


def _ctx(request: web.Request) -> WebContext:
    return request.app[CONTEXT]


async def _body(request: web.Request, expected: str) -> dict[str, Any]:
    """The JSON object of the body (an empty body is ``{}``); 400 naming what was expected."""
    raw = await request.read()
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except ValueError as exc:
        raise ApiError(
            400, "bad-request", f"the body is not JSON ({exc}); expected {expected}"
        ) from None
    if not isinstance(data, dict):
        raise ApiError(400, "bad-request", f"expected a JSON object: {expected}")
    return data


def _job_name(request: web.Request) -> str:
    name = request.match_info["job"]
    names = _ctx(request).job_names()
    if name not in names:
        suggestions = suggest(name, names)
        raise ApiError(
            404,
            "unknown-job",
            _did_you_mean(f"no job named {name!r}", suggestions),
            job=name,
            suggestions=suggestions,
        )
    return name


def _params_schema(spec: Any) -> list[dict[str, Any]]:
    out = []
    for param in spec.params.values():
        out.append(
            {
                "name": param.name,
                "type": param.type,
                "required": param.required,
                "default": None if param.secret else to_jsonable(param.default),
                "enum": None if param.enum is None else list(param.enum),
                "pattern": param.pattern,
                "description": param.description,
                "secret": param.secret,
            }
        )
    return out


def _job_json(status: Any) -> dict[str, Any]:
    """One job as the API shows it (never its ``env:`` or command)."""
    return {
        "name": status.name,
        "description": status.description,
        "triggers": list(status.triggers),
        "state": status.state,
        "paused": to_jsonable(status.paused),
        "running": status.running,
        "waiting": status.waiting,
        "timezone": status.timezone,
        "next_due": to_jsonable(status.next_due),
        "last_run": public_run(to_jsonable(status.last_run))
        if status.last_run is not None
        else None,
    }


# --------------------------------------------------------------------------- handlers


async def health(request: web.Request) -> web.Response:
    return web.json_response({"status": "ok", "version": __version__})


async def openapi(request: web.Request) -> web.Response:
    return web.json_response(openapi_document(__version__))


def _int_query(request: web.Request, name: str, default: int, low: int, high: int) -> int:
    raw = request.query.get(name)
    if raw is None or raw == "":
        return default
    if not raw.isdigit() or not low <= int(raw) <= high:
        raise ApiError(
            400, "bad-request", f"{name} must be an integer from {low} to {high}, got {raw!r}"
        )
    return int(raw)


async def list_jobs(request: web.Request) -> web.Response:
    """``?q=`` (a part of the name), ``?state=``, ``?offset=``, ``?limit=`` (server-side pages)."""
    ctx = _ctx(request)
    query = request.query.get("q", "").strip().lower()
    state = request.query.get("state")
    limit = _int_query(request, "limit", MAX_LIMIT, 1, 10_000)
    offset = _int_query(request, "offset", 0, 0, 10**9)
    names = [n for n in ctx.job_names() if not query or query in n.lower()]
    if state is not None:  # the state filter needs every matching job's status
        statuses = [s for s in map(ctx.engine.job_status, names) if s.state == state]
        page = statuses[offset : offset + limit]
        total = len(statuses)
    else:  # only the page's statuses are computed (10,000 jobs stay cheap)
        page = [ctx.engine.job_status(n) for n in names[offset : offset + limit]]
        total = len(names)
    return web.json_response(
        {
            "jobs": [_job_json(s) for s in page],
            "total": total,
            "offset": offset,
            "limit": limit,
        }
    )


async def get_job(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    name = _job_name(request)
    status = ctx.engine.job_status(name)
    spec = ctx.config.job(name)
    out = _job_json(status)
    out["params"] = _params_schema(spec)
    out["depends_on"] = list(spec.depends_on.jobs) if spec.depends_on else []
    out["next_fires"] = ctx.next_fires(name, 5)
    out["enabled"] = spec.enabled
    return web.json_response(out)


async def trigger_job(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    name = _job_name(request)
    body = await _body(request, '{"params": {"NAME": value, ...}}')
    unknown = sorted(set(body) - {"params"})
    if unknown:
        raise ApiError(
            400,
            "bad-request",
            f'unknown field(s) {", ".join(map(repr, unknown))}: expected {{"params": {{...}}}}',
        )
    params = body.get("params") or {}
    if not isinstance(params, dict):
        raise ApiError(400, "bad-request", 'params must be an object: {"params": {"NAME": value}}')
    texts: dict[str, str] = {}
    for key, value in params.items():
        if isinstance(value, bool):
            texts[key] = "true" if value else "false"
        elif isinstance(value, (str, int, float)) and not (
            isinstance(value, float) and not math.isfinite(value)
        ):
            texts[key] = str(value)
        else:
            raise ApiError(
                422,
                "bad-param",
                f"parameter {key!r} must be a string, a number or a boolean",
                param=key,
            )
    result = await ctx.request("trigger", job=name, params=texts)
    return web.json_response({"run_id": result["run_id"], "job": name}, status=202)


async def pause_job(request: web.Request) -> web.Response:
    name = _job_name(request)
    body = await _body(request, '{"reason": "why"} (optional)')
    result = await _ctx(request).request("pause", jobs=[name], reason=body.get("reason"))
    return web.json_response(result)


async def resume_job(request: web.Request) -> web.Response:
    name = _job_name(request)
    body = await _body(request, '{"catch_up": true|false} (optional)')
    result = await _ctx(request).request(
        "resume", jobs=[name], catch_up=body.get("catch_up", False)
    )
    return web.json_response(result)


def _since(raw: str | None) -> float | None:
    if raw is None or raw == "":
        return None
    try:
        return (
            float(raw)
            if raw.replace(".", "", 1).isdigit()
            else datetime.fromisoformat(raw.replace("Z", "+00:00")).timestamp()
        )
    except ValueError:
        raise ApiError(
            400, "bad-request", f"since must be epoch seconds or an ISO 8601 date-time, got {raw!r}"
        ) from None


async def list_runs(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    args: dict[str, Any] = {"page": True, "limit": _int_query(request, "limit", 50, 1, MAX_LIMIT)}
    job = request.query.get("job")
    if job:
        args["job"] = job
    states = [s for s in request.query.getall("state", []) for s in s.split(",") if s]
    if states:
        args["states"] = states
    since = _since(request.query.get("since"))
    if since is not None:
        args["since"] = since
    cursor = request.query.get("cursor")
    if cursor:
        args["cursor"] = cursor
    result = await ctx.request("runs", **args)
    return web.json_response(
        {"runs": [public_run(r) for r in result["runs"]], "next_cursor": result.get("next_cursor")}
    )


async def _run(request: web.Request) -> dict[str, Any]:
    """The ``run`` answer for the path's run id (or unique prefix); 404 with suggestions."""
    ctx = _ctx(request)
    raw = request.match_info["run_id"]
    try:
        return await ctx.request("run", run_id=raw)
    except ControlError as exc:
        if exc.code != "unknown-run":
            raise
        recent = await ctx.request("runs", limit=RECENT_RUNS)
        suggestions = suggest(raw, [r["id"] for r in recent["runs"]])
        raise ApiError(
            404,
            "unknown-run",
            _did_you_mean(exc.message, suggestions),
            run_id=raw,
            suggestions=suggestions,
        ) from None


async def get_run(request: web.Request) -> web.Response:
    ctx = _ctx(request)
    answer = await _run(request)
    run = public_run(answer["run"])
    with contextlib.suppress(KeyError):
        spec = ctx.config.job(run["job"])
        run["upstream"] = list(spec.depends_on.jobs) if spec.depends_on else []
    run.setdefault("upstream", [])
    run["params"] = dict((run.get("options") or {}).get("params") or {})
    return web.json_response({"run": run, "attempts": answer["attempts"]})


def _read_logs(state_dir: Path, run: dict[str, Any], attempts: list[dict[str, Any]]) -> str:
    parts = []
    for attempt in sorted(attempts, key=lambda a: a["number"]):
        path = Path(
            attempt.get("log_path")
            or attempt_log_path(state_dir, run["job"], run["id"], attempt["number"])
        )
        try:
            parts.append(path.read_bytes().decode("utf-8", "replace"))
        except OSError:
            continue
    return "".join(parts)


def sse_headers() -> dict[str, str]:
    return {
        "Content-Type": "text/event-stream",
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",
    }


async def _sse(response: web.StreamResponse, event: str, data: Any, event_id: Any = None) -> None:
    lines = [f"event: {event}"]
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append("data: " + json.dumps(data, separators=(",", ":")))
    await response.write(("\n".join(lines) + "\n\n").encode())


async def run_log(request: web.Request) -> web.StreamResponse:
    """The run's log as text; ``Accept: text/event-stream`` follows it (events ``attempt``,
    ``log``, ``state``, then ``done`` with the run)."""
    ctx = _ctx(request)
    answer = await _run(request)
    run = answer["run"]
    if "text/event-stream" not in request.headers.get("Accept", ""):
        text = await asyncio.to_thread(_read_logs, ctx.state_dir, run, answer["attempts"])
        return web.Response(text=text, content_type="text/plain", charset="utf-8")
    response = web.StreamResponse(headers=sse_headers())
    await response.prepare(request)
    stream = ctx.stream("follow", run_id=run["id"])
    try:
        async for message in stream:
            if "ok" in message:
                continue
            if "log" in message:
                await _sse(response, "log", message["log"])
            elif "attempt" in message:
                await _sse(response, "attempt", message["attempt"])
            elif "state" in message:
                await _sse(response, "state", message)
            elif message.get("done"):
                await _sse(response, "done", public_run(message.get("run") or {}))
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    finally:
        await stream.aclose()  # type: ignore[attr-defined]
    return response


async def retry_run(request: web.Request) -> web.Response:
    answer = await _run(request)
    from_failed = request.query.get("from_failed", "") in ("1", "true", "yes")
    result = await _ctx(request).request(
        "retry", run_id=answer["run"]["id"], from_failed=from_failed
    )
    return web.json_response(to_jsonable(result), status=202)


async def cancel_run(request: web.Request) -> web.Response:
    answer = await _run(request)
    result = await _ctx(request).request("cancel", run_id=answer["run"]["id"])
    return web.json_response({"run": public_run(result["run"])})


async def events(request: web.Request) -> web.StreamResponse:
    """Every run lifecycle event as it is recorded (SSE ``event: run``), in order."""
    ctx = _ctx(request)
    response = web.StreamResponse(headers=sse_headers())
    await response.prepare(request)
    # A first comment line flushes the headers: a client knows it is subscribed.
    await response.write(b": subscribed\n\n")
    try:
        async for message in ctx.events():
            await _sse(response, "run", message, message["id"])
    except (ConnectionResetError, asyncio.CancelledError):
        pass
    return response


def setup(app: web.Application) -> None:
    """Add the ``/api/v1`` routes to ``app``."""
    app.middlewares.append(_errors)
    r = app.router
    r.add_get(f"{PREFIX}/health", health)
    r.add_get(f"{PREFIX}/openapi.json", openapi)
    r.add_get(f"{PREFIX}/jobs", list_jobs)
    r.add_get(f"{PREFIX}/jobs/{{job}}", get_job)
    r.add_post(f"{PREFIX}/jobs/{{job}}/trigger", trigger_job)
    r.add_post(f"{PREFIX}/jobs/{{job}}/pause", pause_job)
    r.add_post(f"{PREFIX}/jobs/{{job}}/resume", resume_job)
    r.add_get(f"{PREFIX}/runs", list_runs)
    r.add_get(f"{PREFIX}/runs/{{run_id}}", get_run)
    r.add_get(f"{PREFIX}/runs/{{run_id}}/log", run_log)
    r.add_post(f"{PREFIX}/runs/{{run_id}}/retry", retry_run)
    r.add_post(f"{PREFIX}/runs/{{run_id}}/cancel", cancel_run)
    r.add_get(f"{PREFIX}/events", events)
