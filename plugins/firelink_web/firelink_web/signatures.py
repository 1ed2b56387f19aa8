"""HMAC-SHA256 signatures of webhook bodies: GitHub's ``X-Hub-Signature-256`` and firelink's
own ``X-Firelink-Signature`` (with a timestamp, so a replay older than five minutes is refused).

Every comparison is made in constant time (``hmac.compare_digest``). Nothing here logs or
returns the secret or the expected signature.
"""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import Mapping
from dataclasses import dataclass

__all__ = [
    "FIRELINK_HEADER",
    "GITHUB_HEADER",
    "MAX_AGE",
    "SignatureError",
    "Verified",
    "sign_firelink",
    "sign_github",
    "verify",
]

GITHUB_HEADER = "X-Hub-Signature-256"
"""GitHub's header: ``sha256=<hex of HMAC-SHA256(secret, body)>``."""
FIRELINK_HEADER = "X-Firelink-Signature"
"""firelink's header: ``t=<unix seconds>,v1=<hex of HMAC-SHA256(secret, "<t>." + body)>``."""
MAX_AGE = 300.0
"""Seconds a firelink signature's timestamp may be away from now (either way)."""


class SignatureError(Exception):
    """The request's signature is missing, malformed, stale or wrong: the message says which
    (never what the right one would be)."""


@dataclass(frozen=True)
class Verified:
    """A request whose signature holds: which header carried it, and a key naming this exact
    signed request (a firelink signature, to refuse the same request sent twice)."""

    scheme: str
    dedupe_key: str | None = None


def _digest(secret: bytes, message: bytes) -> str:
    return hmac.new(secret, message, hashlib.sha256).hexdigest()


def sign_github(secret: str | bytes, body: bytes) -> str:
    """The ``X-Hub-Signature-256`` value of ``body``."""
    return "sha256=" + _digest(_bytes(secret), body)


def sign_firelink(secret: str | bytes, body: bytes, timestamp: int) -> str:
    """The ``X-Firelink-Signature`` value of ``body`` sent at ``timestamp`` (unix seconds)."""
    return f"t={timestamp},v1=" + _digest(_bytes(secret), f"{timestamp}.".encode() + body)


def _bytes(secret: str | bytes) -> bytes:
    return secret.encode() if isinstance(secret, str) else secret


def verify(headers: Mapping[str, str], body: bytes, secret: str | bytes, *, now: float) -> Verified:
    """Check the request's signature against ``secret``; ``SignatureError`` saying why not.

    ``headers`` is looked up case-insensitively by the caller's mapping (aiohttp's is). The
    firelink header wins when both are present."""
    key = _bytes(secret)
    if not key:
        raise SignatureError("the trigger has no secret: every request is refused")
    value = headers.get(FIRELINK_HEADER)
    if value is not None:
        return _verify_firelink(value, body, key, now)
    value = headers.get(GITHUB_HEADER)
    if value is not None:
        return _verify_github(value, body, key)
    raise SignatureError(f"missing signature: send {FIRELINK_HEADER} or {GITHUB_HEADER}")


def _verify_github(value: str, body: bytes, key: bytes) -> Verified:
    scheme, _, given = value.strip().partition("=")
    if scheme != "sha256" or not given:
        raise SignatureError(f"{GITHUB_HEADER} must be sha256=<hex digest>")
    if not hmac.compare_digest(given.lower().encode(), _digest(key, body).encode()):
        raise SignatureError(f"{GITHUB_HEADER} does not match the body")
    return Verified("github")


def _verify_firelink(value: str, body: bytes, key: bytes, now: float) -> Verified:
    fields: dict[str, list[str]] = {}
    for part in value.split(","):
        name, sep, item = part.strip().partition("=")
        if sep:
            fields.setdefault(name, []).append(item)
    stamps, given = fields.get("t") or [], fields.get("v1") or []
    if len(stamps) != 1 or not given or not stamps[0].isdigit():
        raise SignatureError(f"{FIRELINK_HEADER} must be t=<unix seconds>,v1=<hex digest>")
    timestamp = int(stamps[0])
    expected = _digest(key, f"{timestamp}.".encode() + body).encode()
    if not any(hmac.compare_digest(g.lower().encode(), expected) for g in given):
        raise SignatureError(f"{FIRELINK_HEADER} does not match the body")
    if abs(now - timestamp) > MAX_AGE:
        raise SignatureError(
            f"{FIRELINK_HEADER}: the timestamp is more than {int(MAX_AGE)} seconds away from now"
            " (a replay, or a clock out of step)"
        )
    return Verified("firelink", dedupe_key=f"firelink:{timestamp}:{expected.decode()}")
