"""The daemon process: state directory, lock, pid file, logging, signals, reload and detaching."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import errno
import fcntl
import json
import logging
import logging.handlers
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import IO, Any

from . import __version__
from ._control import SOCKET_NAME, ControlClient, ControlError, ControlServer, DaemonNotRunning
from ._services_run import DaemonServices
from ._state_dir import UnsafeStateDir, check_state_dir
from ._systemd import SystemdNotifier
from .abc import StorageError
from .durations import format_duration
from .model import Config
from .pidlock import LockHeld, PidFileLock, read_pid
from .plugins import Plugins
from .services import ServiceError

__all__ = [
    "LOCK_NAME",
    "PID_NAME",
    "LOG_NAME",
    "Daemon",
    "StateLock",
    "AlreadyRunning",
    "ensure_state_dir",
    "lock_holder",
    "setup_logging",
    "spawn_detached",
]

log = logging.getLogger("firelink.daemon")

LOCK_NAME = "firelink.lock"
PID_NAME = "firelink.pid"
LOG_NAME = "firelink.log"
LOCK_RETRY = 1.0
"""Seconds ``run`` keeps trying the lock, so a client probing it at that instant is no obstacle."""


# --------------------------------------------------------------------------- state directory


def ensure_state_dir(path: Path) -> Path:
    """Create the state directory owner-only (0700); an existing one is left as it is.

    Raises ``UnsafeStateDir`` when another user could redirect the daemon's writes there
    (see ``check_state_dir``), ``OSError`` when it cannot be created.
    """
    path = path.expanduser().absolute()
    if not path.exists():
        path.mkdir(parents=True, mode=0o700)
        # mkdir's mode is filtered by the umask; make the last level exactly 0700.
        os.chmod(path, 0o700)
    elif not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, "the state directory is not a directory", str(path))
    check_state_dir(path)
    return path


def state_dir_warning(path: Path) -> str | None:
    """A warning when other users can read the state directory (runs, logs, the socket)."""
    mode = path.stat().st_mode & 0o777
    if mode & 0o077:
        return f"state directory {path} is readable by other users (mode {mode:03o}); consider chmod 700"
    return None


def _create_private(path: Path, flags: int = os.O_RDWR) -> int:
    """Open ``path`` for the daemon, creating it 0600; never through a symlink, never another user's file."""
    fd = os.open(path, flags | os.O_CREAT | os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    if os.fstat(fd).st_uid != os.geteuid():
        os.close(fd)
        raise UnsafeStateDir(f"refusing the state directory {path.parent}: {path.name} belongs to another user")
    return fd


# --------------------------------------------------------------------------- lock


class AlreadyRunning(Exception):
    """Another daemon holds the state directory's lock."""

    def __init__(self, state_dir: Path, pid: int | None) -> None:
        self.state_dir = state_dir
        self.pid = pid
        who = f"pid {pid}" if pid else "another process"
        super().__init__(
            f"firelink is already running on state directory {state_dir} ({who});"
            " stop it with `firelink stop` or use another --state-dir"
        )


class StateLock:
    """An exclusive ``flock`` on ``<state_dir>/firelink.lock``, holding the owner's pid.

    The kernel releases it when the process dies (even by ``kill -9``), so a stale lock
    never blocks a restart.
    """

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.path = state_dir / LOCK_NAME
        self._pidlock = PidFileLock()

    def acquire(self, retry: float = LOCK_RETRY) -> None:
        fd = _create_private(self.path)
        try:
            self._pidlock.acquire(fd, retry)
        except LockHeld as held:
            raise AlreadyRunning(self.state_dir, held.pid) from None

    def release(self) -> None:
        self._pidlock.release()


def lock_holder(state_dir: Path) -> int | None:
    """The pid of the daemon holding the state directory's lock, or ``None`` if none does.

    Probes with a shared lock held for an instant (``run`` retries briefly, see ``LOCK_RETRY``).
    """
    path = state_dir / LOCK_NAME
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return read_pid(fd) or -1
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def process_exited(pid: int) -> bool:
    """Whether process ``pid`` has exited: gone, or a zombie its parent has not reaped yet.

    The daemon releases its lock a moment before the process ends (interpreter shutdown), so
    ``firelink stop`` waits for this too: a ``run`` started right after it never meets the old one.
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            # "pid (comm) S ...": the state follows the last ')' (comm may hold spaces and parens)
            return stat.read().rpartition(b")")[2].split()[0] in (b"Z", b"X")
    except FileNotFoundError:
        return True
    except OSError:  # no /proc: ask the kernel whether the pid exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return True
        except PermissionError:
            return False
        return False


# --------------------------------------------------------------------------- logging

_RECORD_ATTRS = set(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message", "asctime", "taskName"}


def _utc_iso(created: float) -> str:
    return dt.datetime.fromtimestamp(created, dt.timezone.utc).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z"
    )


class JsonFormatter(logging.Formatter):
    """One JSON object per line: ``time``, ``level``, ``logger``, ``message``, extra fields
    (``job``, ``run_id`` ... passed with ``extra=``) and ``exc`` for exceptions."""

    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": _utc_iso(record.created),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _RECORD_ATTRS and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return json.dumps(out, default=str)


class TextFormatter(logging.Formatter):
    """``2026-05-01T12:00:00.000Z INFO    firelink.engine: message``."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(name)s: %(message)s")

    def formatTime(self, record: logging.LogRecord, datefmt: str | None = None) -> str:  # noqa: N802
        return _utc_iso(record.created)


