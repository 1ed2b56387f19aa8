"""Every hook a firelink plugin can implement. This module is the plugin author's reference.

A plugin is a module (or object) with functions decorated by ``firelink_core.hookimpl``
and named like the specifications below. It is found through the ``firelink`` entry-point
group of an installed distribution, through the config's ``plugins:`` list of import paths,
or through ``--plugin`` / ``FIRELINK_PLUGINS``. The built-in components register through
these same hooks (``firelink_core.builtin``), as ``trylast`` implementations.

Discovery hooks return classes and have no side effects: they are called by
``firelink validate`` and ``firelink plugins`` as well as by the daemon.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    from .abc import Executor, Notifier, Storage, Trigger
    from .events import RunEvent
    from .services import Service

__all__ = ["hookspec", "hookimpl", "PROJECT_NAME"]

PROJECT_NAME = "firelink"
hookspec = pluggy.HookspecMarker(PROJECT_NAME)
hookimpl = pluggy.HookimplMarker(PROJECT_NAME)


# --------------------------------------------------------------------------- triggers


@hookspec
def firelink_register_triggers() -> list[type[Trigger]]:
    """Declare trigger types.

    Called once per plugin manager, when the config is validated and when the engine starts.

    :return: a list of :class:`firelink_core.abc.Trigger` subclasses. Each declares
        ``type_name`` (what a job writes as ``trigger:``) and ``config_schema`` (its
        options, merged into the job's schema). A class may also declare ``schemes``,
        the ``source:`` URL schemes it serves (``("s3",)``; ``"file"`` also claims plain
        paths): several classes then share one type name, and a job's ``source:`` picks
        the class, its options and its messages. Every class of a type routed that way
        must declare schemes. Two plugins claiming the same type name (or the same type
        and scheme) is a configuration error naming both distributions.

    All results are collected (a list of lists). Subclass
    :class:`firelink_core.abc.ScheduleTrigger` for time-based triggers: the engine then
    owns the timer and the catch-up policy.
    """


# --------------------------------------------------------------------------- executors


@hookspec
def firelink_register_executors() -> list[type[Executor]]:
    """Declare executor types.

    :return: a list of :class:`firelink_core.abc.Executor` subclasses; ``type_name`` is
        what a job writes as ``executor:`` (or ``executor: {type: ...}``), ``config_schema``
        describes the options of that mapping. The engine makes one instance per type
        that the config uses, and calls ``run`` once per attempt.

    All results are collected.
    """


# --------------------------------------------------------------------------- storage


@hookspec
def firelink_register_storages() -> list[type[Storage]]:
    """Declare storage backends.

    :return: a list of :class:`firelink_core.abc.Storage` subclasses; ``type_name`` is
        what the config writes as ``storage: {type: ...}`` and ``config_schema`` describes
        the rest of that mapping. The engine opens exactly one storage.

    All results are collected. Reuse ``firelink_core.testing.StorageContract`` to test one.
    """


# --------------------------------------------------------------------------- notifiers


@hookspec
def firelink_register_notifiers() -> list[type[Notifier]]:
    """Declare notifier types.

    :return: a list of :class:`firelink_core.abc.Notifier` subclasses; ``type_name`` is
        what a named entry under ``notifiers:`` writes as ``type:``.

    All results are collected.
    """


# --------------------------------------------------------------------------- services


@hookspec
def firelink_register_services() -> list[type[Service]]:
    """Declare long-lived services run inside the daemon (an HTTP server, a queue listener).

    :return: a list of :class:`firelink_core.services.Service` subclasses. Each owns one
        top-level config section (``config_key``, described by ``config_schema`` and
        validated like every other section). When the config has that section, ``firelink
        run`` makes one instance with the section's value and a
        :class:`~firelink_core.services.ServiceHost` (the engine, the config, in-process
        control requests), awaits ``start()`` after the engine and the control socket
        started, and ``stop()`` before the engine stops. A service runs in the daemon's
        event loop: it must never block it, and an idle service should schedule no timer.
        A section no installed service claims is a located configuration error.

    All results are collected.
    """


# --------------------------------------------------------------------------- defaults


@hookspec(firstresult=True)
def firelink_default_type(kind: str) -> str | None:
    """Name the component type a config gets when it names none.

    Called when a config is validated and built, once per kind: for ``"executor"`` (a job
    without ``executor:``, in the job or in ``defaults:``) and ``"storage"`` (a config
    without ``storage:``). The CLI also asks for ``"storage"`` to read history without a
    config.

    :param kind: ``"trigger"``, ``"executor"``, ``"storage"`` or ``"notifier"``.
    :return: a registered ``type_name`` of that kind, or ``None`` to leave the choice to
        other plugins. The first non-``None`` answer wins: the built-ins answer ``trylast``
        (``subprocess`` and ``sqlite``), so any plugin can change a default. When no plugin
        answers and the config names no type, the config is invalid (a located error).
    """


# --------------------------------------------------------------------------- observers


@hookspec
def firelink_run_event(event: RunEvent) -> None:
    """Observe every run lifecycle event of every job (metrics, audit logs).

    Called synchronously on the engine's event loop right after the event is recorded in
    storage, for all jobs regardless of their ``notify:`` rules. Implementations must be
    quick and must not raise (an exception is logged and ignored). To deliver events to
    slow destinations, write a :class:`~firelink_core.abc.Notifier` instead.

    :param event: a :class:`firelink_core.events.RunEvent` subclass instance.
    """
