"""``${VAR}`` interpolation of config values from the environment (one implementation for all)."""

from __future__ import annotations

import os
import re
from collections.abc import Callable, Mapping
from typing import Any

from ._yaml import Located, typed_scalar

__all__ = ["INTERPOLATION", "expand", "interpolate"]

PathT = tuple[str | int, ...]

INTERPOLATION = re.compile(r"\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\})")
"""``${VAR}``, ``${VAR:-default}``; ``$$`` is a literal ``$``."""


def expand(
    value: str, environ: Mapping[str, str] | None = None, *, missing: Callable[[str], None] | None = None
) -> str:
    """``value`` with every reference replaced from ``environ`` (default ``os.environ``).

    An unset variable without a default stays as written and is passed to ``missing``.
    """
    env = os.environ if environ is None else environ

    def repl(match: re.Match[str]) -> str:
        if match.group(1) == "$":
            return "$"
        var, default = match.group(2), match.group(3)
        if var in env:
            return env[var]
        if default is not None:
            return default
        if missing is not None:
            missing(var)
        return match.group(0)

    return INTERPOLATION.sub(repl, value)


def interpolate(located: Located, environ: Mapping[str, str] | None = None) -> list[tuple[PathT, str]]:
    """Replace references in every string value of ``located.data`` in place.

    :return: ``(path, variable)`` of every unset variable without a default.
    """
    unset: list[tuple[PathT, str]] = []

    def walk(value: Any, path: PathT) -> Any:
        if isinstance(value, str):
            if "$" not in value:
                return value
            result = expand(value, environ, missing=lambda var: unset.append((path, var)))
            if path in located.plain_templates and INTERPOLATION.fullmatch(value):
                # ``max_instances: ${N}`` unquoted reads like ``max_instances: 3``: typed as YAML
                # would type it. Quoted (``"${N}"``) stays a string.
                return typed_scalar(result)
            return result
        if isinstance(value, list):
            return [walk(v, path + (i,)) for i, v in enumerate(value)]
        if isinstance(value, dict):
            return {k: walk(v, path + (k,)) for k, v in value.items()}
        return value

    located.data = walk(located.data, ())
    return unset
