"""The control interface: newline-delimited JSON over the daemon's Unix socket (server and client)."""

from __future__ import annotations

import asyncio
import codecs
import contextlib
import dataclasses
import datetime as dt
import difflib
import enum
import functools
import json
import logging
import math
import os
import socket
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, Protocol

from .logs import LogCursor, attempt_log_path
from .records import AttemptRecord, RunRecord, RunState

__all__ = [
    "SOCKET_NAME",
    "PROTOCOL_VERSION",
    "ControlError",
    "DaemonNotRunning",
    "ControlServer",
    "ControlClient",
    "DaemonAPI",
    "to_jsonable",
    "run_from_dict",
    "attempt_from_dict",
    "follow_run",
    "suggest",
]

log = logging.getLogger("firelink.control")

SOCKET_NAME = "firelink.sock"
PROTOCOL_VERSION = 1
MAX_LINE = 64 * 1024
"""The longest request line the server accepts (bytes): a trigger with a large ``--env`` fits."""
IDLE_TIMEOUT = 10.0
"""Seconds a connection may take to send a whole request line before it is closed."""
MAX_CONNECTIONS = 64
"""Open control connections at most; more are answered ``busy`` and closed."""
MAX_GRACE = 365 * 86400.0
"""The longest ``stop`` grace accepted (seconds); longer ones overflow the event loop's timers."""
REQUEST_FIELDS: Mapping[str, frozenset[str]] = {
    "ping": frozenset(),
    "status": frozenset(),
    "trigger": frozenset({"job", "env", "with_upstream", "follow", "force", "params"}),
    "follow": frozenset({"run_id"}),
    "runs": frozenset({"job", "states", "limit", "attempts", "since", "until", "cursor", "page"}),
    "run": frozenset({"run_id", "job"}),
    "reload": frozenset(),
    "stop": frozenset({"grace"}),
    "backfill": frozenset({"job", "from", "to", "max_parallel", "dry_run", "rerun", "downstream"}),
    "retry": frozenset({"run_id", "from_failed"}),
    "pause": frozenset({"jobs", "all", "reason"}),
    "resume": frozenset({"jobs", "all", "catch_up"}),
    "explain": frozenset({"job", "limit"}),
    "cancel": frozenset({"run_id"}),
}
"""Each command and the fields its request may carry besides ``cmd``."""
FOLLOW_INTERVAL = 0.25
"""How often a follower looks for new log output while a client streams a running job."""
CLOSE_WAIT = 2.0
"""Seconds the server lets open requests finish when the daemon stops."""


class ControlError(Exception):
    """An error answered by the daemon (``code`` is stable, ``message`` is for people)."""

    def __init__(self, code: str, message: str, **data: Any) -> None:
        super().__init__(message)
        self.code = code
        self.message = message
        self.data = data

    def as_dict(self) -> dict[str, Any]:
        return {"code": self.code, "message": self.message, **self.data}


class DaemonNotRunning(Exception):
    """No daemon answers on the state directory's socket (missing or stale socket)."""


# --------------------------------------------------------------------------- JSON helpers


_PLAIN = frozenset({str, int, float, bool, type(None)})


@functools.lru_cache(maxsize=256)
def _field_names(cls: type) -> tuple[str, ...]:
    return tuple(f.name for f in dataclasses.fields(cls))


