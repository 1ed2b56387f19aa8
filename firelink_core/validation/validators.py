"""Schema validators: a compiled fastjsonschema check, with jsonschema's located errors behind it."""

from __future__ import annotations

import functools
import json
from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING, Any

import fastjsonschema

from .._config_schema import core_schema

if TYPE_CHECKING:
    import jsonschema

__all__ = ["CORE", "CORE_DEFS", "Validator", "core_def_validator", "core_prop_validator", "validator"]

# Keywords meaning the same in draft-07 (fastjsonschema) and draft 2020-12 (jsonschema).
_FAST_SAFE = frozenset(
    """type properties required additionalProperties items enum const pattern minimum maximum
    exclusiveMinimum exclusiveMaximum minLength maxLength minItems maxItems uniqueItems anyOf
    oneOf allOf not description default title examples propertyNames minProperties
    maxProperties""".split()
)


_ANNOTATIONS = frozenset({"description", "default", "title", "examples"})


def _deref(schema: Any, defs: Mapping[str, Any], seen: tuple[str, ...] = ()) -> Any:
    """Inline ``#/$defs/..`` references, so draft-07 (which ignores a ``$ref``'s siblings)
    checks everything; a recursive reference stays a ``$ref`` (and the schema takes the slow path)."""
    if isinstance(schema, list):
        return [_deref(s, defs, seen) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _deref(v, defs, seen) for k, v in schema.items() if k not in ("$ref", "$defs")}
    ref = schema.get("$ref")
    name = ref[8:] if isinstance(ref, str) and ref.startswith("#/$defs/") else None
    if name is not None and name in defs and name not in seen:
        target = _deref(defs[name], defs, seen + (name,))
        constraints = {k: v for k, v in out.items() if k not in _ANNOTATIONS}
        if constraints:
            out = {"allOf": [target, constraints], **{k: v for k, v in out.items() if k in _ANNOTATIONS}}
        else:
            out = {**target, **out}
    elif ref is not None:
        out["$ref"] = ref
    return out


def _fast_safe(schema: Any, in_properties: bool = False) -> bool:
    if isinstance(schema, list):
        return all(_fast_safe(s) for s in schema)
    if not isinstance(schema, dict):
        return True
    for key, value in schema.items():
        if in_properties:
            if not _fast_safe(value):
                return False
        elif key not in _FAST_SAFE or (key == "items" and not isinstance(value, dict)):
            return False
        elif key in ("enum", "const", "default", "examples", "required", "description", "title"):
            continue
        elif not _fast_safe(value, in_properties=key == "properties"):
            return False
    return True


class Validator:
    """jsonschema's complete, located errors, behind a compiled fastjsonschema check.

    Almost every value of a real config is valid, and fastjsonschema decides that an order
    of magnitude faster (``firelink validate`` on 10,000 jobs stays well under a second);
    only an invalid value pays for jsonschema's full error report.
    """

    def __init__(self, schema: Mapping[str, Any]) -> None:
        self._schema = schema
        self._full: jsonschema.Draft202012Validator | None = None
        flat = _deref(schema, schema.get("$defs", {}))
        self.fast: Callable[[Any], Any] | None = None
        if _fast_safe(flat):
            try:
                self.fast = fastjsonschema.compile(flat, use_formats=False, use_default=False, detailed_exceptions=False)
            except Exception:  # noqa: BLE001 - anything it cannot compile goes the slow way
                self.fast = None

    def iter_errors(self, instance: Any) -> Iterable[jsonschema.ValidationError]:
        if self.fast is not None:
            try:
                self.fast(instance)
                return ()
            except fastjsonschema.JsonSchemaValueException:
                pass
        return self.full.iter_errors(instance)

    @property
    def full(self) -> jsonschema.Draft202012Validator:
        if self._full is None:
            # Imported on the first invalid value: jsonschema (with referencing and rpds)
            # costs about 9 MB and 30 ms that a valid config never needs.
            import jsonschema

            self._full = jsonschema.Draft202012Validator(self._schema)
        return self._full


@functools.lru_cache(maxsize=256)
def _validator_for(schema_json: str) -> Validator:
    return Validator(json.loads(schema_json))


def validator(schema: Mapping[str, Any]) -> Validator:
    """The validator of ``schema``, shared by every equal schema."""
    return _validator_for(json.dumps(schema, sort_keys=True, default=str))


CORE = core_schema()
CORE_DEFS = CORE["$defs"]
# Trigger items are checked one by one against their component (unknown keys computed there),
# so the job's own validator only needs their shape.
CORE_DEFS["trigger_item"] = {"type": "object", "properties": {"trigger": {"type": "string"}}, "required": ["trigger"]}


def core_def_validator(name: str) -> Validator:
    """The validator of one ``$defs`` entry of the core schema."""
    return validator({"$defs": CORE_DEFS, "$ref": f"#/$defs/{name}"})


def core_prop_validator(props: Mapping[str, Any], required: tuple[str, ...] = ()) -> Validator:
    """The validator of a mapping holding some of the core schema's properties."""
    return validator({"$defs": CORE_DEFS, "type": "object", "properties": dict(props), "required": list(required)})