def setup_logging(fmt: str = "text", level: str = "info", *, file: Path | None = None) -> logging.Handler:
    """Send every logger's records to stderr (or ``file``) in text or JSON lines."""
    handler: logging.Handler
    if file is not None:
        # Reopens the file when logrotate moves it away.
        handler = logging.handlers.WatchedFileHandler(file, encoding="utf-8")
    else:
        handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else TextFormatter())
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    numeric = getattr(logging, level.upper())
    root.setLevel(numeric)
    if numeric > logging.DEBUG:
        # Client libraries of plugins are chatty at INFO; their warnings still show.
        for name in ("botocore", "boto3", "urllib3", "docker", "watchdog", "asyncio"):
            logging.getLogger(name).setLevel(max(numeric, logging.WARNING))
    logging.captureWarnings(True)
    return handler


# --------------------------------------------------------------------------- the daemon


ConfigLoader = Callable[[], "tuple[Config, Plugins]"]


def _expected_start_errors() -> tuple[type[BaseException], ...]:
    """Start failures whose message says it all: a damaged database, an unusable state
    directory, an executor that cannot start."""
    # Imported here: client commands import this module, and only `firelink run` needs the engine.
    from .engine import EngineError

    return (StorageError, EngineError, OSError)


class Daemon:
    """One ``firelink run``: an engine, the control server, signal handling and reload."""

    def __init__(
        self,
        config: Config,
        plugins: Plugins,
        *,
        config_path: Path,
        reload_config: ConfigLoader,
        grace: float = 30.0,
        metrics: tuple[str, int] | None = None,
        engine_factory: Callable[[Config, Plugins], Any] | None = None,
    ) -> None:
        self.config = config
        self.plugins = plugins
        self.config_path = config_path
        self.state_dir = Path(config.state_dir)
        self.grace = grace
        self._reload_config = reload_config
        if engine_factory is None:
            from .engine import Engine

            engine_factory = Engine
        self._engine_factory = engine_factory
        self.metrics_address = metrics
        self.metrics_url: str | None = None
        self._metrics: Any = None
        self.engine: Any = None
        self.stopping = False
        self.started_at: float | None = None
        self._stopped: asyncio.Event | None = None
        self._stop_grace: float | None = None
        self._stop_tasks: list[asyncio.Task[None]] = []
        self._reload_lock: asyncio.Lock | None = None
        self._background: set[asyncio.Task[Any]] = set()
        self._systemd = SystemdNotifier.from_environment()
        self._services = DaemonServices()

    # info -----------------------------------------------------------------
    def info(self) -> dict[str, Any]:
        now = time.time()
        return {
            "version": __version__,
            "pid": os.getpid(),
            "started_at": self.started_at,
            "uptime": None if self.started_at is None else now - self.started_at,
            "config": str(self.config_path),
            "state_dir": str(self.state_dir),
            "stopping": self.stopping,
            "metrics": self.metrics_url,
        }

    # lifecycle ------------------------------------------------------------
    async def serve(self) -> int:
        """Run until stopped; return the process exit code."""
        loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        self._reload_lock = asyncio.Lock()
        self._install_signals(loop)
        log.info(
            "firelink %s starting (pid %d): config %s, state directory %s",
            __version__, os.getpid(), self.config_path, self.state_dir,
        )
        server = ControlServer(self, self.state_dir / SOCKET_NAME)
        try:
            self.engine = self._engine_factory(self.config, self.plugins)
            if self.metrics_address is not None:
                from ._metrics import EngineMetrics

                # A plugin on the engine's own manager: it counts every run event.
                self._metrics = EngineMetrics(self.engine)
                self.plugins.pm.register(self._metrics, name="firelink.metrics")
            await self.engine.start()
        except _expected_start_errors() as exc:
            # A traceback would only hide the message.
            log.error("firelink could not start: %s", _describe(exc))
            return 1
        except Exception:
            log.exception("firelink could not start: unexpected error")
            await self._emergency_stop()
            return 1
        try:
            await server.start()
        except OSError as exc:
            log.error("cannot open the control socket: %s", exc)
            await self._do_stop(0)
            return 1
        if self._metrics is not None and self.metrics_address is not None:
            try:
                host, port = self._metrics.serve(*self.metrics_address)
            except OSError as exc:
                log.error("cannot serve metrics on %s:%d: %s", *self.metrics_address, exc.strerror or exc)
                await server.close()
                await self._do_stop(0)
                return 1
            self.metrics_url = f"http://{f'[{host}]' if ':' in host else host}:{port}/metrics"
            log.info("metrics on %s", self.metrics_url)
        try:
            await self._services.start(self, server)
        except ServiceError as exc:
            log.error("firelink could not start: %s", exc)
            await server.close()
            await self._do_stop(0)
            return 1
        self.started_at = time.time()
        if self.stopping and self._stop_grace is not None:
            self._stop_tasks.append(asyncio.ensure_future(self._do_stop(self._stop_grace)))
        log.info(
            "firelink %s running (pid %d): %d jobs; control socket %s",
            __version__, os.getpid(), len(self.config.jobs), server.path,
        )
        self._systemd.ready()
        try:
            await self._stopped.wait()
            # Stop tasks record what they interrupted; a failure there is an error exit.
            results = await asyncio.gather(*self._stop_tasks, return_exceptions=True)
            failed = [r for r in results if isinstance(r, BaseException)]
            for exc in failed:
                log.error("stopping the engine failed: %s", exc, exc_info=exc)
            log.info("firelink stopped")
            return 1 if failed else 0
        except Exception:
            log.exception("firelink stopped on an unexpected error")
            await self._emergency_stop()
            return 1
        finally:
            await self._services.stop()
            await server.close()
            if self._metrics is not None:
                self._metrics.close()
            for task in list(self._background):
                task.cancel()

    def _install_signals(self, loop: asyncio.AbstractEventLoop) -> None:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_stop_signal, sig)
        loop.add_signal_handler(signal.SIGHUP, self._on_hup)

    def _on_stop_signal(self, sig: signal.Signals) -> None:
        name = signal.Signals(sig).name
        if not self.stopping:
            log.info(
                "received %s: stopping; running jobs get %s to finish (send %s again to stop at once)",
                name, format_duration(self.grace), name,
            )
            self._begin_stop(self.grace)
        else:
            log.warning("received %s again: stopping now, interrupting running jobs", name)
            self._begin_stop(0)

    def _on_hup(self) -> None:
        if self.engine is None or self.started_at is None or self.stopping:
            log.warning("received SIGHUP while %s: ignored", "stopping" if self.stopping else "starting")
            return
        log.info("received SIGHUP: reloading %s", self.config_path)
        task = asyncio.ensure_future(self._reload_quietly())
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def _reload_quietly(self) -> None:
        with contextlib.suppress(ControlError):  # already logged by reload()
            await self.reload()

    def _begin_stop(self, grace: float) -> None:
        self.stopping = True
        self._systemd.stopping()
        if self._stop_grace is not None and grace >= self._stop_grace:
            return
        self._stop_grace = grace
        if self.started_at is None:
            return  # still starting: serve() stops once start() returned
        # A shorter grace while a stop is under way: the engine cuts the wait short and
        # still records what it interrupts.
        self._stop_tasks.append(asyncio.ensure_future(self._do_stop(grace)))

    async def _do_stop(self, grace: float) -> None:
        assert self._stopped is not None
        try:
            await self._services.stop()  # before the engine: nothing asks it for runs any more
            await self.engine.stop(grace=grace)
        finally:
            self._stopped.set()

    async def _emergency_stop(self) -> None:
        """After an unexpected error: interrupt and record whatever runs, without waiting."""
        if self.engine is None:
            return
        await self._services.stop()
        try:
            await self.engine.stop(grace=0)
        except Exception:
            log.exception("stopping the engine after the error failed too")

    async def stop(self, grace: float | None) -> None:
        """The control ``stop`` command: begin stopping, return when the engine stopped."""
        assert self._stopped is not None
        grace = self.grace if grace is None else grace
        if not self.stopping:
            log.info("stop requested (firelink stop): running jobs get %s to finish", format_duration(grace))
        self._begin_stop(grace)
        await self._stopped.wait()

    # reload ---------------------------------------------------------------
    async def reload(self) -> dict[str, Any]:
        """Re-read and validate the config; switch the engine to it, or keep the old one."""
        assert self._reload_lock is not None
        from .config import ConfigInvalid

        if self.stopping:
            raise ControlError("stopping", "the daemon is stopping: nothing to reload")
        async with self._reload_lock, self._systemd.reloading():
            try:
                config, plugins = await asyncio.to_thread(self._reload_config)
            except ConfigInvalid as exc:
                errors = [str(e) for e in exc.errors]
                log.error(
                    "reload rejected, the running config is kept; %s:\n%s",
                    _count(len(errors), "error"), "\n".join(errors),
                )
                raise ControlError(
                    "config-invalid", f"the new config is invalid ({_count(len(errors), 'error')}); the running config is kept",
                    errors=errors,
                ) from None
            except OSError as exc:
                message = f"cannot read {self.config_path}: {exc.strerror or exc}; the running config is kept"
                log.error("reload rejected: %s", message)
                raise ControlError("config-unreadable", message) from None
            problem = self._restart_only_change(config)
            if problem:
                message = f"{problem}: restart firelink to apply it; the running config is kept"
                log.error("reload rejected: %s", message)
                raise ControlError("restart-required", message)
            try:
                result = await self.engine.reload(config)
            except Exception as exc:
                log.exception("reload failed while applying the new config")
                raise ControlError("reload-failed", f"applying the new config failed: {_describe(exc)}") from None
            self.config = config
            summary = {
                "added": list(result.added),
                "removed": list(result.removed),
                "changed": list(result.changed),
                "notifiers": {
                    "added": list(result.notifiers_added),
                    "removed": list(result.notifiers_removed),
                    "changed": list(result.notifiers_changed),
                },
            }
            log.info(
                "reloaded %s: added %s, removed %s, changed %s; notifiers added %s, removed %s, changed %s",
                self.config_path,
                ", ".join(summary["added"]) or "none",
                ", ".join(summary["removed"]) or "none",
                ", ".join(summary["changed"]) or "none",
                ", ".join(result.notifiers_added) or "none",
                ", ".join(result.notifiers_removed) or "none",
                ", ".join(result.notifiers_changed) or "none",
            )
            return summary

    def _restart_only_change(self, new: Config) -> str | None:
        old = self.config
        if Path(new.state_dir) != Path(old.state_dir):
            return f"state_dir changed ({old.state_dir} -> {new.state_dir})"
        if new.storage != old.storage:
            return "storage changed"
        if tuple(new.plugins) != tuple(old.plugins):
            return "plugins changed"
        changed = sorted(k for k in {*new.services, *old.services} if new.services.get(k) != old.services.get(k))
        if changed:
            return f"the {', '.join(changed)} section changed"
        return None


