"""Where a client command looks (state directory, config, the daemon's socket), and the run
history it reads from storage while the daemon is down."""

from __future__ import annotations

import asyncio
import logging
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import click

from .._control import ControlClient, ControlError, DaemonNotRunning, suggest
from .._daemon import lock_holder
from .._state_dir import config_state_dir, default_state_dir
from ..abc import Storage, StorageContext
from ..config import load_config
from ..model import Config
from ..plugins import Plugins, make_plugins
from ._common import DEFAULT_CONFIG, EXIT_NOT_RUNNING, EXIT_USAGE, fail, load_config_or_exit

__all__ = [
    "Target",
    "locate_options",
    "complete_jobs",
    "control_failure",
    "not_running",
    "unknown_job",
]

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])


def locate_options(func: F) -> F:
    """``--state-dir``/``-c CONFIG``/``--json`` shared by the client commands."""
    func = click.option(
        "--json", "as_json", is_flag=True, help="Print JSON (for scripts) instead of text."
    )(func)
    func = click.option(
        "-c", "--config", "config_path",
        type=click.Path(exists=True, dir_okay=False, path_type=Path),
        envvar="FIRELINK_CONFIG",
        help="A config file: its state_dir locates the daemon (default ./firelink.yaml if present). Env FIRELINK_CONFIG.",
    )(func)
    func = click.option(
        "--state-dir",
        type=click.Path(file_okay=False, path_type=Path),
        envvar="FIRELINK_STATE_DIR",
        help="The daemon's state directory (overrides the config's). Env FIRELINK_STATE_DIR.",
    )(func)
    return func


def not_running(exc: DaemonNotRunning) -> NoReturn:
    """Say that no daemon answers; exit 3."""
    click.echo(str(exc), err=True)
    sys.exit(EXIT_NOT_RUNNING)


def control_failure(exc: ControlError) -> NoReturn:
    """An error the daemon answered: an unknown job (with suggestions) or an unknown or
    ambiguous run id exits 2, the rest 1."""
    if exc.code == "unknown-job":
        unknown_job(exc.data.get("job", "?"), exc.data.get("suggestions") or [])
    if exc.code in ("unknown-run", "ambiguous-run"):
        fail(exc.message, EXIT_USAGE)  # the RUN_ID argument is wrong, as an unknown job name is
    if exc.code == "bad-param":
        fail(exc.message, EXIT_USAGE)  # a --param is wrong: the message names it
    fail(exc.message)


def unknown_job(job: str, suggestions: list[str]) -> NoReturn:
    """``no job named 'x'; did you mean 'y'?``, exit 2."""
    hint = f"; did you mean {' or '.join(repr(s) for s in suggestions)}?" if suggestions else ""
    fail(f"no job named {job!r}{hint}", EXIT_USAGE)


class Target:
    """Where a client command looks: the state directory and, if known, the config file."""

    def __init__(self, state_dir: Path | None, config_path: Path | None) -> None:
        if config_path is None and DEFAULT_CONFIG.is_file() and state_dir is None:
            config_path = DEFAULT_CONFIG
        self.config_path = config_path.absolute() if config_path else None
        if state_dir is not None:
            self.state_dir = state_dir.expanduser().absolute()
        elif config_path is not None:
            self.state_dir = config_state_dir(config_path)
        else:
            self.state_dir = default_state_dir()
        self.client = ControlClient(self.state_dir)
        self._config: tuple[Config, Plugins] | None = None

    def check_alive_without_socket(self) -> None:
        """A daemon holding the lock but not answering is not "not running": say so, exit 1."""
        pid = lock_holder(self.state_dir)
        if pid:
            who = f"pid {pid}" if pid > 0 else "a process"
            fail(
                f"firelink ({who}) holds the lock on {self.state_dir} but does not answer on its"
                " control socket (still starting, or stuck); see its log"
            )

    def request(self, cmd: str, **args: Any) -> Any:
        """A request to the running daemon; exits 3 when none runs."""
        try:
            return self.client.request(cmd, **args)
        except DaemonNotRunning as exc:
            self.check_alive_without_socket()
            not_running(exc)
        except ControlError as exc:
            control_failure(exc)

    def try_request(self, cmd: str, **args: Any) -> tuple[bool, Any]:
        """``(True, result)`` from a running daemon, ``(False, why not)`` when none runs."""
        try:
            return True, self.client.request(cmd, **args)
        except DaemonNotRunning as exc:
            self.check_alive_without_socket()
            return False, str(exc)
        except ControlError as exc:
            control_failure(exc)

    def config(self) -> tuple[Config, Plugins] | None:
        """The config, loaded without interpolating ``${VARS}`` (exits 1 when it is invalid)."""
        if self._config is None and self.config_path is not None:
            self._config = load_config_or_exit(self.config_path, state_dir=self.state_dir, interpolate=False)
        return self._config

    def job_names(self) -> list[str] | None:
        """The config's job names, ``None`` without a config."""
        loaded = self.config()
        return None if loaded is None else list(loaded[0].job_names)

    def check_job_offline(self, job: str | None) -> None:
        """With the daemon down, an unknown job is judged by the config (if there is one)."""
        names = self.job_names()
        if job is not None and names is not None and job not in names:
            unknown_job(job, suggest(job, names))

    def read_history(self, work: Callable[[Storage], Awaitable[T]]) -> T | None:
        """``work(storage)`` on the config's storage opened read-only, for when the daemon is down.

        ``None`` when nothing was ever recorded here (no state directory, or the storage
        holds nothing yet). Exits 1 with the reason when the history cannot be read.
        """
        loaded = self.config()
        if not self.state_dir.is_dir():
            return None  # nothing was ever recorded here; do not create the directory
        if loaded is None:
            plugins = make_plugins()
            storage_type, options = plugins.default_type("storage"), {}
        else:
            config, plugins = loaded
            storage_type, options = config.storage.type, dict(config.storage.options)
        cls = plugins.storages().get(storage_type) if storage_type else None
        if cls is None:
            fail(f"storage type {storage_type!r} is not installed")
        context = _StorageContext(self.state_dir)

        async def main() -> T | None:
            storage = cls(options, context)
            if not await storage.open_readonly():
                return None  # the daemon never ran with this state directory
            try:
                return await work(storage)
            finally:
                await storage.close()

        try:
            return asyncio.run(main())
        except Exception as exc:  # a locked, newer or damaged store: say what, no traceback
            fail(f"cannot read the run history in {self.state_dir}: {type(exc).__name__}: {exc}")


class _StorageContext(StorageContext):
    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.logger = logging.getLogger("firelink.storage")


def complete_jobs(ctx: click.Context, _param: click.Parameter, incomplete: str) -> list[str]:
    """Job names for shell completion: from the running daemon, else from the config."""
    try:
        target = Target(ctx.params.get("state_dir"), ctx.params.get("config_path"))
        target.client.timeout = 2.0
        try:
            names = [job["name"] for job in target.client.request("status")["jobs"]]
        except (DaemonNotRunning, ControlError):
            if target.config_path is None:
                return []
            names = list(load_config(target.config_path, interpolate=False)[0].job_names)
    except Exception:  # completion must never print a traceback into the user's shell
        return []
    return [name for name in names if name.startswith(incomplete)]
