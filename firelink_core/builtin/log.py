"""Built-in log component (placeholder: being written)."""

from __future__ import annotations

from ..hookspecs import hookimpl  # noqa: F401
