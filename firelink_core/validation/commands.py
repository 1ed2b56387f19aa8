"""String commands with shell syntax but no ``shell: true``: a crontab line pasted as is.

Without a shell, ``backup.sh >> /var/log/backup.log 2>&1`` runs ``backup.sh`` with ``>>``,
the path and ``2>&1`` as arguments: nothing is redirected and the run may well succeed.
Such a command is refused, with both ways out.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from .._interpolation import INTERPOLATION
from .issues import Checks, PathT

__all__ = ["check_shell_syntax", "shell_syntax"]

_VARIABLE = re.compile(r"\$([A-Za-z_][A-Za-z0-9_]*|\{|\(|[0-9@*#?$!-])")
_OPERATORS = (
    ("&&", "'&&'"),
    ("||", "'||'"),
    (">>", "a redirection '>>'"),
    ("<<", "a here-document '<<'"),
    (">", "a redirection '>'"),
    ("<", "a redirection '<'"),
    ("|", "a pipe '|'"),
    (";", "';'"),
    ("&", "'&'"),
    ("`", "a backtick command substitution"),
    ("*", "a glob '*'"),
    ("?", "a glob '?'"),
    ("[", "a glob '['"),
)


def shell_syntax(command: str) -> str | None:
    """What in ``command`` only a shell understands (the first found, described), or ``None``.

    Quoting is honoured as a shell would: inside single quotes nothing is special, inside
    double quotes only ``$`` and backticks are.
    """
    quote: str | None = None
    i = 0
    while i < len(command):
        char = command[i]
        if quote == "'":
            if char == "'":
                quote = None
            i += 1
            continue
        if char == "\\":
            i += 2
            continue
        if char == "$":
            match = _VARIABLE.match(command, i)
            if match:
                what = match.group(1)
                if what == "(":
                    return "a command substitution '$(...)'"
                return f"a variable '{match.group(0)}{'...}' if what == '{' else ''}'"
        if char == "`":
            return "a backtick command substitution"
        if quote == '"':
            if char == '"':
                quote = None
            i += 1
            continue
        if char in "'\"":
            quote = char
            i += 1
            continue
        for token, described in _OPERATORS:
            if command.startswith(token, i):
                return described
        i += 1
    return None


def check_shell_syntax(checks: Checks, jobs: list[Any], defaults: Any) -> None:
    """Refuse each job's string ``command`` holding shell syntax when ``shell`` is not true."""
    default_shell = defaults.get("shell") if isinstance(defaults, Mapping) else None
    for index, job in enumerate(jobs):
        if not isinstance(job, Mapping):
            continue
        command = job.get("command")
        shell = job.get("shell", default_shell)
        if not isinstance(command, str) or shell is True:
            continue
        text = command if checks.interpolated else INTERPOLATION.sub("x", command)
        found = shell_syntax(text)
        if found is None:
            continue
        name = job.get("name") if isinstance(job.get("name"), str) else None
        path: PathT = ("jobs", index, "command")
        checks.add(
            path,
            f"command holds shell syntax ({found}) but runs without a shell: the program would get it as"
            " plain arguments. Set 'shell: true' to run it through /bin/sh, or write the command as a list"
            ' (command: ["prog", "arg"]) without the shell syntax',
            "shell-syntax",
            job=name,
        )
