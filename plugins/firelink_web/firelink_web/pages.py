"""The dashboard's HTML pages: jobs, a job, runs, a run and the dependency graph.

Server-rendered Jinja2 templates (``templates/``) with one small script and one stylesheet
(``static/``, shipped in the wheel): no build step. Every operation (trigger, pause, resume,
retry, cancel) and every run listing goes through the shared context's ``request``, the same
handling as the control socket's; the pages only read the job list and the config to draw
and filter. Live updates come from ``/api/v1/events`` in the browser (``static/firelink.js``):
nothing here polls. Every form carries a CSRF token checked before anything is done.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import math
import urllib.parse
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import jinja2
from aiohttp import web

from firelink_core.plugin_api import ControlError, suggest

from . import auth
from .context import CONTEXT, WebContext

__all__ = ["PAGE_SIZE", "setup"]

PAGE_SIZE = 100
"""Jobs on one page of the jobs list."""
RUNS_PAGE = 50
"""Runs on one page of the runs list."""
RECENT = 12
"""Runs in a job's strip of recent outcomes."""
JOB_RUNS = 20
"""Runs on a job's page."""
GRAPH_MAX = 400
"""The most jobs the graph draws at once (name a job to see its neighbourhood)."""
LOG_TAIL = 256 * 1024
"""The most bytes of each attempt's log a run page shows before following."""
JOB_STATES = ("idle", "running", "waiting", "failing", "paused", "disabled")
RUN_STATES = (
    "queued",
    "waiting",
    "running",
    "retrying",
    "success",
    "failed",
    "timed_out",
    "skipped",
    "upstream_failed",
    "interrupted",
    "cancelled",
)
FLASHES = {
    "started": "run started",
    "paused": "paused",
    "resumed": "resumed",
    "retried": "retry started",
    "cancelled": "cancelled",
}
"""What a page says after a form's action (``?done=KEY``)."""
_HERE = Path(__file__).parent
_ENV: web.AppKey[jinja2.Environment] = web.AppKey("firelink_web_templates", jinja2.Environment)


