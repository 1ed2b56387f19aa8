"""Validation of a loaded config: every problem, located, one clear message each.

Internal: ``firelink_core.config`` is the public entry (``validate_files``, ``load_config``).
"""

from __future__ import annotations

from pathlib import Path

from .._yaml import Located
from ..plugins import Plugins
from .commands import check_shell_syntax
from .graph import check_graph
from .issues import Checks, Issue
from .messages import type_name
from .params import check_params
from .sections import (
    check_default_types,
    check_defaults,
    check_job,
    check_notifiers,
    check_storage,
    check_top,
)

__all__ = ["Issue", "validate_data"]


def validate_data(located: Located, plugins: Plugins, *, config_dir: Path | None, interpolated: bool) -> list[Issue]:
    """Every problem of the loaded data (after YAML problems, which the caller reports)."""
    checks = Checks(located, plugins, config_dir, interpolated)
    data = located.data
    if data is None:
        checks.add((), "the config is empty: expected a mapping with a 'jobs:' list", "schema")
        return checks.issues
    if not isinstance(data, dict):
        checks.add((), f"expected a mapping with a 'jobs:' list at the top level, got {type_name(data)}", "schema")
        return checks.issues
    check_top(checks, data)
    check_storage(checks, data)
    check_notifiers(checks, data)
    check_defaults(checks, data)
    jobs = data.get("jobs")
    if jobs is None:
        jobs = []  # ``jobs:`` with nothing under it: a config without jobs yet
    if not isinstance(jobs, list):
        checks.add(("jobs",), f"expected a list of jobs, got {type_name(jobs)}")
        return checks.issues
    notifiers = data.get("notifiers") if isinstance(data.get("notifiers"), dict) else {}
    for index, job in enumerate(jobs):
        check_job(checks, index, job, notifiers)
    check_default_types(checks, data, jobs)
    check_shell_syntax(checks, jobs, data.get("defaults"))
    check_params(checks, jobs)
    check_graph(checks, jobs)
    return checks.issues
