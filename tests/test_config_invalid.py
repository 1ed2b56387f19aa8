"""The invalid-config corpus: each file in tests/invalid/ states the problems it must produce.

A file lists ``# expect: LINE:COL: text`` comments, one per problem (``-`` when a problem
has no location); ``text`` must appear in the message, and the file must produce exactly
these problems: one clear message each, no cascades.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml

from firelink_core.config import ConfigError, validate_text
from firelink_core.plugins import Plugins
from firelink_core.testing import fresh_plugins

CORPUS = Path(__file__).parent / "invalid"
_EXPECT = re.compile(r"^# expect: (-|(\d+):(\d+)): (.*)$")
_ALSO = re.compile(r"^# expect-also: (.*)$")


def _expectations(text: str) -> list[tuple[int | None, int | None, list[str]]]:
    out: list[tuple[int | None, int | None, list[str]]] = []
    for line in text.splitlines():
        if m := _EXPECT.match(line):
            where = (None, None) if m.group(1) == "-" else (int(m.group(2)), int(m.group(3)))
            out.append((*where, [m.group(4)]))
        elif m := _ALSO.match(line):
            out[-1][2].append(m.group(1))
    return out


def _rendered(error: ConfigError) -> str:
    job = f"job {error.job!r}: " if error.job else ""
    return job + error.message


@pytest.fixture(scope="module")
def plugins() -> Plugins:
    return fresh_plugins()


def _config_plugins(text: str) -> list[str]:
    """The file's own ``plugins:`` (import paths), loaded as the CLI would load them."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError:
        return []
    return list(data.get("plugins", [])) if isinstance(data, dict) else []


def test_corpus_is_big_enough() -> None:
    assert len(list(CORPUS.glob("*.yaml"))) >= 25


@pytest.mark.parametrize("path", sorted(CORPUS.glob("*.yaml")), ids=lambda p: p.stem)
def test_invalid_config(path: Path, plugins: Plugins) -> None:
    text = path.read_text()
    expected = _expectations(text)
    assert expected, f"{path.name} has no '# expect:' comment"
    listed = _config_plugins(text)
    errors = validate_text(text, path.name, plugins=fresh_plugins(*listed) if listed else plugins)
    got = sorted(((e.line, e.column), _rendered(e)) for e in errors)
    assert len(errors) == len(expected), "\n".join(str(e) for e in errors)
    for line, column, texts in expected:
        matches = [m for (where, m) in got if where == (line, column) and all(t in m for t in texts)]
        assert matches, f"no problem at {line}:{column} containing {texts}; got:\n" + "\n".join(
            str(e) for e in errors
        )
    for error in errors:
        assert error.file == path.name
