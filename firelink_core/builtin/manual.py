"""The ``manual`` trigger: runs only when asked (``firelink trigger``, ``Engine.trigger``)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..plugin_api import Trigger, TriggerContext, TriggerEvent, TriggerSpec, hookimpl

__all__ = ["ManualTrigger"]


class ManualTrigger(Trigger):
    """Fires only on request. The engine's ``trigger()`` enqueues its events (with a
    pre-assigned run id); ``fire`` is the same path for code holding the trigger."""

    type_name = "manual"
    description = "Run only when triggered by hand (firelink trigger JOB)."
    config_schema = {"type": "object", "properties": {}, "additionalProperties": False}
    on_request = True

    def __init__(self, spec: TriggerSpec, context: TriggerContext) -> None:
        super().__init__(spec, context)
        self._running = False

    @classmethod
    def request_payload(cls, *, with_upstream: bool) -> dict[str, Any]:
        return {"manual": True, "with_upstream": with_upstream}

    async def start(self) -> None:
        self._running = True
        self.context.set_health("ok")

    async def stop(self) -> None:
        self._running = False

    async def fire(self, env: Mapping[str, str] | None = None) -> TriggerEvent | None:
        """Queue one event for the job with ``env`` as extra variables; ``None`` once stopped."""
        if not self._running:
            return None
        return await self.context.emit({"manual": True}, dict(env or {}))


@hookimpl(trylast=True)
def firelink_register_triggers() -> list[type[Trigger]]:
    return [ManualTrigger]
