"""Run parameters (a job's ``params:``) beyond their schema: defaults and enum values of the
declared type, patterns that compile, no required parameter on a job that runs on its own,
and ``{params.NAME}`` placeholders that name a declared parameter in a list-form command."""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

from ..model import ParamSpec
from ..params import PLACEHOLDER, ParamError, read_value
from .issues import Checks

__all__ = ["check_params"]

_ANY_PLACEHOLDER = re.compile(r"\{params\.[^}]*\}")


def _spec(name: str, raw: Mapping[str, Any]) -> ParamSpec:
    enum = raw.get("enum")
    return ParamSpec(
        name=name,
        type=raw.get("type", "string"),
        default=None,
        enum=tuple(enum) if isinstance(enum, list) else None,
        pattern=raw.get("pattern") if isinstance(raw.get("pattern"), str) else None,
        secret=bool(raw.get("secret")),
    )


def _fires_alone(checks: Checks, job: Mapping[str, Any]) -> str | None:
    """How the job runs without a request (a schedule, a watch, an upstream), or None."""
    if job.get("depends_on"):
        return "after its upstream jobs (depends_on)"
    items = (
        [job]
        if "trigger" in job
        else [t for t in job.get("triggers") or () if isinstance(t, Mapping)]
    )
    for item in items:
        kind = item.get("trigger")
        if not isinstance(kind, str):
            continue
        source = item.get("source")
        cls = checks.plugins.trigger_class(kind, source if isinstance(source, str) else None)
        if cls is not None and not cls.on_request:
            return f"from its {kind!r} trigger"
    return None


def check_params(checks: Checks, jobs: list[Any]) -> None:
    """Every job's parameters and the placeholders of its command."""
    for index, job in enumerate(jobs):
        if not isinstance(job, Mapping):
            continue
        name = job.get("name") if isinstance(job.get("name"), str) else None
        params = job.get("params") if isinstance(job.get("params"), Mapping) else {}
        alone = _fires_alone(checks, job) if params else None
        for param, raw in params.items():
            if not isinstance(raw, Mapping):
                continue
            where = ("jobs", index, "params", param)
            spec = _spec(str(param), raw)
            pattern = raw.get("pattern")
            if isinstance(pattern, str):
                try:
                    re.compile(pattern)
                except re.error as exc:
                    checks.add(
                        (*where, "pattern"),
                        f"pattern is not a regular expression: {exc}",
                        "params",
                        job=name,
                    )
                    continue
            for k, value in enumerate(raw.get("enum") or ()):
                try:
                    read_value(ParamSpec(name=spec.name, type=spec.type), value)
                except ParamError as exc:
                    checks.add((*where, "enum", k), exc.message, "params", job=name)
            if "default" in raw and raw["default"] is not None:
                try:
                    read_value(spec, raw["default"])
                except ParamError as exc:
                    checks.add((*where, "default"), "default: " + exc.message, "params", job=name)
            elif alone is not None:
                checks.add(
                    where,
                    f"parameter {param!r} has no default, but the job also runs {alone}, and runs that"
                    " are not started by hand use the defaults: give it a default",
                    "params",
                    job=name,
                )
        _check_placeholders(checks, index, job, name, params)


def _check_placeholders(
    checks: Checks, index: int, job: Mapping[str, Any], name: str | None, params: Mapping[str, Any]
) -> None:
    command = job.get("command")
    if isinstance(command, str):
        if _ANY_PLACEHOLDER.search(command):
            checks.add(
                ("jobs", index, "command"),
                "{params.NAME} placeholders work in a list-form command only (each item substituted"
                ' whole, never through a shell): write command: ["prog", "--day={params.day}"]',
                "params",
                job=name,
            )
        return
    if not isinstance(command, list):
        return
    for k, item in enumerate(command):
        if not isinstance(item, str):
            continue
        for found in _ANY_PLACEHOLDER.finditer(item):
            match = PLACEHOLDER.fullmatch(found.group(0))
            if match is None or match.group(1) not in params:
                declared = ", ".join(map(str, params)) or "none"
                checks.add(
                    ("jobs", index, "command", k),
                    f"{found.group(0)} names no parameter of this job (declared: {declared})",
                    "params",
                    job=name,
                )
