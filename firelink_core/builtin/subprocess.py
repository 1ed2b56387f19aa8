"""The ``subprocess`` executor (the default): runs the job's command as a local process group."""

from __future__ import annotations

import asyncio
import functools
import os
import shlex
import signal
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from ..plugin_api import (
    AttemptRecord,
    AttemptReporter,
    AttemptRequest,
    AttemptResult,
    CappedLogWriter,
    Executor,
    Problem,
    format_duration,
    hookimpl,
)

__all__ = ["SubprocessExecutor", "process_start_time", "group_alive", "terminate_group"]

# While a terminated group winds down its members are looked for this often; only during
# a kill grace period, never while idle.
_GROUP_POLL = 0.05
_KILL_WAIT = 5.0


_ENV_CACHE: list[Any] = [None, {}]  # [raw os.environ data it was decoded from, decoded copy]


def _inherited_env() -> dict[str, str]:
    """A copy of ``os.environ``. Decoding its 30-odd variables costs about 14 us per run; the
    decoded copy is reused while the raw environment compares equal, so a change is always seen."""
    raw = getattr(os.environ, "_data", None)
    if raw is None:  # pragma: no cover - not CPython's os.environ
        return dict(os.environ)
    if _ENV_CACHE[0] != raw:
        _ENV_CACHE[:] = [dict(raw), dict(os.environ)]
    return dict(_ENV_CACHE[1])


@functools.cache
def _boot_id() -> str | None:
    try:
        return Path("/proc/sys/kernel/random/boot_id").read_text().strip()
    except OSError:
        return None


def process_start_time(pid: int) -> int | None:
    """The start time of process ``pid`` (clock ticks since boot, from /proc), or None."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_bytes()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses: fields follow the last ')'.
    fields = stat[stat.rfind(b")") + 2 :].split()
    return int(fields[19])


def group_alive(pgid: int) -> bool:
    """Whether process group ``pgid`` still has a member that is not a zombie."""
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    if not sys.platform.startswith("linux"):
        return True
    # Zombies count for kill(); a reaper that is slow (or absent, as PID 1 in some
    # containers) must not make a dead group look alive for ever.
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_bytes()
        except OSError:
            continue
        fields = stat[stat.rfind(b")") + 2 :].split()
        if int(fields[2]) == pgid and fields[0] != b"Z":
            return True
    return False


async def terminate_group(pgid: int, grace: float, exited: asyncio.Future[Any] | None = None) -> bool:
    """SIGTERM the whole group, SIGKILL what is left after ``grace`` seconds.

    ``exited`` resolves when the group's leader (our child) has been reaped. Returns
    whether SIGKILL was needed.
    """
    loop = asyncio.get_running_loop()
    try:
        os.killpg(pgid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = loop.time() + grace
    if exited is not None and not exited.done():
        try:
            await asyncio.wait_for(asyncio.shield(exited), grace)
        except asyncio.TimeoutError:
            pass
    while loop.time() < deadline:
        if not group_alive(pgid):
            return False
        await asyncio.sleep(_GROUP_POLL)
    if not group_alive(pgid):
        return False
    try:
        os.killpg(pgid, signal.SIGKILL)
    except ProcessLookupError:
        return False
    if exited is not None:
        await asyncio.shield(exited)
    # SIGKILL cannot be refused, but dying takes a moment (longer in uninterruptible I/O).
    deadline = loop.time() + _KILL_WAIT
    while loop.time() < deadline:
        if not group_alive(pgid):
            break
        await asyncio.sleep(_GROUP_POLL)
    return True


class _Protocol(asyncio.SubprocessProtocol):
    """Copies the child's output (stdout and stderr share one pipe) into the capped log."""

    def __init__(self, log: CappedLogWriter) -> None:
        self.log = log
        self.exited: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.transport: asyncio.SubprocessTransport | None = None
        self._slow: asyncio.Task[None] | None = None
        self.write_error: str | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def _write(self, data: bytes) -> None:
        if self.write_error is not None:
            return
        try:
            self.log.write(data)
        except (OSError, ValueError) as exc:
            # A full disk must not kill the job or the daemon: the output is lost, and said so.
            self.write_error = f"{type(exc).__name__}: {exc}"

    def pipe_data_received(self, fd: int, data: bytes) -> None:
        if not self.log.will_trim(len(data)):
            self._write(data)
            return
        # Trimming copies up to half the cap: do it off the loop, with the pipe paused so
        # output keeps its order (and a chatty job waits for the disk rather than memory).
        pipe = self.transport.get_pipe_transport(1) if self.transport else None
        if pipe is not None:
            pipe.pause_reading()  # type: ignore[attr-defined]
        self._slow = asyncio.ensure_future(asyncio.to_thread(self._write, data))

        def resume(_: asyncio.Future[None]) -> None:
            if pipe is not None and not pipe.is_closing():
                pipe.resume_reading()  # type: ignore[attr-defined]

        self._slow.add_done_callback(resume)

    def process_exited(self) -> None:
        if not self.exited.done():
            self.exited.set_result(None)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.closed.done():
            self.closed.set_result(None)

    async def drained(self) -> None:
        if self._slow is not None:
            await self._slow


