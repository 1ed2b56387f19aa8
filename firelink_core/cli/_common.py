"""What the command modules share: exit codes, failing with a message, option callbacks, loading a config."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NoReturn

import click

from ..config import ConfigInvalid, load_config
from ..durations import parse_duration
from ..model import Config
from ..plugins import Plugins

__all__ = [
    "EXIT_OK",
    "EXIT_FAILURE",
    "EXIT_USAGE",
    "EXIT_NOT_RUNNING",
    "fail",
    "duration_param",
    "address_param",
    "load_config_or_exit",
    "plugin_option",
    "DEFAULT_CONFIG",
    "default_config_or_exit",
    "warn_broken_plugins",
]

EXIT_OK = 0
EXIT_FAILURE = 1
EXIT_USAGE = 2
"""Also an unknown job name (the argument is wrong)."""
EXIT_NOT_RUNNING = 3

DEFAULT_CONFIG = Path("firelink.yaml")
"""The config every command uses when none is given and ``FIRELINK_CONFIG`` is unset."""

plugin_option = click.option(
    "--plugin",
    "extra_plugins",
    multiple=True,
    metavar="MODULE[:ATTR]",
    help="Load this plugin module too (repeatable; also FIRELINK_PLUGINS, comma-separated).",
)
"""The one ``--plugin`` option of every command that loads plugins."""


def fail(message: str, code: int = EXIT_FAILURE) -> NoReturn:
    """Print ``firelink: message`` on stderr and exit with ``code``."""
    click.echo(f"firelink: {message}", err=True)
    sys.exit(code)


def duration_param(_ctx: click.Context, param: click.Parameter, value: Any) -> float | None:
    """A click callback: ``30s``, ``5m`` ... as seconds."""
    if value is None:
        return None
    try:
        return parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param=param) from None


def address_param(_ctx: click.Context, param: click.Parameter, value: Any) -> tuple[str, int] | None:
    """A click callback: ``HOST:PORT`` (or a bare port) as ``(host, port)``."""
    if value is None:
        return None
    from .._metrics import parse_address

    try:
        return parse_address(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param=param) from None


def default_config_or_exit(argument: str) -> Path:
    """The config when none is named: ``FIRELINK_CONFIG``, else ``./firelink.yaml``; exit 2 without one.

    The same rule as the client commands' ``-c``, for ``run`` and ``validate``.
    """
    named = os.environ.get("FIRELINK_CONFIG")
    if named:
        if not Path(named).is_file():
            fail(f"FIRELINK_CONFIG names {named!r}, which is not a file", EXIT_USAGE)
        return Path(named)
    if not DEFAULT_CONFIG.is_file():
        fail(f"no config: give {argument}, set FIRELINK_CONFIG or run where firelink.yaml is", EXIT_USAGE)
    return DEFAULT_CONFIG


def warn_broken_plugins(plugins: Plugins) -> None:
    """Print, as warnings, the installed plugins that failed to import: nothing the command needs
    came from them (a type that did would be an error of its own, naming them)."""
    for error in plugins.errors:
        if error.optional:
            click.echo(f"firelink: warning: {error}; skipped", err=True)


def _print_config_errors(errors: Iterable[Any]) -> None:
    """Print config problems the way ``firelink validate`` does: ``file:line:col: message``."""
    for error in errors:
        click.echo(str(error), err=True)


def load_config_or_exit(path: Path, *, extra_plugins: tuple[str, ...] = (), state_dir: Path | None = None,
                interpolate: bool = True) -> tuple[Config, Plugins]:
    """Load and validate a config; on problems print them located (as ``validate`` does) and exit 1."""
    try:
        config, plugins = load_config(path, extra_plugins=extra_plugins, state_dir=state_dir, interpolate=interpolate)
    except ConfigInvalid as exc:
        _print_config_errors(exc.errors)
        sys.exit(EXIT_FAILURE)
    warn_broken_plugins(plugins)
    return config, plugins
