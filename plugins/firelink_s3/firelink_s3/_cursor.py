"""The compact polling cursors: which listed objects are new, and what to remember (pure logic)."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

__all__ = ["S3Object", "ListCursor", "OrderedCursor", "cursor_from_json"]


@dataclass(frozen=True)
class S3Object:
    """One listed object, as the trigger needs it."""

    key: str
    etag: str
    """Without the surrounding quotes S3 puts on it."""
    size: int
    last_modified: float
    """Epoch seconds, as stamped by the S3 server (never the local clock)."""

    @property
    def dedupe_key(self) -> str:
        # One identity per stored version: a re-listing (restart, retried poll) maps to the
        # same key, while content A -> B -> A gets three distinct keys.
        return f"{self.key}@{self.etag}@{self.last_modified:.3f}"


@dataclass
class ListCursor:
    """Plain polling: a LastModified horizon plus the keys modified at or after it.

    The rule, evaluated on each complete listing, all times from the S3 server:

    * ``horizon`` = the newest LastModified ever listed minus ``lookback`` (never decreases).
    * An object whose LastModified is before the horizon is old: skipped without a look.
    * An object at or after the horizon fires when its key is not in ``recent`` or its
      ETag differs from the one recorded there.
    * ``recent`` then keeps exactly the wanted keys listed at or after the new horizon.

    So the cursor holds only the keys changed within ``lookback`` of the newest change,
    whatever the bucket's size. Objects with the same LastModified second are all kept
    (``>=``), and an overwrite gets a new LastModified that lands after the horizon.
    """

    horizon: float | None = None
    recent: dict[str, list[Any]] = field(default_factory=dict)
    """``key -> [etag, last_modified]``."""

    def scan(
        self,
        objects: Iterable[S3Object],
        *,
        lookback: float,
        wanted: Callable[[str], bool] | None = None,
        newest: float | None = None,
    ) -> tuple[list[S3Object], ListCursor]:
        """The objects to fire (oldest first) and the cursor to store once they are emitted.

        ``objects`` may omit what is before the horizon if ``newest`` (the newest
        LastModified of the whole listing) is passed: a large listing is then never held.
        """
        candidates: list[S3Object] = []
        for obj in objects:
            if newest is None or obj.last_modified > newest:
                newest = obj.last_modified
            if self.horizon is not None and obj.last_modified < self.horizon:
                continue
            if wanted is not None and not wanted(obj.key):
                continue
            candidates.append(obj)
        horizon = self.horizon
        if newest is not None:
            proposed = newest - lookback
            horizon = proposed if horizon is None else max(horizon, proposed)
        fire = [
            obj for obj in candidates
            if obj.key not in self.recent or self.recent[obj.key][0] != obj.etag
        ]
        fire.sort(key=lambda o: (o.last_modified, o.key))
        recent = {
            obj.key: [obj.etag, obj.last_modified]
            for obj in candidates
            if horizon is None or obj.last_modified >= horizon
        }
        return fire, ListCursor(horizon=horizon, recent=recent)

    def to_json(self) -> dict[str, Any]:
        return {"mode": "list", "horizon": self.horizon, "recent": self.recent}


@dataclass
class OrderedCursor:
    """``ordered_keys``: the greatest key seen; the next listing starts after it."""

    after: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {"mode": "ordered", "after": self.after}


def cursor_from_json(value: Any, *, ordered: bool) -> ListCursor | OrderedCursor | None:
    """The stored cursor of this mode, or ``None`` (never stored, or stored by the other mode)."""
    if not isinstance(value, dict):
        return None
    if ordered and value.get("mode") == "ordered":
        after = value.get("after")
        return OrderedCursor(after=after if isinstance(after, str) else None)
    if not ordered and value.get("mode") == "list":
        recent = value.get("recent")
        horizon = value.get("horizon")
        return ListCursor(
            horizon=float(horizon) if isinstance(horizon, (int, float)) else None,
            recent=dict(recent) if isinstance(recent, dict) else {},
        )
    return None
