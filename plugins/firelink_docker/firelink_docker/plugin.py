"""Hook implementations of firelink-docker (placeholder: being written)."""

from __future__ import annotations

from firelink_core import hookimpl  # noqa: F401
