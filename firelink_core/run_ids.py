"""Run ids as people type them: a full id, or a unique prefix of one (as git takes commits).

Every command that takes a run id resolves it here, through the storage's
``find_runs_by_prefix``, so a short id works the same in ``logs``, ``cancel``, ``retry`` ...
Tables show ``short_id`` (8 characters).
"""

from __future__ import annotations

from collections.abc import Sequence

from .abc import Storage
from .records import RunRecord

__all__ = [
    "MIN_PREFIX",
    "SHORT_ID",
    "AmbiguousRunId",
    "UnknownRunId",
    "RunIdError",
    "resolve_run",
    "short_id",
]

SHORT_ID = 8
"""Characters of a run id shown in tables."""
MIN_PREFIX = 4
"""The shortest prefix accepted (as git): shorter ones match too much to mean one run."""
CANDIDATES = 10
"""Runs listed at most when a prefix is ambiguous."""


def short_id(run_id: str) -> str:
    """The first ``SHORT_ID`` characters of a run id, as tables show it."""
    return run_id[:SHORT_ID]


class RunIdError(LookupError):
    """A run id that names no run, or more than one."""

    code = "unknown-run"

    def __init__(self, message: str, text: str) -> None:
        super().__init__(message)
        self.message = message
        self.text = text


class UnknownRunId(RunIdError):
    """No run has this id, nor an id starting with it."""


class AmbiguousRunId(RunIdError):
    """Several runs start with this prefix (``candidates``: some of them, newest first)."""

    code = "ambiguous-run"

    def __init__(self, text: str, candidates: Sequence[RunRecord]) -> None:
        listed = "; ".join(
            f"{run.id} ({run.job}, {run.state.value})" for run in candidates[: CANDIDATES - 1]
        )
        more = ", and more" if len(candidates) >= CANDIDATES else ""
        super().__init__(f"run id prefix {text!r} is ambiguous: it matches {listed}{more}", text)
        self.candidates = list(candidates)


async def resolve_run(storage: Storage, text: str) -> RunRecord:
    """The run ``text`` names: its full id, or a prefix of exactly one run's id.

    Raises ``UnknownRunId`` (nothing matches, or a prefix shorter than ``MIN_PREFIX``) or
    ``AmbiguousRunId`` (several runs start with it).
    """
    run = await storage.get_run(text)
    if run is not None:
        return run
    if len(text) < MIN_PREFIX:
        raise UnknownRunId(
            f"no run {text!r} (a run id prefix needs at least {MIN_PREFIX} characters)", text
        )
    found = await storage.find_runs_by_prefix(text, limit=CANDIDATES)
    if not found:
        raise UnknownRunId(f"no run {text!r}", text)
    if len(found) > 1:
        raise AmbiguousRunId(text, found)
    return found[0]
