"""Runs started by hand (``firelink trigger``, ``Engine.trigger``): which trigger they run
under, their payload, and the core-owned flag that marks them as made on request."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..abc import Trigger
from ..model import JobSpec, TriggerSpec

__all__ = ["NEUTRAL_LABEL", "REQUESTED", "is_requested", "request_spec", "requested_option"]

REQUESTED = "requested"
"""Key of the flag in an event's and a run's ``options``: made on request, so the request's
``env`` overrides the job's own ``env``."""
NEUTRAL_LABEL = "request"
"""The trigger label of runs started by hand when no installed trigger class declares ``on_request``."""


def is_requested(options: Mapping[str, Any]) -> bool:
    return bool(options.get(REQUESTED))


def requested_option(options: Mapping[str, Any]) -> dict[str, Any]:
    """``{REQUESTED: True}`` for options carrying the flag, else empty (to pass it on)."""
    return {REQUESTED: True} if options.get(REQUESTED) else {}


def request_spec(
    job: JobSpec, started: tuple[TriggerSpec, type[Trigger]] | None, classes: Mapping[str, type[Trigger]]
) -> tuple[TriggerSpec, str, type[Trigger]]:
    """The trigger spec, trigger key and class a request for ``job`` runs under.

    ``started``: the job's first started trigger whose class declares ``on_request``, with that class. A job
    without one runs under a key and label derived from the first installed class that
    declares it, or under the neutral label if none does."""
    if started is not None:
        spec, cls = started
        return spec, spec.key, cls
    cls = next((c for c in classes.values() if c.on_request), Trigger)
    label = cls.type_name if cls is not Trigger else NEUTRAL_LABEL
    return TriggerSpec(type=label, options={}, job=job.name, index=0), f"{job.name}#{label}", cls