def _describe(exc: BaseException) -> str:
    if isinstance(exc, OSError) and exc.filename:
        return f"{exc.strerror or exc}: {exc.filename}"
    return str(exc) or type(exc).__name__


def _count(n: int, word: str) -> str:
    return f"{n} {word}{'' if n == 1 else 's'}"


# --------------------------------------------------------------------------- running


def run_daemon(
    config: Config,
    plugins: Plugins,
    *,
    config_path: Path,
    reload_config: ConfigLoader,
    grace: float,
    log_format: str,
    log_level: str,
    log_to_file: bool,
    metrics: tuple[str, int] | None = None,
    err: IO[str] | None = None,
) -> int:
    """The whole life of a ``firelink run`` process after the config validated; the exit code."""
    err = err or sys.stderr
    state_dir = Path(config.state_dir)
    try:
        state_dir = ensure_state_dir(state_dir)
    except UnsafeStateDir as exc:
        print(f"firelink: {exc}", file=err)
        return 1
    except OSError as exc:
        print(f"firelink: cannot create the state directory {state_dir}: {exc.strerror or exc}", file=err)
        return 1
    lock = StateLock(state_dir)
    try:
        lock.acquire()
    except (AlreadyRunning, UnsafeStateDir) as exc:
        print(f"firelink: {exc}", file=err)
        return 1
    except OSError as exc:
        print(_unwritable(state_dir, exc), file=err)
        return 1
    pid_file = state_dir / PID_NAME
    wrote_pid = False
    try:
        try:
            # Under the lock, a socket left by a killed daemon is ours to remove.
            with contextlib.suppress(FileNotFoundError):
                (state_dir / SOCKET_NAME).unlink()
            fd = _create_private(pid_file, os.O_WRONLY | os.O_TRUNC)
            wrote_pid = True
            with os.fdopen(fd, "w") as f:
                f.write(f"{os.getpid()}\n")
            setup_logging(log_format, log_level, file=state_dir / LOG_NAME if log_to_file else None)
        except UnsafeStateDir as exc:
            print(f"firelink: {exc}", file=err)
            return 1
        except OSError as exc:
            print(_unwritable(state_dir, exc), file=err)
            return 1
        warning = state_dir_warning(state_dir)
        if warning:
            log.warning(warning)
        daemon = Daemon(
            config, plugins, config_path=config_path, reload_config=reload_config, grace=grace, metrics=metrics
        )
        try:
            return asyncio.run(daemon.serve())
        except Exception:
            log.exception("firelink stopped on an unexpected error")
            return 1
    finally:
        if wrote_pid:
            with contextlib.suppress(FileNotFoundError):
                pid_file.unlink()
        lock.release()


