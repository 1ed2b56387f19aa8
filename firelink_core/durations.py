"""Durations written ``30s``, ``5m``, ``1h30m``, ``250ms``, ``2d``; sizes written ``10MB``, ``512KiB``."""

from __future__ import annotations

import re
from typing import Any

__all__ = [
    "parse_duration",
    "format_duration",
    "parse_size",
    "duration_schema",
    "size_schema",
    "DURATION_PATTERN",
    "SIZE_PATTERN",
]

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0, "d": 86400.0, "w": 604800.0}
_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|s|m|h|d|w)")
_NUMBER = re.compile(r"^\s*\d+(?:\.\d+)?\s*$")
DURATION_PATTERN = r"^\s*(\d+(\.\d+)?|((\d+(\.\d+)?)(ms|s|m|h|d|w))+)\s*$"
"""The JSON Schema ``pattern`` of a duration string: units, or a bare number of seconds (``"90"``)."""


def parse_duration(value: str | int | float) -> float:
    """Seconds in a duration; a bare number (or a string of one) is seconds. Raises ``ValueError`` with a reason."""
    if isinstance(value, bool):
        raise ValueError(f"expected a duration like 30s, 5m or 1h30m, got {value!r}")
    if isinstance(value, (int, float)):
        if value < 0:
            raise ValueError(f"a duration cannot be negative, got {value!r}")
        return float(value)
    text = str(value).strip()
    if _NUMBER.match(text):
        # A quoted YAML "90" and `--grace 0` mean seconds, as the bare number 90 does.
        return float(text)
    pos, total = 0, 0.0
    for match in _PART.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text) or not text:
        raise ValueError(f"expected a duration like 30s, 5m or 1h30m, got {value!r}")
    return total


def format_duration(seconds: float) -> str:
    """The shortest readable form: ``90`` -> ``1m30s``."""
    if seconds < 1 and seconds > 0:
        return f"{round(seconds * 1000)}ms"
    rest = int(round(seconds))
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        if rest >= size:
            parts.append(f"{rest // size}{unit}")
            rest %= size
    return "".join(parts) or "0s"


SIZE_PATTERN = r"^\s*\d+(\.\d+)?\s*([kKmMgGtT]i?[bB]?|[bB])?\s*$"
"""The JSON Schema ``pattern`` of a size string."""
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kKmMgGtT]i?[bB]?|[bB])?\s*$")
_SIZE_POWERS = {"k": 1, "m": 2, "g": 3, "t": 4}


def parse_size(value: str | int) -> int:
    """Bytes in a size: ``10MB``, ``512KiB``, ``1G``; a bare number is bytes.

    Every unit is binary (``10MB`` = ``10MiB`` = ``10M`` = 10 * 1024**2), as in Docker,
    logrotate and ``du``: for log caps nobody means 1000. Raises ``ValueError`` with a reason.
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a size like 10MB or 512KiB, got {value!r}")
    if isinstance(value, int):
        if value < 0:
            raise ValueError(f"a size cannot be negative, got {value!r}")
        return value
    match = _SIZE.match(str(value))
    if not match:
        raise ValueError(f"expected a size like 10MB or 512KiB, got {value!r}")
    number, unit = float(match.group(1)), match.group(2) or ""
    if not unit or unit.lower() == "b":
        return int(number)
    power = _SIZE_POWERS[unit[0].lower()]
    return int(number * 1024**power)


def duration_schema(description: str, default: str | float | None = None, **extra: Any) -> dict[str, Any]:
    """The JSON Schema fragment of a duration option: ``30s``, ``1h30m`` or a number of seconds.

    Every component uses this one fragment, so ``firelink validate`` explains every duration
    the same way. ``extra`` adds keywords (``minimum`` for the number form, ``examples``).
    """
    fragment: dict[str, Any] = {
        "description": description,
        "type": ["string", "number"],
        "pattern": DURATION_PATTERN,
        "minimum": 0,
    }
    if default is not None:
        fragment["default"] = default
    fragment.update(extra)
    return fragment


def size_schema(description: str, default: str | int | None = None, **extra: Any) -> dict[str, Any]:
    """The JSON Schema fragment of a size option: ``10MB``, ``512KiB`` or a number of bytes."""
    fragment: dict[str, Any] = {
        "description": description,
        "type": ["string", "integer"],
        "pattern": SIZE_PATTERN,
        "minimum": 0,
    }
    if default is not None:
        fragment["default"] = default
    fragment.update(extra)
    return fragment
