"""``POST /hooks/{job}``: the webhook trigger's endpoint (a stub until it is built)."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Add the webhook routes to ``app`` (the shared context is ``app[CONTEXT]``)."""
