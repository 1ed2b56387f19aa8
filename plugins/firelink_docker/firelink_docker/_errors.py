"""Attempt failures, and the one-line reasons read from Docker errors (no docker import here)."""

from __future__ import annotations

__all__ = ["AttemptFailure", "describe"]


class AttemptFailure(Exception):
    """A failure of the attempt (not of the daemon): recorded as the attempt's ``error``."""


def describe(exc: BaseException) -> str:
    """A one-line reason from a docker SDK or connection error."""
    explanation = getattr(exc, "explanation", None)
    text = str(explanation or exc).strip() or type(exc).__name__
    return text.splitlines()[0]