def setup(app: web.Application) -> None:
    """Add the dashboard's routes to ``app`` (the shared context is ``app[CONTEXT]``)."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(_HERE / "templates"),
        autoescape=jinja2.select_autoescape(["html"], default=True),
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals["static_url"] = lambda name: f"/static/{name}"
    app[_ENV] = env
    app.router.add_get("/", _index)
    app.router.add_get("/jobs", jobs_page)
    app.router.add_get("/jobs/{job}", job_page)
    app.router.add_get("/jobs/{job}/row", job_row)
    app.router.add_get("/jobs/{job}/runs", job_runs)
    app.router.add_get("/jobs/{job}/head", job_head)
    app.router.add_post("/jobs/{job}/trigger", trigger_job)
    app.router.add_post("/jobs/{job}/pause", pause_job)
    app.router.add_post("/jobs/{job}/resume", resume_job)
    app.router.add_get("/runs", runs_page)
    app.router.add_get("/runs/{run}", run_page)
    app.router.add_get("/runs/{run}/facts", run_facts)
    app.router.add_post("/runs/{run}/retry", retry_run)
    app.router.add_post("/runs/{run}/cancel", cancel_run)
    app.router.add_get("/graph", graph_page)
    app.router.add_static("/static", _HERE / "static", append_version=False)


# --------------------------------------------------------------------------- helpers


def _ctx(request: web.Request) -> WebContext:
    return request.app[CONTEXT]


async def _ask(request: web.Request, cmd: str, **fields: Any) -> Any:
    """One control request served in the daemon (the socket's own handling); its result."""
    return await _ctx(request).request(cmd, **fields)


def _render(request: web.Request, name: str, status: int = 200, **values: Any) -> web.Response:
    # A fixed message by name: a link cannot make the page say something else.
    text = FLASHES.get(request.query.get("done", ""))
    values.setdefault("flash", {"text": text, "kind": ""} if text else None)
    values.setdefault("section", "")
    values["csrf_token"] = auth.csrf_token(request)
    html = request.app[_ENV].get_template(name).render(**values)
    return web.Response(text=html, status=status, content_type="text/html", charset="utf-8")


def _fragment(request: web.Request, name: str, **values: Any) -> web.Response:
    values["csrf_token"] = auth.csrf_token(request)
    html = request.app[_ENV].get_template(name).render(**values)
    return web.Response(text=html, content_type="text/html", charset="utf-8")


def _error_page(request: web.Request, exc: ControlError) -> web.Response:
    status = {
        "unknown-job": 404,
        "unknown-run": 404,
        "no-runs": 404,
        "ambiguous-run": 409,
        "bad-param": 422,
        "paused": 409,
        "run-ended": 409,
        "cannot-retry": 409,
        "stopping": 503,
        "internal": 500,
    }.get(exc.code, 400)
    suggestions = exc.data.get("suggestions") or exc.data.get("candidates") or []
    prefix = "/jobs/" if exc.code == "unknown-job" else "/runs/"
    title = {404: "Not found", 409: "Not possible now", 422: "Invalid parameter"}.get(
        status, "Error"
    )
    return _render(
        request,
        "error.html",
        status=status,
        status_code=status,
        title=title,
        message=exc.message,
        suggestions=suggestions,
        prefix=prefix,
    )


def _redirect(path: str, done: str) -> web.HTTPSeeOther:
    """See the page at ``path``, saying what was done (a key of ``FLASHES``)."""
    return web.HTTPSeeOther(f"{path}?done={done}")


def _quote(name: str) -> str:
    return urllib.parse.quote(name, safe="")


async def _form(request: web.Request) -> Mapping[str, Any]:
    """The posted form, its CSRF token checked (403 otherwise: nothing is done)."""
    form = await request.post()
    if not auth.check_csrf(request, form):
        raise web.HTTPForbidden(text="missing or wrong CSRF token: reload the page and try again")
    return form


def when(epoch: float | None) -> str:
    """Epoch seconds as ``2026-12-03 16:50:55 UTC`` (empty for none)."""
    if epoch is None:
        return ""
    return dt.datetime.fromtimestamp(epoch, dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _iso(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, (int, float)):
        return when(value)
    if isinstance(value, dt.datetime):
        return value.astimezone(dt.timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")
    return str(value)


def duration(seconds: float | None) -> str:
    """``1.2s``, ``3m 04s``, ``2h 05m``."""
    if seconds is None or not math.isfinite(seconds):
        return ""
    if seconds < 60:
        return f"{seconds:.1f}s"
    minutes, secs = divmod(int(seconds), 60)
    if minutes < 60:
        return f"{minutes}m {secs:02d}s"
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h {minutes:02d}m"


def _run_view(run: Mapping[str, Any]) -> dict[str, Any]:
    started, finished = run.get("started_at"), run.get("finished_at")
    state = run.get("state", "queued")
    return {
        **run,
        "short": run["id"][:8],
        "when": when(run.get("created_at")),
        "duration": duration(finished - started) if started and finished else "",
        "finished": state not in ("queued", "waiting", "running", "retrying"),
    }


def _attempt_view(attempt: Mapping[str, Any]) -> dict[str, Any]:
    started, finished = attempt.get("started_at"), attempt.get("finished_at")
    if finished is None:
        result = "running"
    elif attempt.get("timed_out"):
        result = "timed out"
    elif attempt.get("error"):
        result = f"failed: {attempt['error']}"
    elif attempt.get("signal") is not None:
        result = f"killed by signal {attempt['signal']}"
    else:
        result = f"exit code {attempt.get('exit_code')}"
    return {
        **attempt,
        "when": when(started),
        "duration": duration(finished - started) if started and finished else "",
        "result": result,
    }


def _status_view(status: Any) -> dict[str, Any]:
    """A job's status (the engine's ``JobStatus``) as the templates show it."""
    last = status.last_run
    paused = status.paused
    return {
        "name": status.name,
        "description": status.description,
        "state": status.state,
        "triggers": list(status.triggers),
        "timezone": status.timezone,
        "paused": None
        if paused is None
        else {"since": when(paused.since), "by": paused.by, "reason": paused.reason},
        "last_run": None
        if last is None
        else {"id": last.id, "state": last.state.value, "when": when(last.created_at)},
        "next_due": _iso(status.next_due),
        "recent": [],
    }


def _statuses(request: web.Request) -> list[Any]:
    return _ctx(request).status()


async def _recent(request: web.Request, job: str) -> list[dict[str, Any]]:
    result = await _ask(request, "runs", job=job, limit=RECENT)
    runs = [_run_view(r) for r in result.get("runs", [])]
    return list(reversed(runs))


def _job_names(request: web.Request) -> Sequence[str]:
    return _ctx(request).config.job_names


def _spec(request: web.Request, name: str) -> Any:
    config = _ctx(request).config
    if name not in config.job_names:
        raise ControlError(
            "unknown-job",
            f"no job named {name!r}",
            job=name,
            suggestions=suggest(name, list(config.job_names)),
        )
    return config.job(name)


# --------------------------------------------------------------------------- jobs


async def _index(request: web.Request) -> web.Response:
    raise web.HTTPFound("/jobs")


def _page_number(raw: str | None) -> int:
    try:
        return max(1, int(raw or 1))
    except ValueError:
        return 1


async def jobs_page(request: web.Request) -> web.Response:
    """Every job (filtered by name and state, a page at a time): state, pause, last result,
    next fire and a strip of recent outcomes."""
    q = request.query.get("q", "").strip()
    state = request.query.get("state", "")
    needle = q.lower()
    every = _job_names(request)
    if state:
        # A state filter needs every job's status; a name filter only the page's.
        matching = [
            s
            for s in _statuses(request)
            if (not needle or needle in s.name.lower())
            and (s.state == state or (state == "paused" and s.paused is not None))
        ]
        count = len(matching)
        pages = max(1, math.ceil(count / PAGE_SIZE))
        page = min(_page_number(request.query.get("page")), pages)
        chosen = matching[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
    else:
        names = [n for n in every if needle in n.lower()] if needle else list(every)
        count = len(names)
        pages = max(1, math.ceil(count / PAGE_SIZE))
        page = min(_page_number(request.query.get("page")), pages)
        chosen = [
            _ctx(request).engine.job_status(n)
            for n in names[(page - 1) * PAGE_SIZE : page * PAGE_SIZE]
        ]
    shown = [_status_view(s) for s in chosen]
    for job in shown:
        job["recent"] = await _recent(request, job["name"])

    def page_url(n: int) -> str:
        return "/jobs?" + urllib.parse.urlencode(
            {k: v for k, v in {"q": q, "state": state, "page": str(n)}.items() if v}
        )

    return _render(
        request,
        "jobs.html",
        section="jobs",
        jobs=shown,
        q=q,
        state=state,
        states=JOB_STATES,
        total=count,
        all_count=len(every),
        page=page,
        pages=pages,
        prev_url=page_url(page - 1) if page > 1 else None,
        next_url=page_url(page + 1) if page < pages else None,
    )


def _one_status(request: web.Request, name: str) -> Any:
    _spec(request, name)
    try:
        return _ctx(request).engine.job_status(name)
    except KeyError:
        raise ControlError(
            "unknown-job", f"no job named {name!r}", job=name, suggestions=[]
        ) from None


async def job_row(request: web.Request) -> web.Response:
    """One row of the jobs table (the script swaps it in when the job's runs move)."""
    name = request.match_info["job"]
    try:
        job = _status_view(_one_status(request, name))
        job["recent"] = await _recent(request, name)
    except ControlError as exc:
        return _error_page(request, exc)
    return _fragment(request, "_job_row.html", job=job)


async def job_runs(request: web.Request) -> web.Response:
    """The job page's table of runs (the script swaps it in when the job's runs move)."""
    name = request.match_info["job"]
    try:
        _spec(request, name)
        answer = await _ask(request, "runs", job=name, limit=JOB_RUNS)
    except ControlError as exc:
        return _error_page(request, exc)
    return _fragment(
        request,
        "_runs_table.html",
        runs=[_run_view(r) for r in answer.get("runs", [])],
        live_src=f"/jobs/{_quote(name)}/runs",
        live_job=name,
    )


def _params_view(spec: Any) -> list[dict[str, Any]]:
    out = []
    for param in spec.params.values():
        default = param.default
        if isinstance(default, bool):
            default = "true" if default else "false"
        out.append(
            {
                "name": param.name,
                "type": param.type,
                "required": param.required,
                "default": "" if default is None or param.secret else str(default),
                "enum": [str(v).lower() if isinstance(v, bool) else str(v) for v in param.enum]
                if param.enum
                else None,
                "pattern": param.pattern,
                "description": param.description,
                "secret": param.secret,
            }
        )
    return out


def _local(text: Any) -> str:
    try:
        return dt.datetime.fromisoformat(str(text)).strftime("%Y-%m-%d %H:%M:%S %z")
    except ValueError:
        return str(text or "")


def _next_fires(request: web.Request, name: str, count: int = 5) -> list[dict[str, str]]:
    fires = _ctx(request).next_fires(name, count)
    return [
        {
            "at": _iso(f.get("timestamp") or f.get("utc")),
            "local": _local(f.get("local")),
            "trigger": str(f.get("trigger") or ""),
            "note": str(f.get("dst") or f.get("note") or ""),
        }
        for f in fires
    ]


def _head_values(request: web.Request, name: str) -> dict[str, Any]:
    """A job page's header: its status, upstream and downstream jobs (``ControlError``)."""
    spec = _spec(request, name)
    downstream = [
        j.name
        for j in _ctx(request).config.jobs
        if j.depends_on is not None and name in j.depends_on.jobs
    ]
    return {
        "spec": spec,
        "job": _status_view(_one_status(request, name)),
        "upstream": list(spec.depends_on.jobs) if spec.depends_on else [],
        "downstream": downstream,
    }


async def job_head(request: web.Request) -> web.Response:
    """A job page's header, state and Pause/Resume (swapped in live as its runs move)."""
    try:
        values = _head_values(request, request.match_info["job"])
    except ControlError as exc:
        return _error_page(request, exc)
    return _fragment(request, "_job_head.html", **values)


async def job_page(request: web.Request, *, status: int = 200, flash: Any = None) -> web.Response:
    """A job: its schedule and next fires, its runs, Trigger (a form from ``params:``),
    Pause/Resume."""
    name = request.match_info["job"]
    try:
        values = _head_values(request, name)
        runs = await _ask(request, "runs", job=name, limit=JOB_RUNS)
    except ControlError as exc:
        return _error_page(request, exc)
    if flash is not None:
        values["flash"] = flash
    return _render(
        request,
        "job.html",
        status=status,
        section="jobs",
        params=_params_view(values["spec"]),
        next_fires=_next_fires(request, name),
        runs=[_run_view(r) for r in runs.get("runs", [])],
        **values,
    )


async def trigger_job(request: web.Request) -> web.StreamResponse:
    """Start a run with the form's parameters; a parameter error shows the form again (422)."""
    name = request.match_info["job"]
    form = await _form(request)
    params = {
        key.removeprefix("param."): str(value)
        for key, value in form.items()
        if key.startswith("param.") and str(value) != ""
    }
    try:
        answer = await _ask(request, "trigger", job=name, params=params)
    except ControlError as exc:
        if exc.code in ("bad-param", "paused"):
            return await job_page(
                request,
                status=422 if exc.code == "bad-param" else 409,
                flash={"text": exc.message, "kind": "error"},
            )
        return _error_page(request, exc)
    raise _redirect(f"/runs/{answer['run_id']}", "started")


async def pause_job(request: web.Request) -> web.StreamResponse:
    """Pause the job (as ``firelink pause JOB``)."""
    name = request.match_info["job"]
    await _form(request)
    try:
        await _ask(request, "pause", jobs=[name], reason="paused from the dashboard")
    except ControlError as exc:
        return _error_page(request, exc)
    raise _redirect(f"/jobs/{_quote(name)}", "paused")


async def resume_job(request: web.Request) -> web.StreamResponse:
    """Resume the job (as ``firelink resume JOB``)."""
    name = request.match_info["job"]
    await _form(request)
    try:
        await _ask(request, "resume", jobs=[name])
    except ControlError as exc:
        return _error_page(request, exc)
    raise _redirect(f"/jobs/{_quote(name)}", "resumed")


# --------------------------------------------------------------------------- runs


async def runs_page(request: web.Request) -> web.Response:
    """Run history, newest first, filtered by job and state, a cursor page at a time."""
    job = request.query.get("job", "").strip() or None
    state = request.query.get("state", "") or None
    cursor = request.query.get("cursor") or None
    fields: dict[str, Any] = {"limit": RUNS_PAGE, "page": True}
    if job:
        fields["job"] = job
    if state:
        fields["states"] = [state]
    if cursor:
        fields["cursor"] = cursor
    try:
        answer = await _ask(request, "runs", **fields)
    except ControlError as exc:
        return _error_page(request, exc)
    base = {k: v for k, v in {"job": job or "", "state": state or ""}.items() if v}
    next_cursor = answer.get("next_cursor")
    # The newest page follows new runs live (the script fetches it again, as a fragment).
    live_src = None if cursor else "/runs?" + urllib.parse.urlencode({**base, "fragment": "table"})
    if request.query.get("fragment") == "table":
        return _fragment(
            request,
            "_runs_table.html",
            runs=[_run_view(r) for r in answer.get("runs", [])],
            live_src=live_src,
            live_job=None,
        )
    return _render(
        request,
        "runs.html",
        section="runs",
        runs=[_run_view(r) for r in answer.get("runs", [])],
        job=job,
        state=state,
        states=RUN_STATES,
        next_url="/runs?" + urllib.parse.urlencode({**base, "cursor": next_cursor})
        if next_cursor
        else None,
        first_url=("/runs?" + urllib.parse.urlencode(base)) if cursor else None,
        live_src=live_src,
    )


def _read_tail(path: str | None) -> str:
    if not path:
        return ""
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - LOG_TAIL))
            data = f.read()
    except OSError:
        return ""
    return data.decode("utf-8", errors="replace")


async def _run_values(request: web.Request) -> dict[str, Any]:
    """A run, its attempts and parameters as the run page shows them (``ControlError``)."""
    answer = await _ask(request, "run", run_id=request.match_info["run"])
    run = _run_view(answer["run"])
    options = run.get("options") or {}
    return {
        "run": run,
        "attempts": [_attempt_view(a) for a in answer.get("attempts", [])],
        "params": sorted((options.get("params") or {}).items()),
    }


async def run_page(request: web.Request) -> web.Response:
    """A run: its facts, parameters (secret ones masked), attempts, log (followed live while
    it runs), Retry, Retry from failed and Cancel."""
    try:
        values = await _run_values(request)
    except ControlError as exc:
        return _error_page(request, exc)
    log = ""
    if values["run"]["finished"]:
        parts = []
        attempts = values["attempts"]
        for attempt in attempts:
            text = await asyncio.to_thread(_read_tail, attempt.get("log_path"))
            if len(attempts) > 1:
                parts.append(f"── attempt {attempt['number']} ──\n")
            parts.append(text)
        log = "".join(parts)
    return _render(request, "run.html", section="runs", log=log, **values)


async def run_facts(request: web.Request) -> web.Response:
    """The run page's facts, buttons and attempts (swapped in live as the run moves on)."""
    try:
        values = await _run_values(request)
    except ControlError as exc:
        return _error_page(request, exc)
    return _fragment(request, "_run_facts.html", **values)


async def retry_run(request: web.Request) -> web.StreamResponse:
    """Retry the run (``?from_failed=1``: only its failed part), as ``firelink retry``."""
    raw = request.match_info["run"]
    await _form(request)
    from_failed = request.query.get("from_failed", "") in ("1", "true", "yes")
    try:
        answer = await _ask(request, "retry", run_id=raw, from_failed=from_failed)
    except ControlError as exc:
        return _error_page(request, exc)
    new = answer.get("run_id") if isinstance(answer, Mapping) else None
    if new:
        raise _redirect(f"/runs/{new}", "retried")
    raise _redirect(f"/runs/{raw}", "retried")


async def cancel_run(request: web.Request) -> web.StreamResponse:
    """Cancel the run (as ``firelink cancel``); answered once it has ended."""
    raw = request.match_info["run"]
    await _form(request)
    try:
        answer = await _ask(request, "cancel", run_id=raw)
    except ControlError as exc:
        return _error_page(request, exc)
    raise _redirect(f"/runs/{answer['run']['id']}", "cancelled")


# --------------------------------------------------------------------------- graph


def _layers(names: Sequence[str], upstream: Mapping[str, Sequence[str]]) -> dict[str, int]:
    """Each job's column: the length of its longest chain of upstream jobs (cycles cut)."""
    depth: dict[str, int] = {}
    known = set(names)
    for start in names:
        if start in depth:
            continue
        stack: list[tuple[str, int]] = [(start, 0)]
        visiting: set[str] = set()
        while stack:
            node, i = stack[-1]
            ups = [u for u in upstream.get(node, ()) if u in known]
            if i == 0:
                visiting.add(node)
            if i < len(ups):
                stack[-1] = (node, i + 1)
                up = ups[i]
                if up not in depth and up not in visiting:
                    stack.append((up, 0))
                continue
            stack.pop()
            visiting.discard(node)
            depth[node] = 1 + max((depth.get(u, -1) for u in ups), default=-1)
    return depth


async def graph_page(request: web.Request) -> web.Response:
    """The dependency graph, each job coloured by its latest state (live in the browser)."""
    config = _ctx(request).config
    upstream = {j.name: list(j.depends_on.jobs) if j.depends_on else [] for j in config.jobs}
    focus = request.query.get("job", "").strip() or None
    names = list(config.job_names)
    if focus:
        if focus not in upstream:
            return _error_page(
                request,
                ControlError(
                    "unknown-job", f"no job named {focus!r}", suggestions=suggest(focus, names)
                ),
            )
        downstream: dict[str, list[str]] = {}
        for name, ups in upstream.items():
            for up in ups:
                downstream.setdefault(up, []).append(name)
        keep = {focus}
        for edges in (upstream, downstream):
            todo = [focus]
            while todo and len(keep) < GRAPH_MAX:
                for nxt in edges.get(todo.pop(), []):
                    if nxt not in keep:
                        keep.add(nxt)
                        todo.append(nxt)
        names = [n for n in names if n in keep]
    else:
        # Jobs in the graph first (those with an edge), then the rest, up to the cap.
        linked = {n for n, ups in upstream.items() if ups} | {
            u for ups in upstream.values() for u in ups
        }
        names = [n for n in names if n in linked] + [n for n in names if n not in linked]
    total = len(names)
    names = names[:GRAPH_MAX]
    states = {}
    for status in _statuses(request):
        # Its latest state: paused, running, else its latest run's end, else idle/waiting.
        last = status.last_run
        if status.paused is not None:
            states[status.name] = "paused"
        elif status.state == "running":
            states[status.name] = "running"
        elif last is not None:
            states[status.name] = last.state.value
        else:
            states[status.name] = status.state
    depth = _layers(names, upstream)
    columns: dict[int, list[str]] = {}
    for name in names:
        columns.setdefault(depth.get(name, 0), []).append(name)
    w, h, gap_x, gap_y = 170, 40, 60, 18
    pos: dict[str, tuple[int, int]] = {}
    for col, members in columns.items():
        for row, name in enumerate(members):
            pos[name] = (10 + col * (w + gap_x), 10 + row * (h + gap_y))
    nodes = [
        {
            "name": n,
            "label": n if len(n) <= 22 else n[:21] + "…",
            "state": states.get(n, "idle"),
            "x": pos[n][0],
            "y": pos[n][1],
            "w": w,
            "h": h,
        }
        for n in names
    ]
    edges = [
        {
            "x1": pos[u][0] + w,
            "y1": pos[u][1] + h // 2,
            "x2": pos[n][0],
            "y2": pos[n][1] + h // 2,
        }
        for n in names
        for u in upstream.get(n, [])
        if u in pos
    ]
    width = 20 + (max(columns, default=0) + 1) * (w + gap_x)
    height = 20 + max((len(m) for m in columns.values()), default=1) * (h + gap_y)
    return _render(
        request,
        "graph.html",
        section="graph",
        nodes=nodes,
        edges=edges,
        width=width,
        height=height,
        focus=focus,
        total=total,
        truncated=total > len(nodes),
    )
