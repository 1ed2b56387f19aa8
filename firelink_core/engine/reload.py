"""Reload: which jobs a new config adds, removes and changes, and what of the old config stays until a restart."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from dataclasses import dataclass, field

from ..model import Config, JobSpec, NotifierSpec

__all__ = ["RESTART_ONLY", "ReloadResult", "carry_over", "diff_jobs", "diff_notifiers"]

log = logging.getLogger("firelink.engine")

RESTART_ONLY = ("state_dir", "storage")
"""Config sections a reload does not switch: the daemon keeps its state where it opened it."""


@dataclass
class ReloadResult:
    """What a reload changed: jobs and notifiers by name, compared by what they mean (their
    settings), never by where they sit in the file."""

    added: list[str] = field(default_factory=list)
    removed: list[str] = field(default_factory=list)
    changed: list[str] = field(default_factory=list)
    notifiers_added: list[str] = field(default_factory=list)
    notifiers_removed: list[str] = field(default_factory=list)
    notifiers_changed: list[str] = field(default_factory=list)


def diff_jobs(old: Mapping[str, JobSpec], new: Mapping[str, JobSpec]) -> ReloadResult:
    """Jobs added, removed and changed (``JobSpec`` equality leaves out the source line)."""
    return ReloadResult(
        added=sorted(set(new) - set(old)),
        removed=sorted(set(old) - set(new)),
        changed=sorted(n for n in set(new) & set(old) if new[n] != old[n]),
    )


def diff_notifiers(
    old: Mapping[str, NotifierSpec], new: Mapping[str, NotifierSpec], result: ReloadResult
) -> ReloadResult:
    """``result`` with the notifiers added, removed and changed (type or options) filled in."""
    result.notifiers_added = sorted(set(new) - set(old))
    result.notifiers_removed = sorted(set(old) - set(new))
    result.notifiers_changed = sorted(n for n in set(new) & set(old) if new[n] != old[n])
    return result


def carry_over(new: Config, old: Config) -> Config:
    """The new config with the sections only a restart changes taken from ``old`` (a
    warning for each that differs)."""
    for what in RESTART_ONLY:
        if getattr(new, what) != getattr(old, what):
            log.warning("reload: a change of %s takes effect at the next restart", what)
    return dataclasses.replace(new, **{what: getattr(old, what) for what in RESTART_ONLY})
