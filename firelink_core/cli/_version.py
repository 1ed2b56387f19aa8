"""``firelink --version``: the core's version and every installed plugin distribution's."""

from __future__ import annotations

from importlib import metadata

import click

from .. import __version__
from ..plugins import make_plugins

__all__ = ["version_lines", "version_option"]


def version_lines() -> list[str]:
    """``firelink-core 0.1.0`` then one line per other distribution that provides plugins.

    From the plugin registry, so a distribution shows only if its plugins are found; one whose
    plugin failed to import is listed too, marked, since that is when the version matters most.
    """
    plugins = make_plugins()
    lines = [f"firelink-core {__version__}"]
    seen = {"firelink-core"}
    for info in sorted(plugins.infos, key=lambda i: (i.distribution or "", i.name)):
        if info.distribution and info.distribution not in seen:
            seen.add(info.distribution)
            lines.append(f"{info.distribution} {info.version or '?'}")
    for error in plugins.errors:
        if error.distribution and error.distribution not in seen:
            seen.add(error.distribution)
            lines.append(f"{error.distribution} {_installed_version(error.distribution)} (broken: see `firelink plugins`)")
    return lines


def _installed_version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "?"


def _print_version(ctx: click.Context, _param: click.Parameter, value: bool) -> None:
    if not value or ctx.resilient_parsing:
        return
    click.echo("\n".join(version_lines()))
    ctx.exit()


version_option = click.option(
    "--version",
    is_flag=True,
    expose_value=False,
    is_eager=True,
    callback=_print_version,
    help="Print the version of firelink-core and of each installed plugin distribution, and exit.",
)
"""The group's ``--version`` option."""