class SubprocessExecutor(Executor):
    """Runs each attempt as a local process in its own session and process group.

    Output (stdout and stderr, in arrival order) goes through one pipe into the
    attempt's capped log. A timeout or a daemon shutdown sends SIGTERM to the whole
    group, then SIGKILL after ``kill_grace``; when the command exits, anything it left
    running in its group is terminated the same way.
    """

    type_name = "subprocess"
    description = "Run the command as a local process (own process group, output to the log)."
    config_schema: Mapping[str, Any] = {
        "type": "object",
        "properties": {
            "inherit_env": {
                "type": "boolean",
                "default": True,
                "description": (
                    "Start from the daemon's environment (PATH, HOME ...) and add the job's "
                    "variables on top; false gives the job only its own env and the FIRELINK_* "
                    "variables (plus a default PATH), so daemon secrets never reach it."
                ),
            },
        },
        "additionalProperties": False,
    }

    @classmethod
    def check(cls, options: Mapping[str, Any], *, config_dir: Path | None = None) -> list[Problem]:
        return []

    async def start(self) -> None:
        if sys.version_info < (3, 12):
            # 3.11 starts a thread per child unless a pidfd watcher is installed.
            from ._childwatch import install_pidfd_child_watcher

            install_pidfd_child_watcher()

    # ------------------------------------------------------------------ command
    def _argv(self, request: AttemptRequest) -> list[str]:
        command = request.command
        if command is None or (isinstance(command, str) and not command.strip()) or command == ():
            raise _Refused("the job has no command")
        if request.shell:
            script = command if isinstance(command, str) else " ".join(command)
            return ["/bin/sh", "-c", script]
        if isinstance(command, str):
            try:
                argv = shlex.split(command)
            except ValueError as exc:
                raise _Refused(f"cannot split the command {command!r}: {exc}") from None
            if not argv:
                raise _Refused("the job has no command")
            return argv
        return [str(part) for part in command]

    def _env(self, request: AttemptRequest) -> dict[str, str]:
        if request.options.get("inherit_env", True):
            env = _inherited_env()
        else:
            env = {"PATH": os.defpath}
        env.update(request.env)
        return env

    def _cwd(self, request: AttemptRequest) -> str | None:
        if not request.cwd:
            return None
        cwd = Path(request.cwd).expanduser()
        if not cwd.is_absolute() and self.context.config_dir is not None:
            cwd = self.context.config_dir / cwd
        if not cwd.is_dir():
            raise _Refused(f"working directory {str(cwd)!r} does not exist")
        return str(cwd)

    @staticmethod
    def _describe_start_error(exc: OSError, argv: list[str], env: Mapping[str, str]) -> str:
        program = argv[0]
        if isinstance(exc, FileNotFoundError):
            if "/" in program:
                return f"command not found: {program!r} does not exist"
            return f"command not found: {program!r} (searched PATH={env.get('PATH', os.defpath)})"
        if isinstance(exc, PermissionError):
            return f"cannot run {program!r}: permission denied (is it executable?)"
        return f"cannot run {program!r}: {exc.strerror or exc}"

    # ------------------------------------------------------------------ running
    async def run(self, request: AttemptRequest, reporter: AttemptReporter) -> AttemptResult:
        try:
            log = CappedLogWriter(request.log_path, request.log_max_bytes)
        except OSError as exc:
            return AttemptResult(error=f"cannot open the log {str(request.log_path)!r}: {exc.strerror or exc}")
        try:
            return await self._run(request, reporter, log)
        finally:
            log.close()

    async def run_logged(self, request: AttemptRequest, reporter: AttemptReporter, log: CappedLogWriter) -> AttemptResult:
        """``run``, with the output written to ``log`` (its ``write``, ``note`` and ``will_trim``)
        instead of ``request.log_path``: for executors that run commands as this one does, on
        another host, and carry the output themselves (firelink-celery's workers)."""
        return await self._run(request, reporter, log)

    async def _run(self, request: AttemptRequest, reporter: AttemptReporter, log: CappedLogWriter) -> AttemptResult:
        loop = asyncio.get_running_loop()
        try:
            argv = self._argv(request)
            env = self._env(request)
            cwd = self._cwd(request)
        except _Refused as exc:
            log.note(str(exc))
            return AttemptResult(error=str(exc))
        try:
            transport, protocol = await loop.subprocess_exec(
                lambda: _Protocol(log),
                *argv,
                stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.STDOUT,
                env=env,
                cwd=cwd,
                start_new_session=True,
            )
        except OSError as exc:
            message = self._describe_start_error(exc, argv, env)
            log.note(message)
            return AttemptResult(error=message)
        pid = transport.get_pid()
        timed_out = False
        try:
            await reporter.started(
                {"pid": pid, "pgid": pid, "start_time": process_start_time(pid), "boot_id": _boot_id()}
            )
            try:
                await asyncio.wait_for(asyncio.shield(protocol.exited), request.timeout)
            except asyncio.TimeoutError:
                timed_out = True
                assert request.timeout is not None
                log.note(
                    f"timed out after {format_duration(request.timeout)}: sending SIGTERM, "
                    f"SIGKILL after {format_duration(request.kill_grace)}"
                )
                await terminate_group(pid, request.kill_grace, protocol.exited)
            if not timed_out and group_alive(pid):
                log.note("the command exited but left processes in its process group: terminating them")
                await terminate_group(pid, request.kill_grace)
            await self._finish_output(protocol, request.kill_grace)
        except BaseException as exc:
            if isinstance(exc, asyncio.CancelledError):
                log.note(
                    "stopping the attempt (the daemon is stopping, or the run was cancelled): sending SIGTERM,"
                    f" SIGKILL after {format_duration(request.kill_grace)}"
                )
            else:
                log.note(f"executor failure ({type(exc).__name__}: {exc}): terminating the job")
            # Shielded: a second cancellation must not leave the group running.
            await asyncio.shield(terminate_group(pid, request.kill_grace, protocol.exited))
            raise
        finally:
            transport.close()
            if protocol._slow is not None:
                await asyncio.wait([protocol._slow])
            if protocol.write_error is not None:
                self.context.logger.error(
                    "job %s run %s: output could not be written to %s: %s",
                    request.job, request.run_id, request.log_path, protocol.write_error,
                )
        returncode = transport.get_returncode()
        if returncode is None:
            return AttemptResult(error="the process ended without an exit status", timed_out=timed_out)
        if returncode < 0:
            return AttemptResult(signal=-returncode, timed_out=timed_out)
        return AttemptResult(exit_code=returncode, timed_out=timed_out)

    @staticmethod
    async def _finish_output(protocol: _Protocol, grace: float) -> None:
        # A process that left the group (setsid) may still hold the pipe: do not wait for it.
        try:
            await asyncio.wait_for(asyncio.shield(protocol.closed), max(grace, 1.0))
        except asyncio.TimeoutError:
            protocol.log.note("output pipe still held by a process outside the job's group: not waiting for it")
        await protocol.drained()

    # ------------------------------------------------------------------ recovery
    async def recover(
        self, request: AttemptRequest, attempt: AttemptRecord, reporter: AttemptReporter, *, reattach: bool
    ) -> AttemptResult | None:
        """A process group left by a crashed daemon cannot be re-attached (its output pipe
        died with the daemon): terminate it if it is still the same processes."""
        handle = attempt.handle or {}
        pid = handle.get("pid")
        if not isinstance(pid, int):
            return None
        pgid = handle.get("pgid", pid)
        boot = _boot_id()
        if handle.get("boot_id") and boot and handle["boot_id"] != boot:
            return None  # the machine rebooted: nothing of it is left
        if handle.get("start_time") is None:
            # The process was gone before its start time could be read (or this is not
            # Linux): nothing proves that a group with this id now is ours.
            return None
        started = process_start_time(pid)
        if started is not None and started != handle["start_time"]:
            return None  # the pid now belongs to another program
        if not group_alive(pgid):
            return None
        with CappedLogWriter(request.log_path, request.log_max_bytes) as log:
            log.note(
                f"still running after a daemon restart (process group {pgid}); it cannot be "
                "re-attached: terminating it"
            )
        await terminate_group(pgid, request.kill_grace)
        return None


class _Refused(Exception):
    """An attempt that cannot start, with the reason for the log."""


@hookimpl(trylast=True)
def firelink_register_executors() -> list[type[Executor]]:
    return [SubprocessExecutor]


@hookimpl(trylast=True)
def firelink_default_type(kind: str) -> str | None:
    """A job without ``executor:`` runs as a child process."""
    return SubprocessExecutor.type_name if kind == "executor" else None
