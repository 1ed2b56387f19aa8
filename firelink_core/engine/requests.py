"""Runs started by hand (``firelink trigger``, ``Engine.trigger``): which trigger they run
under, their payload, and the core-owned flag that marks them as made on request."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..abc import Storage, Trigger
from ..model import JobSpec, TriggerSpec
from ..params import PARAMS, resolve, secret_env, stored_params
from ..records import SECRET_MASK, PauseRecord, RunRecord, RunState
from .errors import JobPaused
from .ids import new_id
from .pauses import FORCE

__all__ = ["NEUTRAL_LABEL", "REQUESTED", "SECRET_MASK", "Secrets", "is_requested", "request_run", "request_spec", "requested_option", "upstream_states"]

REQUESTED = "requested"
"""Key of the flag in an event's and a run's ``options``: made on request, so the request's
``env`` overrides the job's own ``env``."""
NEUTRAL_LABEL = "request"
"""The trigger label of runs started by hand when no installed trigger class declares ``on_request``."""


class Secrets:
    """The env values of requests by run id, in memory only, until the run finishes."""

    def __init__(self) -> None:
        self._values: dict[str, dict[str, str]] = {}

    def keep(self, run_id: str, env: Mapping[str, str] | None) -> dict[str, str]:
        """Keep the request's values; return the env its records hold (names, values masked)."""
        if not env:
            return {}
        self._values[run_id] = dict(env)
        return {name: SECRET_MASK for name in env}

    def get(self, run_id: str) -> dict[str, str] | None:
        return self._values.get(run_id)

    def lost(self, run: RunRecord) -> str | None:
        """Why ``run`` cannot run: request env values not in memory (the daemon restarted)."""
        if not is_requested(run.options) or not run.env:
            return None
        kept = self._values.get(run.id) or {}
        lost = sorted(name for name, value in run.env.items() if value == SECRET_MASK and name not in kept)
        if not lost:
            return None
        return (
            f"the values of {', '.join(lost)} given with the request (firelink trigger --env) are kept in"
            " the daemon's memory only and were lost in a restart: trigger the job again"
        )

    def forget(self, run_id: str | None) -> None:
        if run_id is not None:
            self._values.pop(run_id, None)


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


async def upstream_states(storage: Storage, run: RunRecord) -> dict[str, RunState] | None:
    """The states of a 'with upstream' request run's upstream runs by job, None while one is unfinished."""
    states: dict[str, RunState] = {}
    for run_id in run.options["after_runs"]:
        upstream = await storage.get_run(run_id)
        if upstream is None:
            states[run_id] = RunState.CANCELLED
        elif not upstream.finished:
            return None
        else:
            states[upstream.job] = upstream.state
    return states


async def request_run(
    job: JobSpec,
    env: Mapping[str, str] | None,
    *,
    pause: PauseRecord | None,
    started: tuple[TriggerSpec, type[Trigger]] | None,
    classes: Mapping[str, type[Trigger]],
    emit: Callable[..., Awaitable[Any]],
    with_upstream: bool,
    force: bool,
    params: Mapping[str, str] | None,
) -> str:
    """``Engine.trigger``: emit the event of a run of ``job`` started by hand, under the
    trigger ``request_spec`` picks (``started``, ``classes``); return its run's id.
    ``JobPaused`` when ``pause`` is set unless ``force``; ``ParamError`` for ``params``."""
    values = resolve(job, params)
    if pause is not None and not force:
        raise JobPaused(pause)
    spec, key, cls = request_spec(job, started, classes)
    run_id = new_id()
    options: dict[str, Any] = {"with_upstream": True} if with_upstream else {}
    if values:
        options[PARAMS] = stored_params(job, values)
        env = {**(env or {}), **secret_env(job, values)}
    if pause is not None:
        options[FORCE] = True
    payload = cls.request_payload(with_upstream=with_upstream)
    await emit(spec, payload, env, run_id=run_id, options=options, key=key, requested=True)
    return run_id