def to_jsonable(value: Any) -> Any:
    """Records, job statuses and datetimes as plain JSON values (enums by value)."""
    cls = type(value)
    if cls in _PLAIN:  # exact types: str/int enums go on to the enum case
        return value
    if dataclasses.is_dataclass(cls):
        return {name: to_jsonable(getattr(value, name)) for name in _field_names(cls)}
    if isinstance(value, enum.Enum):
        return value.value
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, Mapping):
        return {str(k): to_jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [to_jsonable(v) for v in value]
    return value


def _known_fields(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    # Tolerate fields a newer daemon may add: keep only what this client's record knows.
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def run_from_dict(data: Mapping[str, Any]) -> RunRecord:
    fields = _known_fields(RunRecord, data)
    fields["state"] = RunState(fields.get("state", "queued"))
    return RunRecord(**fields)


def attempt_from_dict(data: Mapping[str, Any]) -> AttemptRecord:
    return AttemptRecord(**_known_fields(AttemptRecord, data))


def suggest(name: str, candidates: Sequence[str]) -> list[str]:
    """Close matches for a mistyped job name."""
    return difflib.get_close_matches(name, list(candidates), n=3, cutoff=0.6)


# --------------------------------------------------------------------------- following a run's log


async def follow_run(
    engine: Any, state_dir: Path, run_id: str, *, interval: float = FOLLOW_INTERVAL
) -> AsyncIterator[dict[str, Any]]:
    """Messages for a client following one run: ``{"state": s, "reason": r}`` when its state
    changes, ``{"attempt": n}`` when an attempt begins, ``{"log": text}`` as output is
    written, then ``{"done": true, "run": {...}}``.

    Between reads it waits for the run's end or a short interval, so it only polls while
    a client is actually watching a running job.
    """
    storage = engine.storage
    cursors: dict[int, tuple[LogCursor, Any]] = {}
    done_waiter = asyncio.ensure_future(engine.wait_run(run_id))
    try:
        run: RunRecord | None = None
        attempts: list[AttemptRecord] = []
        last_state: str | None = None
        announced: set[int] = set()
        while True:
            finished = done_waiter.done()
            try:
                run = await storage.get_run(run_id)
                attempts = await storage.list_attempts(run_id) if run is not None else []
            except Exception:
                # Storage closes when the daemon stops; the run's end is already known,
                # so drain the logs already found rather than fail the client.
                if not finished:
                    raise
            if run is not None and not finished and run.state.value != last_state:
                # Tells a waiting client why nothing is printed (waiting on upstream); each
                # retry is told below, from its attempt, even when the state moved on unseen.
                last_state = run.state.value
                if run.state is not RunState.RETRYING:
                    yield {"state": last_state, "reason": run.reason}
            latest = max((a.number for a in attempts), default=0)
            for attempt in sorted(attempts, key=lambda a: a.number):
                entry = cursors.get(attempt.number)
                if entry is None:
                    path = (
                        Path(attempt.log_path)
                        if attempt.log_path
                        else attempt_log_path(state_dir, run.job if run else "", run_id, attempt.number)
                    )
                    decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
                    entry = cursors[attempt.number] = (LogCursor(path), decoder)
                    yield {"attempt": attempt.number}
                cursor, decoder = entry
                data = await asyncio.to_thread(cursor.read_new)
                text = decoder.decode(data, final=finished or attempt.finished_at is not None)
                if text:
                    yield {"log": text}
                retried = attempt.number < latest or (run is not None and run.state is RunState.RETRYING)
                if attempt.finished_at is not None and retried and attempt.number not in announced:
                    announced.add(attempt.number)
                    reason = run.reason if run is not None and attempt.number == latest and run.reason else None
                    yield {"state": "retrying", "reason": reason or f"attempt {attempt.number} {_attempt_end(attempt)}"}
            if finished:
                record = done_waiter.result()
                yield {"done": True, "run": to_jsonable(record)}
                return
            await asyncio.wait({done_waiter}, timeout=interval)
    finally:
        done_waiter.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await done_waiter


def _attempt_end(attempt: AttemptRecord) -> str:
    """How an attempt that was retried ended, in words (``exited with code 3`` ...)."""
    if attempt.timed_out:
        return "timed out"
    if attempt.error:
        return f"failed: {attempt.error}"
    if attempt.signal is not None:
        return f"killed by signal {attempt.signal}"
    return f"exited with code {attempt.exit_code}"


# --------------------------------------------------------------------------- server


class DaemonAPI(Protocol):
    """What the control server needs from the daemon."""

    engine: Any
    state_dir: Path
    stopping: bool

    def info(self) -> dict[str, Any]: ...

    async def reload(self) -> dict[str, Any]:
        """Re-read the config; raise ``ControlError("config-invalid", ...)`` when rejected."""

    async def stop(self, grace: float | None) -> None:
        """Stop the daemon (returns when the engine has stopped)."""


class ControlServer:
    """Serves control requests on ``<state_dir>/firelink.sock`` (owner-only)."""

    def __init__(self, daemon: DaemonAPI, path: Path) -> None:
        self.daemon = daemon
        self.path = path
        self._server: asyncio.AbstractServer | None = None
        self._clients: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Bind the socket under a temporary name, make it owner-only, then move it into place,
        so it is never reachable with wider permissions (and no process-wide umask change)."""
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}")
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        if len(os.fsencode(self.path)) >= 108:
            raise OSError(
                f"the control socket path {self.path} is too long for a Unix socket"
                " (107 bytes at most): use a shorter state directory"
            )
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.bind(os.fspath(tmp))
            os.chmod(tmp, 0o600)
            os.replace(tmp, self.path)
        except BaseException:
            sock.close()
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        self._server = await asyncio.start_unix_server(self._handle, sock=sock, limit=MAX_LINE)

    async def close(self) -> None:
        if self._server is not None:
            self._server.close()
            with contextlib.suppress(FileNotFoundError):
                self.path.unlink()
            self._server = None
        if self._clients:
            # Let answers in flight finish (the final message of `stop`, the end of a
            # followed run), then cut whatever is left.
            _done, pending = await asyncio.wait(set(self._clients), timeout=CLOSE_WAIT)
            for task in pending:
                task.cancel()
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)

    async def call(self, request: Mapping[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Serve one request in-process, exactly as on the socket (the same validation and
        handler): yield each message answered, the first being ``{"ok": ..., ...}``.

        For services running inside the daemon (``firelink_register_services``): they reach
        every operation through this, never through a second implementation.
        """
        sink = _MessageSink()
        line = json.dumps(dict(request), separators=(",", ":")).encode()
        task = asyncio.ensure_future(self._dispatch(line, sink))  # type: ignore[arg-type]
        task.add_done_callback(lambda _t: sink.close())
        try:
            while True:
                message = await sink.get()
                if message is None:
                    break
                yield message
            await task
        finally:
            if not task.done():
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError, Exception):
                    await task

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        if len(self._clients) >= MAX_CONNECTIONS:
            # Each connection may buffer MAX_LINE bytes: the cap bounds the daemon's memory.
            with contextlib.suppress(ConnectionError):
                await _send(writer, _error("busy", f"too many control connections ({MAX_CONNECTIONS}): try again"))
            writer.close()
            return
        if task is not None:
            self._clients.add(task)
        try:
            while True:
                try:
                    # A deadline per request, not a sweep: an idle daemon runs no timer at all.
                    line = await asyncio.wait_for(reader.readline(), IDLE_TIMEOUT)
                except (ValueError, asyncio.LimitOverrunError):
                    await _send(writer, _error("bad-request", f"request line too long (over {MAX_LINE} bytes)"))
                    return
                except asyncio.TimeoutError:
                    await _send(writer, _error("timeout", f"no complete request within {IDLE_TIMEOUT:g}s: closing"))
                    return
                if not line:
                    return
                await self._dispatch(line, writer)
        except (ConnectionError, BrokenPipeError):
            pass  # the client went away (Ctrl-C on `trigger --wait`): nothing to answer
        finally:
            if task is not None:
                self._clients.discard(task)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _dispatch(self, line: bytes, writer: asyncio.StreamWriter) -> None:
        try:
            request = _parse_request(line)
        except ControlError as exc:
            await _send(writer, {"ok": False, "error": exc.as_dict()})
            return
        cmd = request["cmd"]
        handler = getattr(self, f"_cmd_{cmd}")  # REQUEST_FIELDS names only commands served
        try:
            await handler(request, writer)
        except ControlError as exc:
            await _send(writer, {"ok": False, "error": exc.as_dict()})
        except (ConnectionError, BrokenPipeError):
            raise
        except Exception as exc:
            log.exception("control request %r failed", cmd)
            await _send(
                writer,
                {"ok": False, "error": {"code": "internal", "message": f"{type(exc).__name__}: {exc}"}},
            )

    # commands -------------------------------------------------------------
    def _job_names(self) -> list[str]:
        return list(self.daemon.engine.config.job_names) if hasattr(self.daemon.engine, "config") else [
            s.name for s in self.daemon.engine.status()
        ]

    def _check_job(self, job: Any) -> str:
        if not isinstance(job, str) or not job:
            raise ControlError("bad-request", "a job name is required")
        names = self._job_names()
        if job not in names:
            raise ControlError(
                "unknown-job", f"no job named {job!r}", job=job, suggestions=suggest(job, names)
            )
        return job

    async def _resolve_run(self, raw: Any) -> RunRecord:
        """The run a client names by its id or a unique prefix of it (``unknown-run`` or
        ``ambiguous-run`` with the candidates otherwise)."""
        from .run_ids import AmbiguousRunId, RunIdError, resolve_run

        run_id = _check_text(raw, "run_id")
        if run_id is None:
            raise ControlError("bad-request", "run_id is required")
        try:
            return await resolve_run(self.daemon.engine.storage, run_id)
        except AmbiguousRunId as exc:
            raise ControlError(exc.code, exc.message, run_id=run_id, candidates=[r.id for r in exc.candidates]) from None
        except RunIdError as exc:
            raise ControlError(exc.code, exc.message, run_id=run_id) from None

    async def _cmd_ping(self, request: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        await _ok(writer, {"protocol": PROTOCOL_VERSION, **self.daemon.info()})

    async def _cmd_status(self, request: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        await _ok_with_list(writer, self.daemon.info(), "jobs", self.daemon.engine.status())

    async def _cmd_trigger(self, request: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        job = self._check_job(request.get("job"))
        env = _check_env(request.get("env"))
        with_upstream = _check_flag(request, "with_upstream")
        follow = _check_flag(request, "follow")
        force = _check_flag(request, "force")
        params = _check_params(request.get("params"))
        if self.daemon.stopping:
            raise ControlError("stopping", "the daemon is stopping: no new runs")
        from .engine.errors import JobPaused
        from .params import ParamError

        extra: dict[str, Any] = {"force": True} if force else {}
        if params:
            extra["params"] = params
        try:
            run_id = await self.daemon.engine.trigger(job, env, with_upstream=with_upstream, **extra)
        except ParamError as exc:
            raise ControlError("bad-param", exc.message, job=job, param=exc.param) from None
        except KeyError as exc:
            raise ControlError("unknown-job", f"no job named {job!r}", job=job, suggestions=[]) from exc
        except JobPaused as exc:
            raise ControlError("paused", str(exc), job=job, pause=to_jsonable(exc.pause)) from None
        await _ok(writer, {"run_id": run_id, "job": job})
        if follow:
            await self._stream_run(run_id, writer)

    async def _cmd_follow(self, request: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        run = await self._resolve_run(request.get("run_id"))
        await _ok(writer, {"run_id": run.id, "job": run.job})
        await self._stream_run(run.id, writer)

    async def _stream_run(self, run_id: str, writer: asyncio.StreamWriter) -> None:
        async for message in follow_run(self.daemon.engine, self.daemon.state_dir, run_id):
            await _send(writer, message)

    async def _cmd_runs(self, request: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        job = request.get("job")
        if job is not None:
            self._check_job(job)
        states = _parse_states(request.get("states"))
        limit = request.get("limit", 50)
        if limit is not None and (type(limit) is not int or limit < 1):
            raise ControlError("bad-request", "limit must be a positive integer")
        if not isinstance(request.get("attempts", False), bool):
            raise ControlError("bad-request", "attempts must be true or false")
        storage = self.daemon.engine.storage
        from ._control_ops import runs_page

        paged = await runs_page(storage, request, job, states, limit)
        runs = paged[0] if paged else await storage.list_runs(job, states=states, limit=limit)
        answer: dict[str, Any] = {"runs": to_jsonable(runs)}
        if paged:
            answer["next_cursor"] = paged[1]
        if request.get("attempts"):
            # Asked for by ``firelink runs`` (its worker column): one query per listed run, so
            # bounded by the limit, and never paid by the other callers of ``runs``.
            answer["attempts"] = {run.id: to_jsonable(await storage.list_attempts(run.id)) for run in runs}
        await _ok(writer, answer)

    async def _cmd_run(self, request: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        """One run and its attempts; ``run_id`` or ``job`` (its latest run)."""
        storage = self.daemon.engine.storage
        if request.get("run_id") is not None:
            run = await self._resolve_run(request.get("run_id"))
        else:
            job = self._check_job(request.get("job"))
            runs = await storage.list_runs(job, limit=1)
            if not runs:
                raise ControlError("no-runs", f"job {job!r} has not run yet", job=job)
            run = runs[0]
        attempts = await storage.list_attempts(run.id)
        await _ok(writer, {"run": to_jsonable(run), "attempts": to_jsonable(attempts)})

    async def _cmd_cancel(self, request: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        """Cancel one run (id or unique prefix); answered once it has ended."""
        from .engine.errors import EngineError

        run = await self._resolve_run(request.get("run_id"))
        try:
            ended = await self.daemon.engine.cancel(run.id)
        except KeyError:
            raise ControlError("unknown-run", f"no run {run.id!r}", run_id=run.id) from None
        except EngineError as exc:
            raise ControlError("run-ended", str(exc), run_id=run.id, run=to_jsonable(run)) from None
        await _ok(writer, {"run": to_jsonable(ended)})

    async def _cmd_pause(self, request: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        from ._control_pauses import pause

        await _ok(writer, await pause(self.daemon.engine, request))

    async def _cmd_resume(self, request: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        from ._control_pauses import resume

        await _ok(writer, await resume(self.daemon.engine, request))

    async def _cmd_explain(self, request: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        from ._control_pauses import explain

        await _ok(writer, await explain(self.daemon.engine, request))

    async def _cmd_backfill(self, request: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        from ._control_ops import backfill

        if self.daemon.stopping:
            raise ControlError("stopping", "the daemon is stopping: no new runs")
        await _ok(writer, await backfill(self.daemon.engine, request))

    async def _cmd_retry(self, request: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        from ._control_ops import retry

        if self.daemon.stopping:
            raise ControlError("stopping", "the daemon is stopping: no new runs")
        await _ok(writer, await retry(self.daemon.engine, request))

    async def _cmd_reload(self, request: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        await _ok(writer, await self.daemon.reload())

    async def _cmd_stop(self, request: dict[str, Any], writer: asyncio.StreamWriter) -> None:
        grace = request.get("grace")
        if grace is not None and (
            type(grace) not in (int, float) or not math.isfinite(grace) or not 0 <= grace <= MAX_GRACE
        ):
            raise ControlError(
                "bad-request", f"grace must be a number of seconds from 0 to {MAX_GRACE:.0f}, got {grace!r}"
            )
        await _ok(writer, {"pid": os.getpid()})
        # The answer is sent at once; the final message when the engine has stopped.
        await self.daemon.stop(grace)
        await _send(writer, {"done": True})


class _MessageSink:
    """The writer side of an in-process request (``ControlServer.call``): lines become messages."""

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._queue: asyncio.Queue[dict[str, Any] | None] = asyncio.Queue()

    def write(self, data: bytes) -> None:
        self._buffer += data
        while (end := self._buffer.find(b"\n")) >= 0:
            line = bytes(self._buffer[:end])
            del self._buffer[: end + 1]
            self._queue.put_nowait(json.loads(line))

    async def drain(self) -> None:
        return None

    def close(self) -> None:
        self._queue.put_nowait(None)

    async def get(self) -> dict[str, Any] | None:
        return await self._queue.get()


def _refuse_constant(name: str) -> Any:
    raise ControlError("bad-request", f"{name} is not a JSON number")


def _parse_request(line: bytes) -> dict[str, Any]:
    """The request object of one line, its command known and its fields those of the command."""
    try:
        request = json.loads(line, parse_constant=_refuse_constant)
    except RecursionError:
        raise ControlError("bad-request", "the request is nested too deeply") from None
    except ValueError as exc:  # JSONDecodeError and undecodable bytes alike
        raise ControlError("bad-request", f"the request is not JSON: {exc}") from None
    if not isinstance(request, dict) or not isinstance(request.get("cmd"), str):
        raise ControlError("bad-request", "a request is a JSON object with a string 'cmd'")
    cmd = request["cmd"]
    allowed = REQUEST_FIELDS.get(cmd)
    if allowed is None:
        raise ControlError("unknown-command", f"unknown command {cmd[:100]!r}")
    unknown = sorted(str(key)[:100] for key in request if key != "cmd" and key not in allowed)
    if unknown:
        accepted = ", ".join(sorted(allowed)) or "none"
        raise ControlError(
            "bad-request", f"unknown field {', '.join(map(repr, unknown))} for {cmd!r} (accepted: {accepted})"
        )
    return request


def _check_text(raw: Any, name: str) -> str | None:
    if raw is None:
        return None
    if not isinstance(raw, str) or not raw or len(raw) > 1024:
        raise ControlError("bad-request", f"{name} must be a non-empty string")
    return raw


def _check_flag(request: Mapping[str, Any], name: str) -> bool:
    raw = request.get(name, False)
    if not isinstance(raw, bool):
        raise ControlError("bad-request", f"{name} must be true or false")
    return raw


def _check_env(raw: Any) -> dict[str, str]:
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
        raise ControlError("bad-request", "env must map names to strings")
    for key, value in raw.items():
        # What execve cannot pass: the run would fail only once started.
        if not key or "=" in key or "\0" in key:
            raise ControlError("bad-request", f"env name {key[:100]!r} is empty or holds '=' or NUL")
        if "\0" in value:
            raise ControlError("bad-request", f"the value of env {key[:100]!r} holds NUL")
    return raw


def _check_params(raw: Any) -> dict[str, str]:
    """Run parameters as given (``--param NAME=VALUE``): text by name, read by the job's types."""
    if raw is None:
        return {}
    if not isinstance(raw, dict) or not all(isinstance(k, str) and isinstance(v, str) for k, v in raw.items()):
        raise ControlError("bad-request", "params must map names to strings")
    return raw


def _parse_states(raw: Any) -> list[RunState] | None:
    if raw is None:
        return None
    if not isinstance(raw, list):
        raise ControlError("bad-request", "states must be a list")
    try:
        return [RunState(s) for s in raw]
    except (ValueError, TypeError):
        names = ", ".join(state.value for state in RunState)
        raise ControlError("bad-request", f"states must be run states ({names})") from None


def _error(code: str, message: str) -> dict[str, Any]:
    return {"ok": False, "error": {"code": code, "message": message}}


async def _send(writer: asyncio.StreamWriter, message: Mapping[str, Any]) -> None:
    # Two writes: a status of 10,000 jobs is megabytes, not worth a third copy for the newline.
    writer.write(json.dumps(message, separators=(",", ":")).encode())
    writer.write(b"\n")
    await writer.drain()


async def _ok_with_list(
    writer: asyncio.StreamWriter, fields: Mapping[str, Any], name: str, items: Sequence[Any]
) -> None:
    """``_ok(writer, {**fields, name: to_jsonable(items)})``, written in slices.

    The same bytes, but a status of 10,000 jobs never exists as one tree of dicts (tens of MB
    at the daemon's peak): each slice of items is converted, encoded and written in turn.
    """
    head = json.dumps({"ok": True, "result": {**fields, name: []}}, separators=(",", ":"))
    assert head.endswith("[]}}")
    writer.write(head[:-3].encode())
    for start in range(0, len(items), 500):
        part = json.dumps([to_jsonable(item) for item in items[start : start + 500]], separators=(",", ":"))
        writer.write((("," if start else "") + part[1:-1]).encode())
    writer.write(b"]}}\n")
    await writer.drain()


async def _ok(writer: asyncio.StreamWriter, result: Any) -> None:
    await _send(writer, {"ok": True, "result": result})


# --------------------------------------------------------------------------- client


class ControlClient:
    """A blocking client for the CLI: one connection per request."""

    def __init__(self, state_dir: Path, *, timeout: float = 30.0) -> None:
        self.state_dir = state_dir
        self.path = state_dir / SOCKET_NAME
        self.timeout = timeout

    def _connect(self) -> socket.socket:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(os.fspath(self.path))
        except FileNotFoundError:
            sock.close()
            raise DaemonNotRunning(f"firelink is not running (no control socket at {self.path})") from None
        except ConnectionRefusedError:
            sock.close()
            raise DaemonNotRunning(
                f"firelink is not running: stale control socket {self.path} (the daemon was killed"
                " or crashed; the next `firelink run` on this state directory removes it)"
            ) from None
        except PermissionError:
            sock.close()
            raise ControlError(
                "permission", f"permission denied on {self.path}: is the daemon running as another user?"
            ) from None
        except OSError as exc:
            sock.close()
            raise ControlError("connect", f"cannot connect to {self.path}: {exc.strerror or exc}") from None
        return sock

    def stream(self, cmd: str, *, timeout: float | None = -1.0, **args: Any) -> Iterator[dict[str, Any]]:
        """Send one request and yield each message answered; the first is the ``ok`` answer
        (an error answer raises ``ControlError``). ``timeout`` bounds each wait for a line
        (``None`` waits forever; the default is the client's)."""
        sock = self._connect()
        if timeout is None or timeout >= 0:
            sock.settimeout(timeout)
        try:
            sock.sendall(json.dumps({"cmd": cmd, **args}).encode() + b"\n")
            with sock.makefile("rb") as f:
                first = True
                while True:
                    try:
                        line = f.readline()
                    except TimeoutError:
                        raise ControlError("timeout", f"the daemon did not answer {cmd!r} in time") from None
                    if not line:
                        if first:
                            raise ControlError("closed", "the daemon closed the connection without answering")
                        return
                    message = json.loads(line)
                    if first:
                        first = False
                        if not message.get("ok"):
                            err = message.get("error") or {}
                            data = {k: v for k, v in err.items() if k not in ("code", "message")}
                            raise ControlError(err.get("code", "error"), err.get("message", "error"), **data)
                    yield message
        finally:
            sock.close()

    def request(self, cmd: str, **args: Any) -> Any:
        """Send one request and return its result."""
        for message in self.stream(cmd, **args):
            return message.get("result")
        raise ControlError("closed", "no answer")  # pragma: no cover - stream raises first