def _unwritable(state_dir: Path, exc: OSError) -> str:
    where = f" ({exc.filename})" if exc.filename else ""
    return (
        f"firelink: cannot write in the state directory {state_dir}{where}: {exc.strerror or exc};"
        " the daemon keeps its lock, pid file, socket, database and job logs there: make it writable"
        " by the daemon's user or choose another with --state-dir"
    )


def spawn_detached(
    args: Sequence[str], state_dir: Path, *, timeout: float = 60.0, out: IO[str] | None = None, err: IO[str] | None = None
) -> int:
    """Start ``firelink run ARGS --detached-child`` in a new session and wait until it answers.

    Re-executing (rather than forking) gives the daemon a clean interpreter with no threads
    or event loop inherited. Returns 0 once the daemon answers on its socket, else 1 with
    the reason (the end of its log).
    """
    out = out or sys.stdout
    err = err or sys.stderr
    try:
        state_dir = ensure_state_dir(state_dir)
    except UnsafeStateDir as exc:
        print(f"firelink: {exc}", file=err)
        return 1
    log_path = state_dir / LOG_NAME
    with os.fdopen(_create_private(log_path, os.O_WRONLY | os.O_APPEND), "ab") as log_file:
        start_offset = log_file.seek(0, os.SEEK_END)
        proc = subprocess.Popen(
            [*_firelink_command(), "run", *args, "--detached-child"],
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    client = ControlClient(state_dir, timeout=5.0)
    deadline = time.monotonic() + timeout
    while True:
        code = proc.poll()
        if code is not None:
            tail = _log_tail(log_path, start_offset)
            print(f"firelink: the daemon exited during startup (exit code {code})", file=err)
            if tail:
                print(f"last lines of {log_path}:\n{tail}", file=err)
            return 1
        try:
            info = client.request("ping")
        except DaemonNotRunning:
            info = None
        except ControlError as exc:
            print(f"firelink: the daemon does not answer properly: {exc.message}", file=err)
            return 1
        if info and info.get("pid") == proc.pid:
            print(
                f"firelink started in the background (pid {proc.pid}); log {log_path}; "
                f"pid file {state_dir / PID_NAME}",
                file=out,
            )
            return 0
        if time.monotonic() > deadline:
            print(
                f"firelink: the daemon (pid {proc.pid}) did not answer within {format_duration(timeout)};"
                f" see {log_path}",
                file=err,
            )
            return 1
        time.sleep(0.05)


def _firelink_command() -> list[str]:
    """How to run ``firelink`` again: the same console script (so ``ps`` shows ``firelink run``),
    else this interpreter importing the CLI."""
    script = Path(sys.argv[0]) if sys.argv and sys.argv[0] else None
    if script is not None and script.name == "firelink" and script.is_file() and os.access(script, os.X_OK):
        return [str(script.absolute())]
    return [sys.executable, "-c", "import sys; from firelink_core.cli import main; sys.exit(main(prog_name='firelink'))"]


def _log_tail(path: Path, offset: int, lines: int = 20) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(offset)
            text = f.read().decode("utf-8", "replace")
    except OSError:
        return ""
    return "\n".join(text.rstrip("\n").splitlines()[-lines:])
