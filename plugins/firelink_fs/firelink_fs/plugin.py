"""Hook implementations of firelink-fs (placeholder: being written)."""

from __future__ import annotations

from firelink_core import hookimpl  # noqa: F401
