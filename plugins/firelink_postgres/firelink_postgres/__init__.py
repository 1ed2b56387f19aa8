"""firelink-postgres: keep firelink's state in PostgreSQL (``storage: {type: postgres, dsn: ...}``)."""

from __future__ import annotations

from .storage import PostgresStorage

__all__ = ["PostgresStorage"]
