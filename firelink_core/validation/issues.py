"""The problems one validation run collects, and what every check of that run needs."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .._yaml import Located
from ..abc import Component, Problem
from ..plugins import Plugins

__all__ = ["Checks", "Issue", "PathT"]

PathT = tuple[str | int, ...]


@dataclass
class Issue:
    """One problem before it gets its file name: a path into the data and a message."""

    path: PathT
    message: str
    code: str = "schema"
    job: str | None = None
    key: bool = False
    """Locate the mapping key at ``path`` rather than its value."""


@dataclass
class Checks:
    """One validation run: the config, the plugins, and the issues found so far."""

    located: Located
    plugins: Plugins
    config_dir: Path | None
    interpolated: bool
    """Whether ``${VAR}`` references were replaced; when not, their values are not judged."""
    issues: list[Issue] = field(default_factory=list)
    check_memo: dict[tuple[type[Component], str], list[Problem]] = field(default_factory=dict)

    def add(self, path: PathT, message: str, code: str = "schema", *, job: str | None = None, key: bool = False) -> None:
        self.issues.append(Issue(tuple(path), message, code, job, key))
