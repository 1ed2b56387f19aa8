"""The firelink-web service: an aiohttp application run in the daemon's event loop."""

from __future__ import annotations

from aiohttp import web

from . import api, hooks, pages
from .context import CONTEXT, WebContext

__all__ = ["CONTEXT", "make_app"]


def make_app(context: WebContext) -> web.Application:
    """Build the application: the shared context at ``app[CONTEXT]``, then every part's routes."""
    app = web.Application()
    app[CONTEXT] = context
    api.setup(app)
    pages.setup(app)
    hooks.setup(app)
    return app
