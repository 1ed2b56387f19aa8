"""The control requests that pause, resume and explain jobs (``firelink pause``, ``resume``,
``explain``). Each checks its request's fields, calls the engine's API and answers data or
raises ``ControlError`` with a stable code (``bad-request``, ``unknown-job``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._control import ControlError, suggest, to_jsonable

if TYPE_CHECKING:
    from .engine import Engine

__all__ = ["MAX_EXPLAIN", "MAX_REASON", "explain", "pause", "resume"]

MAX_REASON = 1000
"""The longest pause reason accepted (characters)."""
MAX_EXPLAIN = 500
"""The most decisions one ``explain`` answers (the engine keeps about as many per job)."""


def _flag(request: Mapping[str, Any], name: str) -> bool:
    raw = request.get(name, False)
    if not isinstance(raw, bool):
        raise ControlError("bad-request", f"{name} must be true or false")
    return raw


def _unknown(job: str, names: Sequence[str]) -> ControlError:
    return ControlError(
        "unknown-job", f"no job named {job!r}", job=job, suggestions=suggest(job, names)
    )


def _jobs(engine: Engine, request: Mapping[str, Any], every: Sequence[str]) -> list[str]:
    """The jobs a request names (``jobs``), or ``every`` with ``all``; all must be known."""
    raw = request.get("jobs")
    if raw is None:
        raw = []
    if not isinstance(raw, list) or not all(isinstance(j, str) and j for j in raw):
        raise ControlError("bad-request", "jobs must be a list of job names")
    if _flag(request, "all"):
        if raw:
            raise ControlError("bad-request", "give job names or all, not both")
        return list(every)
    if not raw:
        raise ControlError("bad-request", "name at least one job (or all)")
    names = list(engine.config.job_names)
    for job in raw:
        if job not in names:
            raise _unknown(job, names)
    return list(dict.fromkeys(raw))


async def pause(engine: Engine, request: Mapping[str, Any]) -> dict[str, Any]:
    """``{"jobs": [...] | "all": true, "reason": text}`` → each job's pause, ``changed`` false
    for a job that was paused already."""
    reason = request.get("reason")
    if reason is not None and (not isinstance(reason, str) or len(reason) > MAX_REASON):
        raise ControlError(
            "bad-request", f"reason must be a text of at most {MAX_REASON} characters"
        )
    names = _jobs(engine, request, engine.config.job_names)
    paused = await engine.pause(names, reason.strip() or None if reason else None)
    return {"paused": [{**to_jsonable(record), "changed": changed} for record, changed in paused]}


async def resume(engine: Engine, request: Mapping[str, Any]) -> dict[str, Any]:
    """``{"jobs": [...] | "all": true, "catch_up": bool}`` → each job's resume (``resumed``
    false for a job that was not paused; with ``all``, the paused jobs)."""
    catch_up = _flag(request, "catch_up")
    names = _jobs(engine, request, engine.paused_jobs())
    return {"resumed": to_jsonable(await engine.resume(names, catch_up=catch_up))}


async def explain(engine: Engine, request: Mapping[str, Any]) -> dict[str, Any]:
    """``{"job": name, "limit": n}`` → the job's decisions newest first, its next due time
    and what it waits for now."""
    job = request.get("job")
    if not isinstance(job, str) or not job:
        raise ControlError("bad-request", "a job name is required")
    names = list(engine.config.job_names)
    if job not in names:
        raise _unknown(job, names)
    limit = request.get("limit", 20)
    if type(limit) is not int or not 1 <= limit <= MAX_EXPLAIN:
        raise ControlError("bad-request", f"limit must be an integer from 1 to {MAX_EXPLAIN}")
    return to_jsonable(await engine.explain(job, limit))
