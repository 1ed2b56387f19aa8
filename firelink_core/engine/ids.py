"""Ids of events, runs and daemons: random uuid4 hex, and ids derived from another id."""

from __future__ import annotations

import os
import uuid

__all__ = ["derived_id", "new_id"]


def new_id() -> str:
    """``uuid.uuid4().hex`` without building a ``UUID`` (one per event and per run)."""
    raw = bytearray(os.urandom(16))
    raw[6] = (raw[6] & 0x0F) | 0x40  # version 4
    raw[8] = (raw[8] & 0x3F) | 0x80  # RFC 4122 variant
    return raw.hex()


def derived_id(base: str, what: str) -> str:
    """A run id derived from another, so redoing a step after a crash finds the same run."""
    return uuid.uuid5(uuid.UUID(hex=base) if len(base) == 32 else uuid.NAMESPACE_OID, f"{base}/{what}").hex
