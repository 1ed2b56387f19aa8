"""Hook implementations of firelink-web (being built)."""

from __future__ import annotations

from firelink_core.plugin_api import Trigger, hookimpl

from .trigger import WebhookTrigger


@hookimpl
def firelink_register_triggers() -> list[type[Trigger]]:
    """The ``webhook`` trigger (served by ``POST /hooks/{job}``)."""
    return [WebhookTrigger]
