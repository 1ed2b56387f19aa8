"""The DSN as shown (never its password) and ``${VAR}`` references left for the storage."""

from __future__ import annotations

import pytest
from firelink_postgres._dsn import describe, resolve, scrub


@pytest.mark.parametrize(
    "dsn",
    [
        "host=db.example port=5433 user=fl password=p@ss/w0rd dbname=prod",
        "postgresql://fl:p%40ss%2Fw0rd@db.example:5433/prod",
    ],
)
def test_describe_names_the_server_never_the_password(dsn: str) -> None:
    assert describe(dsn) == "postgresql://fl@db.example:5433/prod"
    text = f"connection to {dsn} failed for p@ss/w0rd and p%40ss%2Fw0rd"
    masked = scrub(text, dsn)
    assert "p@ss" not in masked and "p%40ss" not in masked and "w0rd" not in masked


def test_an_unreadable_dsn_is_never_echoed() -> None:
    assert describe("password=secret oops") == "the configured PostgreSQL DSN"


def test_references_are_resolved_from_the_environment() -> None:
    env = {"FIRELINK_DSN": "host=db user=fl", "PW": "x$y"}
    assert resolve("${FIRELINK_DSN}", env) == "host=db user=fl"
    assert (
        resolve("host=db password=${PW} port=${PORT:-5432} app=$$1", env)
        == "host=db password=x$y port=5432 app=$1"
    )
    with pytest.raises(ValueError, match=r"\$\{MISSING\} is not set in this environment"):
        resolve("${MISSING}", env)
