"""The connection string, told without its password: for logs and error messages."""

from __future__ import annotations

from collections.abc import Mapping
from urllib.parse import quote

from psycopg.conninfo import conninfo_to_dict

from firelink_core.plugin_api import expand_env

__all__ = ["describe", "scrub", "is_dsn", "resolve"]

MASK = "***"

def resolve(dsn: str, environ: Mapping[str, str] | None = None) -> str:
    """``dsn`` with ``${VAR}`` references replaced from the environment.

    The daemon's config arrives interpolated; CLI commands reading the history while the
    daemon is down load it without interpolating, so the storage resolves what is left.
    ``ValueError`` names the first variable that is not set (never a value).
    """

    def missing(name: str) -> None:
        raise ValueError(f"${{{name}}} is not set in this environment")

    return expand_env(dsn, environ, missing=missing)


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
