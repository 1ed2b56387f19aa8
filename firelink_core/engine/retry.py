"""Retries by hand (``firelink retry``): which run a retry runs again (with ``--from-failed``,
the run in its dependency chain that failed), and the event of the new run: the same job,
event data and parameters, linked to the old run."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from ..abc import Storage
from ..model import TriggerSpec
from ..records import RunRecord, RunState
from .dispatch import RETRY_OF
from .ids import new_id
from .requests import SECRET_MASK, is_requested

__all__ = ["RetryError", "failed_origin", "retry_event", "retry_run"]

CHAIN_DEPTH = 1000
"""The longest chain of upstream runs followed (a guard against a loop in stored links)."""


class RetryError(ValueError):
    """A run that cannot be retried, in words."""


async def failed_origin(storage: Storage, run: RunRecord) -> RunRecord:
    """The run of ``run``'s dependency chain that failed: ``run`` itself when it failed; for
    an upstream-failed run, the upstream run it followed (an automatic run's
    ``upstream_run``, a request's ``after_runs``), up the chain to the one that failed."""
    current = run
    for _ in range(CHAIN_DEPTH):
        if current.state is not RunState.UPSTREAM_FAILED:
            break
        upstream = await _failed_upstream(storage, current)
        if upstream is None:
            break
        current = upstream
    if not current.finished:
        raise RetryError(
            f"run {current.id} of {current.job} is still {current.state.value}: wait for it to end"
        )
    if current.state is RunState.SUCCESS:
        raise RetryError(
            f"run {current.id} of {current.job} succeeded: nothing failed to retry from"
        )
    return current


async def _failed_upstream(storage: Storage, run: RunRecord) -> RunRecord | None:
    ids: list[str] = []
    upstream_run = run.payload.get("upstream_run")
    if isinstance(upstream_run, str):
        ids.append(upstream_run)
    after = run.options.get("after_runs")
    if isinstance(after, list):
        ids.extend(item for item in after if isinstance(item, str))
    for run_id in ids:
        upstream = await storage.get_run(run_id)
        if upstream is not None and upstream.finished and upstream.state is not RunState.SUCCESS:
            return upstream
    return None


def retry_event(
    run: RunRecord,
) -> tuple[TriggerSpec, str, dict[str, Any], dict[str, str], dict[str, Any]]:
    """The trigger spec, trigger key, payload, env and options of the event that retries
    ``run``. ``RetryError`` when the run needs values that were never stored (a request's
    ``--env``)."""
    if not run.finished:
        raise RetryError(
            f"run {run.id} of {run.job} is still {run.state.value}: wait for it to end"
        )
    masked = sorted(name for name, value in run.env.items() if value == SECRET_MASK)
    if is_requested(run.options) and masked:
        raise RetryError(
            f"run {run.id} was given {', '.join(masked)} with the request (--env or a secret --param): those values were never"
            f" stored, so it cannot be run again as it was; trigger {run.job} again with them"
        )
    label = run.trigger or "retry"
    key = run.trigger_key or f"{run.job}#{label}"
    spec = TriggerSpec(type=label, options={}, job=run.job, index=0)
    options: dict[str, Any] = {RETRY_OF: run.id}
    options.update(_kept_options(run.options))
    return spec, key, dict(run.payload), dict(run.env), options


def _kept_options(options: Mapping[str, Any]) -> dict[str, Any]:
    """What of the old run's options the retry keeps (its parameters)."""
    return {key: options[key] for key in ("params",) if key in options}


async def retry_run(
    storage: Storage,
    emit: Callable[..., Awaitable[Any]],
    run_id: str,
    *,
    from_failed: bool,
    configured: Callable[[str], bool],
) -> dict[str, Any]:
    """``Engine.retry``: emit a new run of the run's job (or, ``from_failed``, of the run its
    dependency chain failed at) with the same event data and parameters. LookupError for an
    unknown run, KeyError for a job not ``configured`` any more, ``RetryError``."""
    old = await storage.get_run(run_id)
    if old is None:
        raise LookupError(run_id)
    target = await failed_origin(storage, old) if from_failed else old
    if not configured(target.job):
        raise KeyError(target.job)
    spec, key, payload, env, options = retry_event(target)
    new_run = new_id()
    await emit(
        spec,
        payload,
        env,
        run_id=new_run,
        options=options,
        key=key,
        scheduled_for=target.scheduled_for,
    )
    return {"run_id": new_run, "job": target.job, "retry_of": target.id}
