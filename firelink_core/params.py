"""Run parameters (a job's ``params:``): values given with a request read by their declared
type and checked, the defaults of runs that fire on their own, what a run's record holds
(secret values masked), and what the command gets (``FIRELINK_PARAM_<NAME>``, ``{params.NAME}``
in list-form command items)."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Mapping
from typing import Any

from .model import JobSpec, ParamSpec
from .records import SECRET_MASK

__all__ = [
    "PARAMS",
    "ParamError",
    "PLACEHOLDER",
    "as_text",
    "command_with_params",
    "default_params",
    "event_params",
    "expected",
    "param_env",
    "read_value",
    "resolve",
    "run_params",
    "secret_env",
    "stored_params",
]

PARAMS = "params"
"""Key in an event's and a run's ``options``: the run's parameters (secret ones ``***``)."""
PLACEHOLDER = re.compile(r"\{params\.([A-Za-z_][A-Za-z0-9_]*)\}")
"""``{params.NAME}`` in a list-form command item."""
_TRUE = {"true", "yes", "on", "1"}
_FALSE = {"false", "no", "off", "0"}
MAX_VALUE = 64 * 1024
"""The longest value accepted for one parameter (characters)."""


class ParamError(ValueError):
    """A parameter given wrongly: ``param`` names it, the message says what was expected."""

    def __init__(self, param: str, message: str) -> None:
        super().__init__(message)
        self.param = param
        self.message = message


def expected(spec: ParamSpec) -> str:
    """What a value of ``spec`` must be, in words."""
    what = {
        "string": "a string",
        "integer": "an integer",
        "number": "a number",
        "boolean": "true or false",
    }[spec.type]
    if spec.enum is not None:
        what = "one of " + ", ".join(as_text(v) for v in spec.enum)
    elif spec.pattern is not None:
        what += f" matching {spec.pattern!r}"
    if spec.description:
        what += f" ({spec.description})"
    return what


def read_value(spec: ParamSpec, raw: Any) -> Any:
    """A value of ``spec`` from text (a request) or from YAML (a default); ``ParamError`` otherwise."""
    value: Any
    if isinstance(raw, str) and len(raw) > MAX_VALUE:
        raise ParamError(
            spec.name, f"parameter {spec.name!r}: the value is longer than {MAX_VALUE} characters"
        )
    if spec.type == "string":
        value = raw if isinstance(raw, str) else None
    elif spec.type == "boolean":
        if isinstance(raw, bool):
            value = raw
        else:
            text = str(raw).strip().lower()
            value = True if text in _TRUE else False if text in _FALSE else None
    elif spec.type == "integer":
        value = _integer(raw)
    else:
        value = _number(raw)
    if value is None:
        raise ParamError(spec.name, _bad(spec, raw))
    if spec.enum is not None and value not in spec.enum:
        raise ParamError(spec.name, _bad(spec, raw))
    if (
        spec.pattern is not None
        and isinstance(value, str)
        and re.search(spec.pattern, value) is None
    ):
        raise ParamError(spec.name, _bad(spec, raw))
    return value


def _integer(raw: Any) -> int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, int):
        return raw
    if isinstance(raw, float):
        return int(raw) if raw.is_integer() else None
    try:
        return int(str(raw).strip())
    except ValueError:
        return None


def _number(raw: Any) -> float | int | None:
    if isinstance(raw, bool):
        return None
    if isinstance(raw, (int, float)):
        return raw if math.isfinite(raw) else None
    try:
        value = float(str(raw).strip())
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _bad(spec: ParamSpec, raw: Any) -> str:
    shown = SECRET_MASK if spec.secret else repr(raw)
    return f"parameter {spec.name!r}: expected {expected(spec)}, got {shown}"


