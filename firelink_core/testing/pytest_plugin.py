"""pytest fixtures for plugin authors (registered under ``pytest11``; inert unless requested)."""

from __future__ import annotations
