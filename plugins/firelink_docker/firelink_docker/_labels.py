"""The labels that mark firelink's containers, so recovery and the orphan sweep find them again."""

from __future__ import annotations

__all__ = [
    "LABEL_ATTEMPT", "LABEL_JOB", "LABEL_KEEP", "LABEL_RUN_ID", "LABEL_SCOPE", "attempt_filter", "attempt_labels",
    "scope_filter",
]

LABEL_JOB = "firelink.job"
LABEL_RUN_ID = "firelink.run_id"
LABEL_ATTEMPT = "firelink.attempt"
LABEL_SCOPE = "firelink.scope"
"""The daemon's state directory: a daemon only ever cleans up containers it started."""
LABEL_KEEP = "firelink.keep"
"""Set on containers of jobs with ``remove: false``, which the orphan sweep leaves alone."""


def attempt_labels(*, job: str, run_id: str, attempt: int, scope: str) -> dict[str, str]:
    """The labels naming one attempt's container (set over the user's ``labels``)."""
    return {LABEL_JOB: job, LABEL_RUN_ID: run_id, LABEL_ATTEMPT: str(attempt), LABEL_SCOPE: scope}


def attempt_filter(run_id: str, attempt: int, scope: str) -> list[str]:
    """The Docker ``label`` filter that finds one attempt's container."""
    return [f"{LABEL_RUN_ID}={run_id}", f"{LABEL_ATTEMPT}={attempt}", f"{LABEL_SCOPE}={scope}"]


def scope_filter(scope: str) -> str:
    """The Docker ``label`` filter that finds every container of one daemon."""
    return f"{LABEL_SCOPE}={scope}"
