"""The event queue: events triggers emitted, checked and built here, stored by the engine,
then held in memory until dispatch."""

from __future__ import annotations

import json
from collections import deque
from collections.abc import Mapping
from typing import Any

from ..abc import Clock, Storage
from ..events import TriggerEvent
from ..model import TriggerSpec
from .ids import new_id
from .requests import REQUESTED

__all__ = ["EventQueue"]


class EventQueue:
    """Stored events waiting for dispatch, oldest first."""

    def __init__(self, clock: Clock) -> None:
        self.clock = clock
        self._events: deque[TriggerEvent] = deque()

    def __len__(self) -> int:
        return len(self._events)

    def __bool__(self) -> bool:
        return bool(self._events)

    def append(self, event: TriggerEvent) -> None:
        """Queue an event already stored."""
        self._events.append(event)

    async def put(self, storage: Storage, event: TriggerEvent, *, last_fire: float | None = None) -> bool:
        """Store the event, then queue it; False if storage already had it (its dedupe key).
        ``last_fire``: a schedule's fire, stored with its last fire time (one transaction
        where the storage can)."""
        if last_fire is not None:
            added = await storage.add_fire(event, last_fire)
        else:
            added = await storage.add_event(event)
        if added:
            self._events.append(event)
        return added

    def popleft(self) -> TriggerEvent:
        return self._events.popleft()

    def build(
        self,
        spec: TriggerSpec,
        payload: Mapping[str, Any] | None,
        env: Mapping[str, str] | None,
        *,
        dedupe_key: str | None = None,
        scheduled_for: float | None = None,
        requested: bool = False,
        run_id: str | None = None,
        options: Mapping[str, Any] | None = None,
        key: str | None = None,
    ) -> TriggerEvent:
        """The event a trigger emits (TypeError for a payload that is not JSON or an env value
        that is not a string: a trigger's bug, reported to the trigger)."""
        payload = dict(payload or {})
        env = dict(env or {})
        try:
            json.dumps(payload)
        except (TypeError, ValueError) as exc:
            raise TypeError(f"trigger {spec.key}: event payload is not JSON-serialisable: {exc}") from None
        for name, value in env.items():
            if not isinstance(value, str):
                raise TypeError(
                    f"trigger {spec.key}: env value of {name} must be a string, got {type(value).__name__}"
                )
        event_options = dict(options or {})
        if requested:
            event_options[REQUESTED] = True
        return TriggerEvent(
            id=new_id(),
            job=spec.job,
            trigger=spec.type,
            trigger_key=key or spec.key,
            payload=payload,
            env=env,
            created_at=self.clock.now(),
            scheduled_for=scheduled_for,
            dedupe_key=dedupe_key,
            run_id=run_id,
            options=event_options,
        )
