"""The object the API, the pages and the webhook share: calls into the engine (being built)."""

from __future__ import annotations

from typing import Any

from aiohttp import web


class WebContext:
    """What every handler reaches through ``request.app[CONTEXT]``."""

    def __init__(self, engine: Any) -> None:
        self.engine = engine


# The key of the shared context in the aiohttp application (``request.app[CONTEXT]``).
# It lives here, not in server.py, so pages.py, api.py and hooks.py import it without a cycle.
CONTEXT: web.AppKey[WebContext] = web.AppKey("firelink_web_context", WebContext)
