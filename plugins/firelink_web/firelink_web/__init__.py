"""firelink-web: an HTTP API, a live dashboard and a signed webhook trigger, served by the
firelink daemon in its own event loop (``firelink run --http 127.0.0.1:8080`` or
``http: {listen: ...}`` in the config)."""

from __future__ import annotations

__all__: list[str] = []
