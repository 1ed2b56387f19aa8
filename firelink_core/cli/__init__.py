"""The ``firelink`` command line: one click group, commands defined in the private modules."""

from __future__ import annotations

import importlib.metadata

import click

from . import (
    _cancel_cmd,
    _config_cmds,
    _control_cmds,
    _graph_cmds,
    _history_cmds,
    _pause_cmds,
    _retry_cmd,
    _run_cmd,
    _run_once_cmd,
    _schedule_cmds,
)
from ._version import version_option

__all__ = ["main", "run"]


COMMAND_GROUP = "firelink.commands"
"""Entry-point group of commands plugin distributions add (``firelink web-url``): loaded only
when named or listed, so the other commands never import a plugin."""


def _plugin_commands() -> dict[str, importlib.metadata.EntryPoint]:
    return {ep.name: ep for ep in importlib.metadata.entry_points(group=COMMAND_GROUP)}


class _Commands(click.Group):
    """The group whose command list shows each summary whole, wrapped, never cut with '...';
    commands of plugin distributions come from the ``firelink.commands`` entry points."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        core = super().list_commands(ctx)
        return sorted({*core, *(name for name in _plugin_commands() if name not in self.commands)})

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        command = super().get_command(ctx, cmd_name)
        if command is not None:
            return command
        entry = _plugin_commands().get(cmd_name)
        if entry is None:
            return None
        try:
            loaded = entry.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not break the CLI
            raise click.ClickException(f"the command {cmd_name!r} of {entry.value} cannot load: {exc}") from None
        return loaded if isinstance(loaded, click.Command) else None

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        rows = []
        for name in self.list_commands(ctx):
            command = self.get_command(ctx, name)
            if command is not None and not command.hidden:
                rows.append((name, command.get_short_help_str(limit=1_000)))
        if rows:
            with formatter.section("Commands"):
                formatter.write_dl(rows)


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"]})
@version_option
def main() -> None:
    """firelink: a plugin-based job scheduler.

    \b
    Exit codes: 0 success, 1 failure (invalid config, failed job, daemon error),
    2 usage error (missing file, unknown option), 3 daemon not running.
    """


def run() -> None:
    """The console script: ``main`` with a quiet exit when stdout is closed (``| head``)."""
    import os
    import sys

    try:
        main()
    except BrokenPipeError:
        # Point stdout at /dev/null so the interpreter's final flush does not fail again.
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        sys.exit(1)


for _module in (
    _config_cmds, _run_cmd, _run_once_cmd, _control_cmds, _cancel_cmd, _retry_cmd, _schedule_cmds, _pause_cmds, _history_cmds, _graph_cmds,
):
    for _command in _module.COMMANDS:
        main.add_command(_command)
