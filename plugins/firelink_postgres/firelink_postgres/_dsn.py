"""The connection string, told without its password: for logs and error messages."""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from urllib.parse import quote

from psycopg.conninfo import conninfo_to_dict

__all__ = ["describe", "scrub", "is_dsn", "resolve"]

MASK = "***"

# The config's syntax (firelink_core's interpolation): ${VAR}, ${VAR:-default}, $$.
_REFERENCE = re.compile(r"\$(\$|\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\})")


def resolve(dsn: str, environ: Mapping[str, str] | None = None) -> str:
    """``dsn`` with ``${VAR}`` references replaced from the environment.

    The daemon's config arrives interpolated; CLI commands reading the history while the
    daemon is down load it without interpolating, so the storage resolves what is left.
    ``ValueError`` names the first variable that is not set (never a value).
    """
    env = os.environ if environ is None else environ

    def repl(match: re.Match[str]) -> str:
        if match.group(1) == "$":
            return "$"
        name, default = match.group(2), match.group(3)
        if name in env:
            return env[name]
        if default is not None:
            return default
        raise ValueError(f"${{{name}}} is not set in this environment")

    return _REFERENCE.sub(repl, dsn)


def _params(dsn: str) -> dict[str, str] | None:
    try:
        return {key: str(value) for key, value in conninfo_to_dict(dsn).items()}
    except Exception:  # psycopg raises ProgrammingError; any failure means "not readable"
        return None


def is_dsn(dsn: str) -> bool:
    """Whether libpq can read ``dsn`` (``key=value`` pairs or a ``postgresql://`` URL)."""
    return _params(dsn) is not None


def describe(dsn: str) -> str:
    """``postgresql://user@host:port/dbname``: where the storage connects, never the password."""
    params = _params(dsn)
    if params is None:
        return "the configured PostgreSQL DSN"
    user = params.get("user", "")
    host = params.get("host") or params.get("hostaddr") or "localhost"
    port = params.get("port", "")
    dbname = params.get("dbname", "")
    return f"postgresql://{user + '@' if user else ''}{host}{':' + port if port else ''}/{dbname}"


def scrub(text: str, dsn: str) -> str:
    """``text`` with the DSN and its password replaced by ``***`` wherever they appear."""
    secrets = [dsn]
    params = _params(dsn)
    if params and params.get("password"):
        password = params["password"]
        # A URL carries it percent-encoded: mask both spellings.
        secrets += [password, quote(password, safe=""), quote(password)]
    for secret in sorted(secrets, key=len, reverse=True):
        if secret:
            text = text.replace(secret, MASK)
    return text
