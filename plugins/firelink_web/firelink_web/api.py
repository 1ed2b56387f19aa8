"""The JSON API under ``/api/v1`` (being built)."""

from __future__ import annotations

from aiohttp import web


def setup(app: web.Application) -> None:
    """Add the ``/api/v1`` routes to ``app``."""
