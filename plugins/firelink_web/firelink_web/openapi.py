"""The OpenAPI 3.1 document of the JSON API (``GET /api/v1/openapi.json``)."""

from __future__ import annotations

from typing import Any

__all__ = ["openapi_document"]

_ERROR = {"$ref": "#/components/schemas/Error"}


def _op(
    summary: str,
    *,
    params: list[dict[str, Any]] | None = None,
    body: bool = False,
    ok: str = "200",
    errors: tuple[str, ...] = ("401",),
    public: bool = False,
) -> dict[str, Any]:
    responses: dict[str, Any] = {
        ok: {"description": "success", "content": {"application/json": {}}}
    }
    for status in errors:
        responses[status] = {
            "description": _WHY[status],
            "content": {"application/json": {"schema": _ERROR}},
        }
    op: dict[str, Any] = {"summary": summary, "responses": responses}
    if params:
        op["parameters"] = params
    if body:
        op["requestBody"] = {
            "required": False,
            "content": {"application/json": {"schema": {"type": "object"}}},
        }
    if public:
        op["security"] = []
    return op


_WHY = {
    "400": "malformed request (the message says what was expected)",
    "401": "no or wrong bearer token / session",
    "403": "a session request without its CSRF token",
    "404": "unknown job or run (with suggestions)",
    "409": "the job's or run's state forbids it",
    "422": "a parameter the job refuses (names it)",
}


def _path(name: str, description: str) -> dict[str, Any]:
    return {
        "name": name,
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
        "description": description,
    }


def _query(name: str, description: str, kind: str = "string") -> dict[str, Any]:
    return {
        "name": name,
        "in": "query",
        "required": False,
        "schema": {"type": kind},
        "description": description,
    }


def openapi_document(version: str) -> dict[str, Any]:
    """The document, for this server's ``version``."""
    job = _path("job", "a job name")
    run = _path("run_id", "a run id or a unique prefix of it")
    return {
        "openapi": "3.1.0",
        "info": {
            "title": "firelink",
            "version": version,
            "description": "The firelink daemon's HTTP API.",
        },
        "components": {
            "securitySchemes": {
                "bearer": {"type": "http", "scheme": "bearer"},
                "session": {"type": "apiKey", "in": "cookie", "name": "firelink_session"},
            },
            "schemas": {
                "Error": {
                    "type": "object",
                    "properties": {
                        "error": {
                            "type": "object",
                            "properties": {
                                "code": {"type": "string"},
                                "message": {"type": "string"},
                            },
                            "required": ["code", "message"],
                        }
                    },
                }
            },
        },
        "security": [{"bearer": []}, {"session": []}],
        "paths": {
            "/api/v1/health": {"get": _op("liveness and version", errors=(), public=True)},
            "/api/v1/jobs": {
                "get": _op(
                    "jobs with triggers, state, pause, last run, next due",
                    params=[
                        _query("q", "a part of the job name"),
                        _query("state", "idle, running, waiting, failing, paused, disabled"),
                        _query("offset", "skip this many", "integer"),
                        _query("limit", "at most this many", "integer"),
                    ],
                    errors=("400", "401"),
                )
            },
            "/api/v1/jobs/{job}": {
                "get": _op(
                    "one job, its params and next fires", params=[job], errors=("401", "404")
                )
            },
            "/api/v1/jobs/{job}/trigger": {
                "post": _op(
                    'run the job: body {"params": {...}} -> {"run_id"}',
                    params=[job],
                    body=True,
                    ok="202",
                    errors=("400", "401", "403", "404", "409", "422"),
                )
            },
            "/api/v1/jobs/{job}/pause": {
                "post": _op(
                    'pause the job: body {"reason": text} (optional)',
                    params=[job],
                    body=True,
                    errors=("400", "401", "403", "404"),
                )
            },
            "/api/v1/jobs/{job}/resume": {
                "post": _op(
                    'resume the job: body {"catch_up": bool} (optional)',
                    params=[job],
                    body=True,
                    errors=("400", "401", "403", "404"),
                )
            },
            "/api/v1/runs": {
                "get": _op(
                    "run history, newest first, with cursor pagination",
                    params=[
                        _query("job", "one job"),
                        _query("state", "run states, comma-separated or repeated"),
                        _query("since", "epoch seconds or ISO 8601"),
                        _query("limit", "page size (1-500)", "integer"),
                        _query("cursor", "next_cursor of the previous page"),
                    ],
                    errors=("400", "401", "404"),
                )
            },
            "/api/v1/runs/{run_id}": {
                "get": _op(
                    "a run with its attempts, parameters (secrets masked), parent and upstream",
                    params=[run],
                    errors=("401", "404"),
                )
            },
            "/api/v1/runs/{run_id}/log": {
                "get": _op(
                    "the log (text/plain); Accept: text/event-stream follows a running run",
                    params=[run],
                    errors=("401", "404"),
                )
            },
            "/api/v1/runs/{run_id}/retry": {
                "post": _op(
                    "retry the run (a new run)",
                    params=[run, _query("from_failed", "1: only the failed part of its chain")],
                    ok="202",
                    errors=("401", "403", "404", "409"),
                )
            },
            "/api/v1/runs/{run_id}/cancel": {
                "post": _op(
                    "cancel the run; answered once it has ended",
                    params=[run],
                    errors=("401", "403", "404", "409"),
                )
            },
            "/api/v1/events": {
                "get": _op(
                    "server-sent events: every run lifecycle event as it is recorded",
                    errors=("401",),
                )
            },
        },
    }
