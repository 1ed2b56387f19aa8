"""Words for messages, and jsonschema's errors turned into one clear located message each."""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from ..durations import DURATION_PATTERN, SIZE_PATTERN
from .issues import Checks, PathT
from .validators import CORE_DEFS, Validator

if TYPE_CHECKING:
    import jsonschema

__all__ = ["expected", "is_placeholder", "schema_issues", "shortened", "suggest", "type_name"]


def suggest(word: str, choices: Iterable[str]) -> str:
    """`` (did you mean 'x'?)`` for the closest choice, or nothing."""
    close = difflib.get_close_matches(word, sorted(set(choices)), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def shortened(text: str, keep: int = 40) -> str:
    """``text`` quoted, cut in the middle when long (a 300-character name fills a terminal)."""
    return repr(text) if len(text) <= keep else repr(text[: keep // 2]) + "..." + repr(text[-keep // 2 :])


def type_name(value: Any) -> str:
    """What a YAML value is, in words: ``a string``, ``a mapping`` ..."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "a mapping"
    return type(value).__name__


_TYPE_WORDS = {
    "string": "a string",
    "integer": "an integer",
    "number": "a number",
    "boolean": "a boolean (true or false)",
    "array": "a list",
    "object": "a mapping",
    "null": "null",
}


def expected(types: Iterable[str]) -> str:
    """JSON Schema types in words: ``a string or a list``."""
    words = [_TYPE_WORDS.get(t, t) for t in dict.fromkeys(types)]
    return " or ".join(words) if len(words) < 3 else ", ".join(words[:-1]) + " or " + words[-1]


def is_placeholder(value: Any) -> bool:
    """A value holding ``${VAR}``, only known when the daemon loads the config."""
    return isinstance(value, str) and "${" in value


def schema_issues(
    checks: Checks, validator: Validator, instance: Any, base: PathT, *, job: str | None, where: str
) -> None:
    """Every error of ``instance`` against ``validator``, as issues under ``base``."""
    for error in validator.iter_errors(instance):
        _map_error(checks, error, base, job=job, where=where)


def _map_error(checks: Checks, error: jsonschema.ValidationError, base: PathT, *, job: str | None, where: str) -> None:
    path = base + tuple(error.absolute_path)
    inst = error.instance
    kind = error.validator
    value = error.validator_value
    if not checks.interpolated and is_placeholder(inst) and kind not in ("required", "additionalProperties"):
        return  # ``${VAR}`` is only known when the daemon loads the config
    if kind in ("anyOf", "oneOf"):
        _map_any_of(checks, error, base, job=job, where=where)
        return
    names = [p for p in path if isinstance(p, str)]
    if kind == "required":
        for name in value:
            if isinstance(inst, dict) and name not in inst:
                owner = f" in {where}" if not error.absolute_path else f" in {names[-1]!r}"
                checks.add(path, f"missing required key {name!r}{owner}", "schema", job=job)
        return
    if kind == "additionalProperties" and isinstance(inst, dict):
        allowed = set(error.schema.get("properties", {}))
        owner = names[-1] if names else where
        for name in inst:
            if name not in allowed:
                checks.add(
                    path + (name,),
                    f"unknown key {name!r} in {owner!r}{suggest(str(name), allowed)}",
                    "unknown-key",
                    job=job,
                    key=True,
                )
        return
    if kind == "type":
        types = [value] if isinstance(value, str) else list(value)
        message = f"expected {expected(types)}, got {type_name(inst)}"
        if isinstance(inst, bool) and "string" in types:
            message += " (YAML reads unquoted yes/no/on/off/true/false as booleans: quote the value)"
    elif kind == "enum":
        options = ", ".join(repr(v) for v in value)
        message = f"expected one of {options}, got {inst!r}{suggest(str(inst), [str(v) for v in value])}"
    elif kind == "const":
        message = f"expected {value!r}, got {inst!r}"
    elif kind == "pattern":
        if value == DURATION_PATTERN:
            message = f"expected a duration like 30s, 5m or 1h30m, got {inst!r}"
        elif value == SIZE_PATTERN:
            message = f"expected a size like 10MB or 512KiB, got {inst!r}"
        elif value == CORE_DEFS["job_name"]["pattern"]:
            message = (
                f"invalid job name {inst!r}: use letters, digits, '_', '.' and '-', "
                "starting with a letter or digit"
            )
        else:
            message = f"{inst!r} does not match the pattern {value!r}"
    elif kind in ("minimum", "exclusiveMinimum"):
        message = f"expected at least {value}, got {inst!r}" if kind == "minimum" else f"expected more than {value}, got {inst!r}"
    elif kind in ("maximum", "exclusiveMaximum"):
        message = f"expected at most {value}, got {inst!r}" if kind == "maximum" else f"expected less than {value}, got {inst!r}"
    elif kind == "maxLength" and error.schema.get("pattern") == CORE_DEFS["job_name"]["pattern"]:
        message = (
            f"invalid job name {shortened(inst)}: {len(inst)} characters, at most {value} "
            "(the name is its log folder's name)"
        )
    elif kind in ("minItems", "minLength") and value == 1:
        message = "must not be empty"
    else:
        message = error.message
    checks.add(path, message, "schema", job=job)


def _map_any_of(checks: Checks, error: jsonschema.ValidationError, base: PathT, *, job: str | None, where: str) -> None:
    """One message for a failed ``anyOf``: the errors of the branch of the right type, else the types expected."""
    by_branch: dict[int, list[jsonschema.ValidationError]] = {}
    for sub in error.context or ():
        by_branch.setdefault(sub.schema_path[0], []).append(sub)  # type: ignore[arg-type]
    wrong_type: set[int] = set()
    types: list[str] = []
    for index, subs in by_branch.items():
        for sub in subs:
            if sub.validator in ("type", "enum") and not sub.relative_path:
                wrong_type.add(index)
                if sub.validator == "type":
                    v = sub.validator_value
                    types.extend([v] if isinstance(v, str) else v)
                else:
                    types.append("one of " + ", ".join(repr(x) for x in sub.validator_value))
    fitting = [i for i in by_branch if i not in wrong_type]
    if len(fitting) == 1:
        for sub in by_branch[fitting[0]]:
            _map_error(checks, sub, base, job=job, where=where)
        return
    path = base + tuple(error.absolute_path)
    checks.add(path, f"expected {expected(types)}, got {type_name(error.instance)}", "schema", job=job)
