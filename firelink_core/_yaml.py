"""YAML loading that keeps the (line, column) of every mapping key and value."""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Any

import yaml

__all__ = [
    "MAX_ALIAS_REFERENCES",
    "MAX_DOCUMENT_BYTES",
    "MIN_EXPANSION_BUDGET",
    "Located",
    "YamlProblem",
    "load_located",
    "typed_scalar",
]

MAX_DOCUMENT_BYTES = 32 * 1024 * 1024
"""The largest config read (an honest 20,000-job config is about 5 MB)."""
MIN_EXPANSION_BUDGET = 100_000
"""Values a document may build whatever its size; beyond it, no more values than characters.

Without aliases a document cannot hold more values than characters, so only aliases (a
"billion laughs" bomb) can exceed the budget, and the memory they take stays bounded.
"""
MAX_NESTING = 1000
"""Nested lists and mappings read at most (libyaml's own limit from 0.2.5 on; older ones
have none, and the composer path would recurse)."""
MAX_ALIAS_REFERENCES = 10_000
"""Aliases of lists and mappings expanded (nested ones included) whatever the size; beyond
it, one per 16 characters (aliases of scalars are values, counted by the budget)."""

try:  # libyaml parses several times faster; the pure-Python loader gives the same nodes
    _Base: type = yaml.CSafeLoader
except AttributeError:  # pragma: no cover - PyYAML built without libyaml
    _Base = yaml.SafeLoader

_RESOLVER = yaml.resolver.Resolver()


@functools.lru_cache(maxsize=65536)
def _plain_scalar_tag(value: str) -> str:
    return _RESOLVER.resolve(yaml.ScalarNode, value, (True, False))


_TYPED_TAGS = frozenset({"tag:yaml.org,2002:int", "tag:yaml.org,2002:float", "tag:yaml.org,2002:bool"})


def typed_scalar(text: str) -> Any:
    """``text`` as YAML types an unquoted scalar: a number or a boolean, else the string itself."""
    tag = _plain_scalar_tag(text) if len(text) <= 64 else "tag:yaml.org,2002:str"
    return yaml.safe_load(text) if tag in _TYPED_TAGS else text


class _TooLarge(Exception):
    """Aliases expand the document beyond its budget (see ``MIN_EXPANSION_BUDGET``)."""

    def __init__(self, node: yaml.Node, message: str) -> None:
        super().__init__(message)
        self.node = node
        self.message = message