def resolve(job: JobSpec, given: Mapping[str, str] | None) -> dict[str, Any]:
    """The run's parameter values: ``given`` (text, from ``--param``) read by type, the
    defaults for the rest. ``ParamError`` names an unknown, invalid or missing one."""
    given = dict(given or {})
    unknown = sorted(set(given) - set(job.params))
    if unknown:
        declared = ", ".join(job.params) or "none"
        raise ParamError(
            unknown[0], f"job {job.name!r} has no parameter {unknown[0]!r} (declared: {declared})"
        )
    values: dict[str, Any] = {}
    for name, spec in job.params.items():
        if name in given:
            values[name] = read_value(spec, given[name])
        elif spec.default is not None:
            values[name] = spec.default
        else:
            raise ParamError(
                name, f"parameter {name!r} is required: give --param {name}=VALUE, {expected(spec)}"
            )
    return values


def default_params(job: JobSpec) -> dict[str, Any]:
    """The values of runs that fire on their own: each parameter's default (one without a
    default is left out; validation refuses it on such a job)."""
    return {name: spec.default for name, spec in job.params.items() if spec.default is not None}


def event_params(job: JobSpec, given: Mapping[str, Any]) -> dict[str, Any]:
    """What the run of a trigger's event holds (``TriggerContext.emit(params=...)``): the
    ``given`` values (text or JSON values) read and checked like a request's, the defaults
    for the rest, secret ones masked. ``ParamError`` for an unknown or invalid one, and for a
    secret one: a trigger's event is stored as it is, so a secret value never comes with it."""
    for name in given:
        if _secret(job, name):
            raise ParamError(
                name, f"parameter {name!r} is secret: it is given with 'firelink trigger' only, never with an event"
            )
    return stored_params(job, resolve(job, given))


def stored_params(job: JobSpec, values: Mapping[str, Any]) -> dict[str, Any]:
    """What a run's record holds: each value, a secret one as ``***``."""
    return {name: (SECRET_MASK if _secret(job, name) else value) for name, value in values.items()}


def secret_env(job: JobSpec, values: Mapping[str, Any]) -> dict[str, str]:
    """The variables of the secret parameters given with a request: kept in the engine's
    memory with the run's request env (stored masked), like ``--env`` values."""
    return {
        job.params[name].env_name: as_text(value)
        for name, value in values.items()
        if _secret(job, name)
    }


def _secret(job: JobSpec, name: str) -> bool:
    spec = job.params.get(name)
    return spec is not None and spec.secret


def as_text(value: Any) -> str:
    """A value as the command gets it: booleans ``true``/``false``, numbers as JSON writes them."""
    if isinstance(value, str):
        return value
    return json.dumps(value)


def run_params(
    job: JobSpec, stored: Mapping[str, Any] | None, env: Mapping[str, str]
) -> dict[str, Any]:
    """The values an attempt uses: the run's stored values, a masked one from ``env`` (the
    request's values in memory) or else the job's default, then defaults for the rest."""
    stored = stored or {}
    values: dict[str, Any] = {}
    for name, spec in job.params.items():
        value = stored.get(name, spec.default)
        if value == SECRET_MASK and spec.secret:
            value = env.get(spec.env_name, spec.default)
        if value is not None:
            values[name] = value
    return values


def param_env(job: JobSpec, values: Mapping[str, Any]) -> dict[str, str]:
    """``FIRELINK_PARAM_<NAME>`` of each value."""
    return {
        job.params[name].env_name: as_text(value)
        for name, value in values.items()
        if name in job.params
    }


def command_with_params(
    command: tuple[str, ...] | str | None, values: Mapping[str, Any]
) -> tuple[str, ...] | str | None:
    """A list-form command with each ``{params.NAME}`` replaced by the value's text, inside
    its own item: never split into more items, never given to a shell. A string command is
    left as is (validation refuses placeholders there)."""
    if not isinstance(command, tuple) or not values:
        return command
    return tuple(
        PLACEHOLDER.sub(
            lambda m: as_text(values[m.group(1)]) if m.group(1) in values else m.group(0), item
        )
        for item in command
    )
