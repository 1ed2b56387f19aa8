"""Hook implementations of firelink-web: the ``http:`` service and the ``webhook`` trigger."""

from __future__ import annotations

from firelink_core.plugin_api import Service, Trigger, hookimpl

from .server import WebService
from .trigger import WebhookTrigger


@hookimpl
def firelink_register_triggers() -> list[type[Trigger]]:
    """The ``webhook`` trigger (served by ``POST /hooks/{job}``)."""
    return [WebhookTrigger]


@hookimpl
def firelink_register_services() -> list[type[Service]]:
    """The HTTP server (``http:`` in the config, or ``firelink run --http``)."""
    return [WebService]
