"""The help a user reads (issue 20): an example in every command's help, whole command
summaries in ``firelink --help``, and a DURATION metavar on every duration option."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import click
import pytest

from firelink_core.cli import main
from firelink_core.cli._common import duration_param

FIRELINK = str(Path(sys.executable).with_name("firelink"))
COMMANDS = sorted(main.commands)


def _help(*args: str) -> str:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FIRELINK_")}
    result = subprocess.run(
        [FIRELINK, *args, "--help"], capture_output=True, text=True, env=env, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


@pytest.mark.parametrize("name", COMMANDS)
def test_every_command_help_shows_an_example(name: str) -> None:
    text = _help(name)
    assert "Example" in text, f"`firelink {name} --help` has no example"
    example = text.split("Example", 1)[1]
    assert f"firelink {name}" in example, example


def test_command_summaries_are_whole() -> None:
    text = _help().split("Commands:", 1)[1]
    assert not [line for line in text.splitlines() if line.endswith("...")], text  # click's cut
    for name in COMMANDS:
        summary = main.commands[name].get_short_help_str(limit=1_000)
        words = summary.split()
        assert words[-1] in text, (name, summary)


def test_duration_options_show_a_duration_metavar() -> None:
    found = []
    for name, command in main.commands.items():
        for param in command.params:
            if isinstance(param, click.Option) and param.callback is duration_param:
                found.append((name, param.name, param.metavar))
    assert found, "no duration option found"
    assert all(metavar == "DURATION" for _, _, metavar in found), found
    assert "--grace DURATION" in _help("stop")