class _Loader(_Base):  # type: ignore[misc, valid-type]
    """The safe loader with the implicit tag of plain scalars memoized, and a budget.

    Resolving a plain scalar's tag (int? bool? null?) runs a few regexes per value, and a
    config repeats the same keys and values thousands of times. The composer shares one
    node between an anchor and its aliases; the budget bounds what building the data
    from that graph (and merging ``<<:`` keys) may multiply it into.
    """

    def __init__(self, text: str) -> None:
        super().__init__(text)
        self.budget = max(MIN_EXPANSION_BUDGET, len(text))
        self.values_left = self.budget
        self.references = max(MAX_ALIAS_REFERENCES, len(text) // 16)
        self.references_left = self.references

    def resolve(self, kind: Any, value: Any, implicit: Any) -> str:
        if kind is yaml.ScalarNode and implicit[0] and len(value) <= 64:
            return _plain_scalar_tag(value)
        return super().resolve(kind, value, implicit)

    def spend(self, node: yaml.Node, values: int) -> None:
        """Charge ``values`` built from the document; ``_TooLarge`` once the budget is spent."""
        self.values_left -= values
        if self.values_left < 0:
            raise _TooLarge(
                node,
                "its aliases expand this document to more values than it may hold "
                f"(at most {self.budget:,}): an alias bomb?",
            )

    def follow(self, node: yaml.Node) -> None:
        """Count one more alias reference followed."""
        self.references_left -= 1
        if self.references_left < 0:
            raise _TooLarge(
                node, f"its aliases are expanded more than {self.references:,} times: an alias bomb?"
            )

    def flatten_mapping(self, node: Any) -> None:
        super().flatten_mapping(node)
        self.spend(node, len(node.value))


Path = tuple[str | int, ...]
_STR_TAG = "tag:yaml.org,2002:str"


@dataclass(frozen=True)
class YamlProblem:
    """A syntax error or a duplicate key, located (1-based)."""

    line: int | None
    column: int | None
    message: str


@dataclass
class Located:
    """The loaded data and where each part of it was written.

    ``values[path]`` is the position of the value at ``path`` (a tuple of keys and list
    indexes); ``keys[path]`` the position of the mapping key that ends ``path``.
    """

    data: Any
    values: dict[Path, tuple[int, int]] = field(default_factory=dict)
    keys: dict[Path, tuple[int, int]] = field(default_factory=dict)
    problems: list[YamlProblem] = field(default_factory=list)
    plain_templates: set[Path] = field(default_factory=set)
    """Paths of unquoted scalars holding ``${...}``: their value is typed after interpolation."""
    shallow: tuple[str, int] | None = field(default=None, repr=False, compare=False)
    """(text, depth) while only paths up to ``depth`` long are located: the rest is found in
    the text when first asked for (errors), so a valid config never holds every position."""

    def where(self, path: Path, *, key: bool = False) -> tuple[int | None, int | None]:
        """The closest known position of ``path`` (walking up to a parent if needed)."""
        path = tuple(path)
        if self.shallow is not None and len(path) > self.shallow[1]:
            self._locate_all(self.shallow[0])
        if key and path in self.keys:
            return self.keys[path]
        while True:
            if path in self.values:
                return self.values[path]
            if path in self.keys:
                return self.keys[path]
            if not path:
                return (None, None)
            path = path[:-1]

    def _locate_all(self, text: str) -> None:
        full = Located(data=None)
        loader = _Base(text)
        try:
            _build_events(loader, full, None)
        finally:
            loader.dispose()
        self.values, self.keys, self.shallow = full.values, full.keys, None


def _pos(node: yaml.Node) -> tuple[int, int]:
    return (node.start_mark.line + 1, node.start_mark.column + 1)


class _Builder:
    def __init__(self, loader: _Loader, located: Located) -> None:
        self.loader = loader
        self.loc = located
        self.merged: dict[int, int] = {}
        """Per collection node built (``id``): how many of its pairs came from ``<<:`` merges.
        A node met again is an alias; its merge keys were flattened the first time."""

    def build(self, node: yaml.Node, path: Path) -> Any:
        self.loc.values[path] = _pos(node)
        self.loader.spend(node, 1)
        if isinstance(node, (yaml.MappingNode, yaml.SequenceNode)):
            if id(node) in self.merged:
                self.loader.follow(node)
            elif isinstance(node, yaml.SequenceNode):
                self.merged[id(node)] = 0
        if isinstance(node, yaml.MappingNode):
            merged = self.merged.get(id(node))
            if merged is None:
                own = sum(1 for k, _v in node.value if k.tag != "tag:yaml.org,2002:merge")
                # Resolves ``<<: *anchor`` merge keys the way PyYAML's own constructor does:
                # the merged pairs come first and the mapping's own keys override them.
                self.loader.flatten_mapping(node)
                merged = self.merged[id(node)] = len(node.value) - own
            result: dict[Any, Any] = {}
            first_seen: dict[Any, int] = {}
            for position, (key_node, value_node) in enumerate(node.value):
                line, col = _pos(key_node)
                if not isinstance(key_node, yaml.ScalarNode):
                    self.loc.problems.append(YamlProblem(line, col, "a mapping key must be a plain value"))
                    continue
                # Keys are names: ``on:`` stays "on" (YAML 1.1 would make it True), ``1:`` stays "1".
                key = key_node.value
                if position == merged:
                    first_seen.clear()  # own keys override merged ones
                if position >= merged and key in first_seen:
                    self.loc.problems.append(
                        YamlProblem(line, col, f"duplicate key {key!r} (first on line {first_seen[key]})")
                    )
                    continue
                first_seen[key] = line
                self.loc.keys[path + (key,)] = (line, col)
                result[key] = self.build(value_node, path + (key,))
            return result
        if isinstance(node, yaml.SequenceNode):
            return [self.build(item, path + (i,)) for i, item in enumerate(node.value)]
        if node.tag == _STR_TAG:
            if not node.style and "${" in node.value:  # plain: None (Python loader) or "" (libyaml)
                self.loc.plain_templates.add(path)
            return node.value  # the common case, without the constructor's bookkeeping
        return self.loader.construct_object(node, deep=True)


_MERGE_TAG = "tag:yaml.org,2002:merge"
_SHALLOW = 2  # located up front: top-level keys and list items (``("jobs", 3)``, a job's line)
_SEQ = object()  # a frame's third slot: a sequence, or a mapping waiting for its next key
_KEY = object()


class _Unusual(Exception):
    """The document needs the composer (anchors, tags, merge keys, duplicates, errors)."""


class _TooDeep(Exception):
    def __init__(self, line: int, column: int) -> None:
        super().__init__(line, column)
        self.line, self.column = line, column


_TOO_DEEP = f"exceeded maximum nesting depth ({MAX_NESTING} nested lists and mappings)"


def _scalar(loader: Any, event: Any, path: Path, templates: set[Path], strings: dict[str, str]) -> Any:
    if event.tag is not None:
        raise _Unusual
    value = event.value
    if event.implicit[0] and len(value) <= 64:
        tag = _plain_scalar_tag(value)
    else:
        tag = _RESOLVER.resolve(yaml.ScalarNode, value, event.implicit)
    if tag == _STR_TAG:
        if not event.style and "${" in value:
            templates.add(path)
        # One object per distinct short string: a config repeats the same values thousands of times.
        return strings.setdefault(value, value) if len(value) <= 64 else value
    node = yaml.ScalarNode(tag, value, event.start_mark, event.end_mark, event.style)
    return loader.construct_object(node, deep=True)


def _build_events(loader: Any, located: Located, depth: int | None) -> None:
    """Build the data and its positions straight from libyaml's events.

    The same result as composing nodes and walking them, for the common document, without
    the node tree (a third of the time and most of the peak memory for a large config).
    Only paths up to ``depth`` long are located (all when None).
    """
    get = loader.get_event
    if type(get()) is not yaml.StreamStartEvent or type(get()) is not yaml.DocumentStartEvent:
        raise _Unusual
    values, keys, templates = located.values, located.keys, located.plain_templates
    stack: list[list[Any]] = []  # [container, path, _SEQ | _KEY | pending key]
    strings: dict[str, str] = {}
    while True:
        event = get()
        kind = type(event)
        top = stack[-1] if stack else None
        if top is not None:
            if kind is yaml.MappingEndEvent or kind is yaml.SequenceEndEvent:
                stack.pop()
                if stack:
                    continue
                data = top[0]
                break
            slot = top[2]
            if slot is _KEY:
                if kind is not yaml.ScalarEvent or event.anchor is not None or event.tag is not None:
                    raise _Unusual
                key = strings.setdefault(event.value, event.value)
                if key in top[0] or (event.implicit[0] and _plain_scalar_tag(key) == _MERGE_TAG):
                    raise _Unusual
                if depth is None or len(top[1]) < depth:
                    mark = event.start_mark
                    keys[top[1] + (key,)] = (mark.line + 1, mark.column + 1)
                top[2] = key
                continue
            path = top[1] + ((len(top[0]),) if slot is _SEQ else (slot,))
        else:
            path = ()
        if kind is yaml.AliasEvent or event.anchor is not None:
            raise _Unusual
        if depth is None or len(path) <= depth:
            mark = event.start_mark
            values[path] = (mark.line + 1, mark.column + 1)
        if kind is yaml.ScalarEvent:
            value: Any = _scalar(loader, event, path, templates, strings)
            frame = None
        elif kind is yaml.MappingStartEvent or kind is yaml.SequenceStartEvent:
            if event.tag is not None:
                raise _Unusual
            value = {} if kind is yaml.MappingStartEvent else []
            frame = [value, path, _KEY if kind is yaml.MappingStartEvent else _SEQ]
        else:
            raise _Unusual
        if top is None:
            if frame is None:
                data = value
                break
        elif top[2] is _SEQ:
            top[0].append(value)
        else:
            top[0][top[2]] = value
            top[2] = _KEY
        if frame is not None:
            if len(stack) >= MAX_NESTING:
                raise _TooDeep(event.start_mark.line + 1, event.start_mark.column + 1)
            stack.append(frame)
    if type(get()) is not yaml.DocumentEndEvent or type(get()) is not yaml.StreamEndEvent:
        raise _Unusual
    located.data = data


def _alias_site(located: Located, node: yaml.Node) -> tuple[int, int]:
    """Where to report an alias bomb: the top-level key whose value expands (an alias's
    node is its anchor's, defined elsewhere), else the anchor."""
    top = [located.keys[path] for path in located.keys if len(path) == 1]
    return top[-1] if top else _pos(node)


def load_located(text: str) -> Located:
    """Parse one YAML document; syntax errors and duplicate keys land in ``problems``.

    A document longer than ``MAX_DOCUMENT_BYTES``, or whose aliases expand beyond its
    budget (``MIN_EXPANSION_BUDGET``, ``MAX_ALIAS_REFERENCES``), is a problem too, found
    before it takes more memory or time than its size warrants.
    """
    # A character is at most 4 bytes: only a text that may be too large is encoded to measure it.
    size = len(text.encode("utf-8", "surrogatepass")) if len(text) * 4 > MAX_DOCUMENT_BYTES else len(text)
    if size > MAX_DOCUMENT_BYTES:
        located = Located(data=None)
        message = f"the config is {size / 2**20:.1f} MiB; firelink reads at most {MAX_DOCUMENT_BYTES // 2**20} MiB"
        located.problems.append(YamlProblem(None, None, message))
        return located
    if _Base is not yaml.SafeLoader:
        fast = _load_events(text, _SHALLOW)
        if fast is not None:
            return fast
    return _load_composed(text)


def _load_events(text: str, depth: int | None) -> Located | None:
    """The fast path: libyaml's events straight to data, or ``None`` when the document needs
    the composer (what is unusual, or an error the composer words exactly)."""
    located = Located(data=None)
    loader = _Base(text)
    try:
        _build_events(loader, located, depth)
    except (_Unusual, yaml.YAMLError):
        return None
    except _TooDeep as exc:
        return Located(data=None, problems=[YamlProblem(exc.line, exc.column, _TOO_DEEP)])
    finally:
        loader.dispose()
    if depth is not None:
        located.shallow = (text, depth)
    return located


def _load_composed(text: str) -> Located:
    """The general path: the composer's node graph, walked with a budget."""
    located = Located(data=None)
    loader = _Loader(text)
    try:
        node = loader.get_single_node()
        if node is not None:
            located.data = _Builder(loader, located).build(node, ())
    except _TooLarge as exc:
        located.problems.append(YamlProblem(*_alias_site(located, exc.node), exc.message))
        located.data = None
        located.values.clear()
        located.keys.clear()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        message = exc.problem or str(exc)
        if exc.context and exc.problem:
            message = f"{exc.problem} ({exc.context})"
        located.problems.append(
            YamlProblem(mark.line + 1 if mark else None, mark.column + 1 if mark else None, message)
        )
        located.data = None
    except yaml.YAMLError as exc:
        located.problems.append(YamlProblem(None, None, str(exc)))
        located.data = None
    except RecursionError:  # a libyaml without a nesting limit, or the pure-Python parser
        located.problems.append(YamlProblem(None, None, _TOO_DEEP))
        located.data = None
    finally:
        loader.dispose()
    return located
