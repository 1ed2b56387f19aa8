"""The two YAML loading paths of ``_yaml`` agree: libyaml's event builder and the composer.

Documents are generated (values of every scalar type, nested mappings and lists, block and
flow styles, quoted (where needed) and plain scalars, ``${VAR}`` templates) and loaded both ways with
every position located; the data, the positions of values and keys, and the plain
templates must be the same. A shallow fast load must answer ``where`` as the composer does.
"""

from __future__ import annotations

import datetime
import math
from typing import Any

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from firelink_core import _yaml
from firelink_core._yaml import Located

pytestmark = pytest.mark.skipif(_yaml._Base is yaml.SafeLoader, reason="PyYAML without libyaml has one path")

_WORDS = ["on", "off", "yes", "no", "null", "~", "true", "1", "0x1f", "1e3", "1_000", "2026-01-02", "a: b", "- x", "#c"]

keys = st.one_of(
    st.sampled_from(["name", "jobs", "env", "on", "1", "x y", "schedule", "command"]),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs", "Cc")), min_size=1, max_size=12),
)
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=False),
    st.sampled_from(_WORDS),
    st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=30),
    st.builds(lambda v: f"${{{v}}}", st.sampled_from(["HOME", "X", "A_B"])),
    st.builds(lambda v: f"pre ${{{v}}} post", st.sampled_from(["HOME", "X"])),
    st.dates(min_value=datetime.date(1970, 1, 1), max_value=datetime.date(2100, 1, 1)),
)
values = st.recursive(
    scalars,
    lambda inner: st.one_of(st.lists(inner, max_size=5), st.dictionaries(keys, inner, max_size=5)),
    max_leaves=40,
)
documents = st.dictionaries(keys, values, min_size=1, max_size=6) | st.lists(values, min_size=1, max_size=6)
dump_options = st.fixed_dictionaries(
    {
        "default_flow_style": st.sampled_from([False, True, None]),
        "indent": st.sampled_from([2, 4]),
        "width": st.sampled_from([20, 80, 1000]),
        "allow_unicode": st.booleans(),
        "explicit_start": st.booleans(),
        "sort_keys": st.booleans(),
    }
)


def _same(a: Any, b: Any) -> bool:
    """Equal values, with the types kept apart (``1 == True`` and ``1.0 == 1`` in Python)."""
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b, strict=True))
    if isinstance(a, float) and math.isnan(a):
        return math.isnan(b)
    return a == b


def _both(text: str) -> tuple[Located, Located]:
    fast = _yaml._load_events(text, None)
    assert fast is not None, "the event builder refused an ordinary document:\n" + text
    return fast, _yaml._load_composed(text)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents, dump_options)
def test_event_builder_and_composer_agree(document: Any, options: dict[str, Any]) -> None:
    text = yaml.safe_dump(document, **options)
    fast, composed = _both(text)
    assert composed.problems == [] and fast.problems == []
    assert _same(fast.data, composed.data), text
    assert fast.values == composed.values, text
    assert fast.keys == composed.keys, text
    assert fast.plain_templates == composed.plain_templates, text


@settings(max_examples=100, deadline=None)
@given(documents, dump_options)
def test_a_shallow_fast_load_locates_every_path_as_the_composer_does(document: Any, options: dict[str, Any]) -> None:
    text = yaml.safe_dump(document, **options)
    shallow = _yaml.load_located(text)
    composed = _yaml._load_composed(text)
    assert shallow.shallow is not None  # it took the fast path
    assert _same(shallow.data, composed.data)
    for path in composed.values:
        assert shallow.where(path) == composed.where(path), (path, text)
    for path in composed.keys:
        assert shallow.where(path, key=True) == composed.where(path, key=True), (path, text)


@given(st.sampled_from(["a: &x 1\nb: *x\n", "a: !!str 1\n", "a: 1\na: 2\n", "<<: {a: 1}\n", "a: [1,\n"]))
def test_what_is_unusual_goes_to_the_composer(text: str) -> None:
    assert _yaml._load_events(text, None) is None
