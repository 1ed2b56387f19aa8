"""The control requests of day-to-day operations on the daemon: ``backfill`` and ``retry``.

Each checks its request's fields, calls the engine's API and answers data or raises
``ControlError`` with a stable code (``bad-request``, ``unknown-job``, ``unknown-run``,
``ambiguous-run``, ``cannot-backfill``, ``cannot-retry``)."""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ._control import ControlError, suggest

if TYPE_CHECKING:
    from .abc import Storage
    from .engine import Engine
    from .records import RunRecord, RunState

__all__ = ["backfill", "retry", "runs_page"]

MAX_BACKFILL_PARALLEL = 10_000
RECENT_RUNS = 200
"""How many of the newest runs an unknown run id is compared with for 'did you mean'."""


def _flag(request: Mapping[str, Any], name: str, default: bool) -> bool:
    raw = request.get(name, default)
    if not isinstance(raw, bool):
        raise ControlError("bad-request", f"{name} must be true or false")
    return raw


def _text(request: Mapping[str, Any], name: str) -> str:
    raw = request.get(name)
    if not isinstance(raw, str) or not raw.strip() or len(raw) > 200:
        raise ControlError("bad-request", f"{name} is required: a date or date-time (ISO 8601)")
    return raw


def _job(engine: Engine, raw: Any, names: Sequence[str]) -> str:
    if not isinstance(raw, str) or not raw:
        raise ControlError("bad-request", "a job name is required")
    if raw not in names:
        raise ControlError(
            "unknown-job", f"no job named {raw!r}", job=raw, suggestions=suggest(raw, list(names))
        )
    return raw


async def backfill(engine: Engine, request: Mapping[str, Any]) -> dict[str, Any]:
    """``Engine.backfill`` for a request: ``from``/``to`` read in the job's zone without an offset."""
    from .engine.backfill import BackfillError
    from .engine.errors import EngineError
    from .engine.preview import job_zone, parse_instant

    name = _job(engine, request.get("job"), engine.config.job_names)
    max_parallel = request.get("max_parallel")
    if max_parallel is not None and (
        type(max_parallel) is not int or not 1 <= max_parallel <= MAX_BACKFILL_PARALLEL
    ):
        raise ControlError(
            "bad-request", f"max_parallel must be an integer from 1 to {MAX_BACKFILL_PARALLEL}"
        )
    zone = job_zone(engine.config.job(name))
    try:
        start = parse_instant(_text(request, "from"), zone)
        end = parse_instant(_text(request, "to"), zone)
    except ValueError as exc:
        raise ControlError("bad-request", str(exc)) from None
    try:
        return await engine.backfill(
            name,
            start,
            end,
            max_parallel=max_parallel,
            dry_run=_flag(request, "dry_run", False),
            rerun=_flag(request, "rerun", False),
            downstream=_flag(request, "downstream", True),
        )
    except (BackfillError, EngineError) as exc:
        raise ControlError("cannot-backfill", str(exc), job=name) from None


async def retry(engine: Engine, request: Mapping[str, Any]) -> dict[str, Any]:
    """``Engine.retry`` for a request naming a run by its id or a unique prefix of it."""
    from .engine.retry import RetryError
    from .run_ids import AmbiguousRunId, RunIdError, resolve_run

    raw = request.get("run_id")
    if not isinstance(raw, str) or not raw or len(raw) > 1024:
        raise ControlError("bad-request", "run_id is required")
    try:
        run = await resolve_run(engine.storage, raw)
    except AmbiguousRunId as exc:
        raise ControlError(
            exc.code, exc.message, run_id=raw, candidates=[r.id for r in exc.candidates]
        ) from None
    except RunIdError as exc:
        recent = [listed.id for listed in await engine.storage.list_runs(None, limit=RECENT_RUNS)]
        raise ControlError(
            exc.code, exc.message, run_id=raw, suggestions=suggest(raw, recent)
        ) from None
    try:
        return await engine.retry(run.id, from_failed=_flag(request, "from_failed", False))
    except RetryError as exc:
        raise ControlError("cannot-retry", str(exc), run_id=run.id) from None
    except KeyError as exc:
        job = exc.args[0] if exc.args else run.job
        raise ControlError(
            "unknown-job",
            f"job {job!r} of run {run.id} is not in the config any more",
            job=job,
            suggestions=[],
        ) from None
    except LookupError:
        raise ControlError("unknown-run", f"no run {raw!r}", run_id=raw) from None


def _time(request: Mapping[str, Any], name: str) -> float | None:
    raw = request.get(name)
    if raw is None:
        return None
    if type(raw) not in (int, float) or not math.isfinite(raw):
        raise ControlError("bad-request", f"{name} must be epoch seconds")
    return float(raw)


async def runs_page(
    storage: Storage,
    request: Mapping[str, Any],
    job: str | None,
    states: list[RunState] | None,
    limit: int | None,
) -> tuple[list[RunRecord], str | None] | None:
    """A ``runs`` request asking for a page (``since``/``until`` epoch seconds, ``cursor``,
    ``page``): its runs and the next page's cursor; ``None`` for a plain list."""
    since, until = _time(request, "since"), _time(request, "until")
    cursor = request.get("cursor")
    if cursor is not None and (not isinstance(cursor, str) or not cursor or len(cursor) > 1024):
        raise ControlError("bad-request", "cursor must be a non-empty string")
    if not isinstance(request.get("page", False), bool):
        raise ControlError("bad-request", "page must be true or false")
    if since is None and until is None and cursor is None and not request.get("page"):
        return None
    try:
        return await storage.page_runs(
            job,
            states=states,
            created_after=since,
            created_before=until,
            limit=limit or 50,
            cursor=cursor,
        )
    except ValueError as exc:
        raise ControlError("bad-request", str(exc)) from None
