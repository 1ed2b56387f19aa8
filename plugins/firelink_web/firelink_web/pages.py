"""The dashboard's HTML pages (owned by the dashboard work; a stub until then)."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Add the dashboard's routes to ``app`` (the shared context is ``app[CONTEXT]``)."""
