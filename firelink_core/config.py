"""YAML loading with locations, the merged JSON Schema, and validation (placeholder API: being written)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .model import Config
from .plugins import Plugins

__all__ = ["ConfigError", "ConfigInvalid", "load_config", "parse_config", "validate_files", "merged_schema"]


@dataclass(frozen=True)
class ConfigError:
    """One located problem in a config file."""

    file: str
    line: int | None
    column: int | None
    message: str
    job: str | None = None
    code: str = "invalid"
    """A short kind: ``yaml``, ``schema``, ``unknown-key``, ``duplicate-job``, ``cycle`` ..."""

    def __str__(self) -> str:
        where = self.file
        if self.line is not None:
            where += f":{self.line}"
            if self.column is not None:
                where += f":{self.column}"
        job = f" job {self.job!r}:" if self.job else ""
        return f"{where}:{job} {self.message}"


class ConfigInvalid(Exception):
    """Raised by ``load_config`` with every problem found."""

    def __init__(self, errors: Sequence[ConfigError]) -> None:
        self.errors = list(errors)
        super().__init__("\n".join(str(e) for e in self.errors))


def load_config(
    path: str | Path,
    *,
    plugins: Plugins | None = None,
    extra_plugins: Sequence[str] = (),
    state_dir: str | Path | None = None,
) -> tuple[Config, Plugins]:
    """Read, validate and build a config file; raise ``ConfigInvalid`` listing every problem."""
    raise NotImplementedError


def parse_config(
    text: str, filename: str = "<string>", *, plugins: Plugins | None = None, state_dir: str | Path | None = None
) -> tuple[Config, Plugins]:
    """Like ``load_config`` for YAML text (tests and reload)."""
    raise NotImplementedError


def validate_files(paths: Sequence[str | Path], *, extra_plugins: Sequence[str] = ()) -> list[ConfigError]:
    """Every problem in every file (empty when all are valid)."""
    raise NotImplementedError


def merged_schema(plugins: Plugins) -> dict[str, Any]:
    """The core's JSON Schema with every installed plugin's parts merged in."""
    raise NotImplementedError
