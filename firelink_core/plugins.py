"""The plugin manager factory, the built-in plugin list and the typed facade over hooks.

Only this module calls hooks; the rest of firelink calls ``Plugins`` methods.
"""

from __future__ import annotations

import importlib
import importlib.metadata as md
import logging
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from types import ModuleType
from typing import Any

import pluggy

from . import hookspecs
from .abc import Component, Executor, Notifier, Storage, Trigger

__all__ = [
    "BUILTIN_PLUGINS",
    "ENTRY_POINT_GROUP",
    "PluginInfo",
    "PluginError",
    "Plugins",
    "make_plugins",
    "FIRST_PARTY_HINTS",
    "KINDS",
    "HOOK_OF_KIND",
    "BASE_OF_KIND",
    "scheme_key",
    "SCHEME_PREFIX",
    "source_scheme",
    "source_url_problem",
]

log = logging.getLogger("firelink.plugins")

ENTRY_POINT_GROUP = "firelink"
"""The entry-point group third-party distributions register their plugin module under."""

BUILTIN_PLUGINS: tuple[str, ...] = (
    "firelink_core.builtin.cron",
    "firelink_core.builtin.interval",
    "firelink_core.builtin.manual",
    "firelink_core.builtin.subprocess",
    "firelink_core.builtin.sqlite",
    "firelink_core.builtin.memory",
    "firelink_core.builtin.log",
    "firelink_core.builtin.webhook",
    "firelink_core.builtin.smtp",
    "firelink_core.builtin.command",
)

FIRST_PARTY_HINTS: dict[tuple[str, str], str] = {
    ("trigger", "watch:s3"): "firelink-s3",
    ("trigger", "watch:file"): "firelink-fs",
    ("executor", "docker"): "firelink-docker",
}
"""Which first-party distribution to install for a component that is not there.

Keyed by ``(kind, registry key)``; a trigger routed by scheme has the key ``type:scheme``
(see ``scheme_key``), which also tells the validator that the type is routed by scheme
when no plugin serving it is installed.
"""

KINDS = ("trigger", "executor", "storage", "notifier")
"""The component kinds, in the order the registry is built."""

HOOK_OF_KIND: dict[str, str] = {
    "trigger": "firelink_register_triggers",
    "executor": "firelink_register_executors",
    "storage": "firelink_register_storages",
    "notifier": "firelink_register_notifiers",
}
"""The registration hook that returns the classes of each kind."""

BASE_OF_KIND: dict[str, type[Component]] = {
    "trigger": Trigger,
    "executor": Executor,
    "storage": Storage,
    "notifier": Notifier,
}
"""The base class every component of each kind subclasses."""


class PluginError(Exception):
    """A plugin could not be loaded or declares something invalid."""

    def __init__(self, plugin: str, distribution: str | None, message: str, *, optional: bool = False) -> None:
        self.plugin = plugin
        self.distribution = distribution
        self.message = message
        self.optional = optional
        """An installed entry point that failed to import: it provides nothing and nobody named it,
        so a config that needs none of its types runs without it (a warning, not an error)."""
        origin = f" (distribution {distribution})" if distribution else ""
        super().__init__(f"plugin {plugin!r}{origin}: {message}")


@dataclass
class PluginInfo:
    """One loaded plugin: where it came from and what it provides."""

    name: str
    distribution: str | None
    version: str | None
    source: str
    """``builtin``, ``entry-point``, ``config``, ``option`` or ``env``."""
    module: str
    provides: dict[str, list[str]] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "distribution": self.distribution,
            "version": self.version,
            "source": self.source,
            "module": self.module,
            "provides": self.provides,
        }


def _dist_version(dist: str | None) -> str | None:
    if not dist:
        return None
    try:
        return md.version(dist)
    except md.PackageNotFoundError:
        return None


def scheme_key(type_name: str, scheme: str) -> str:
    """The registry key of a trigger class serving ``source:`` URLs of one scheme: ``type:scheme``."""
    return f"{type_name}:{scheme}"


def _component_keys(kind: str, cls: type[Component]) -> list[str]:
    """Registry keys: a trigger class declaring ``schemes`` is keyed once per scheme."""
    schemes = getattr(cls, "schemes", ()) if kind == "trigger" else ()
    if schemes:
        return [scheme_key(cls.type_name, scheme) for scheme in schemes]
    return [cls.type_name]


class Plugins:
    """The typed facade over one pluggy manager: registries of components and hook calls."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self.infos: list[PluginInfo] = []
        self.errors: list[PluginError] = []
        self._registry: dict[str, dict[str, tuple[type[Component], PluginInfo]]] | None = None
        self._routed: frozenset[str] = frozenset()
        self._defaults: dict[str, str | None] = {}

    # loading --------------------------------------------------------------
    def register_module(self, module: ModuleType | object, info: PluginInfo) -> None:
        if self.pm.is_registered(module):
            return
        try:
            self.pm.register(module, name=info.name)
        except ValueError:
            return  # the same name registered twice (two import paths to one module)
        except pluggy.PluginValidationError as exc:
            self.errors.append(PluginError(info.name, info.distribution, str(exc)))
            return
        self.infos.append(info)
        self._registry = None
        self._defaults = {}

    def load_import_path(self, path: str, *, source: str, distribution: str | None = None) -> None:
        """Import ``path`` (a module, or ``module:attribute``) and register it."""
        mod_name, _, attr = path.partition(":")
        try:
            obj: Any = importlib.import_module(mod_name)
            if attr:
                obj = getattr(obj, attr)
        except Exception as exc:  # noqa: BLE001 - any import failure is reported, not raised
            self.errors.append(
                PluginError(path, distribution, f"cannot be imported: {type(exc).__name__}: {exc}")
            )
            return
        name = path if source != "builtin" else "firelink." + mod_name.rsplit(".", 1)[-1]
        dist = distribution or ("firelink-core" if source == "builtin" else None)
        self.register_module(
            obj,
            PluginInfo(
                name=name,
                distribution=dist,
                version=_dist_version(dist),
                source=source,
                module=getattr(obj, "__name__", path),
            ),
        )

    def load_entry_points(self) -> None:
        for ep in md.entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist is not None else None
            try:
                obj = ep.load()
            except Exception as exc:  # noqa: BLE001
                self.errors.append(
                    PluginError(
                        ep.name, dist, f"cannot be imported ({ep.value}): {type(exc).__name__}: {exc}", optional=True
                    )
                )
                continue
            self.register_module(
                obj,
                PluginInfo(
                    name=ep.name,
                    distribution=dist,
                    version=_dist_version(dist),
                    source="entry-point",
                    module=getattr(obj, "__name__", ep.value),
                ),
            )

    def check_pending(self) -> None:
        """Report hook implementations whose names match no specification (typos)."""
        try:
            self.pm.check_pending()
        except pluggy.PluginValidationError as exc:
            plugin = exc.plugin
            info = next((i for i in self.infos if self.pm.get_plugin(i.name) is plugin), None)
            self.errors.append(
                PluginError(info.name if info else str(plugin), info.distribution if info else None, str(exc))
            )

    # registries -------------------------------------------------------------
    def _build_registry(self) -> dict[str, dict[str, tuple[type[Component], PluginInfo]]]:
        registry: dict[str, dict[str, tuple[type[Component], PluginInfo]]] = {k: {} for k in KINDS}
        for info in self.infos:
            info.provides = {}
        for kind in KINDS:
            caller = getattr(self.pm.hook, HOOK_OF_KIND[kind])
            # Called one implementation at a time so each class is attributed to its plugin.
            # get_hookimpls() is ordered trylast-first; reversed, builtins come last.
            for impl in reversed(caller.get_hookimpls()):
                info = next((i for i in self.infos if i.name == impl.plugin_name), None)
                if info is None:
                    continue
                try:
                    classes = impl.function() or []
                except Exception as exc:  # noqa: BLE001
                    self.errors.append(
                        PluginError(info.name, info.distribution, f"{HOOK_OF_KIND[kind]} failed: {exc}")
                    )
                    continue
                for cls in classes:
                    base = BASE_OF_KIND[kind]
                    if not (isinstance(cls, type) and issubclass(cls, base)):
                        self.errors.append(
                            PluginError(
                                info.name, info.distribution,
                                f"{HOOK_OF_KIND[kind]} returned {cls!r}, not a {base.__name__} subclass",
                            )
                        )
                        continue
                    for key in _component_keys(kind, cls):
                        if key in registry[kind]:
                            other = registry[kind][key][1]
                            self.errors.append(
                                PluginError(
                                    info.name, info.distribution,
                                    f"{kind} type {key!r} is already provided by plugin {other.name!r}"
                                    + (f" (distribution {other.distribution})" if other.distribution else ""),
                                )
                            )
                            continue
                        registry[kind][key] = (cls, info)
                        info.provides.setdefault(kind, []).append(key)
        self._routed = frozenset(cls.type_name for cls, _info in registry["trigger"].values() if cls.schemes)
        self._refuse_unrouted(registry["trigger"])
        return registry

    def _refuse_unrouted(self, triggers: dict[str, tuple[type[Component], PluginInfo]]) -> None:
        """A trigger type routed by ``source:`` scheme cannot also have a class that declares none."""
        for key, (cls, info) in list(triggers.items()):
            if key in self._routed:
                self.errors.append(
                    PluginError(
                        info.name, info.distribution,
                        f"{key} trigger {cls.__name__} declares no schemes (other {key!r} triggers "
                        "are chosen by the source: scheme)",
                    )
                )
                del triggers[key]
                info.provides["trigger"].remove(key)

    @property
    def registry(self) -> dict[str, dict[str, tuple[type[Component], PluginInfo]]]:
        if self._registry is None:
            self._registry = self._build_registry()
        return self._registry

    def components(self, kind: str) -> dict[str, type[Component]]:
        """``{key: class}`` of one kind; triggers routed by scheme appear as ``type:scheme``."""
        return {key: cls for key, (cls, _info) in self.registry[kind].items()}

    def triggers(self) -> dict[str, type[Trigger]]:
        return self.components("trigger")  # type: ignore[return-value]

    def executors(self) -> dict[str, type[Executor]]:
        return self.components("executor")  # type: ignore[return-value]

    def storages(self) -> dict[str, type[Storage]]:
        return self.components("storage")  # type: ignore[return-value]

    def notifiers(self) -> dict[str, type[Notifier]]:
        return self.components("notifier")  # type: ignore[return-value]

    def provider(self, kind: str, key: str) -> PluginInfo | None:
        entry = self.registry[kind].get(key)
        return entry[1] if entry else None

    def trigger_types(self) -> list[str]:
        """Every ``trigger:`` type name a config can use, sorted (a type routed by scheme once)."""
        return sorted({cls.type_name for cls, _info in self.registry["trigger"].values()})

    def routed_by_scheme(self, type_name: str) -> bool:
        """Whether ``trigger: type_name`` is served per ``source:`` scheme.

        True when an installed class of that type declares ``schemes``, or when a
        first-party distribution that is not installed would serve it per scheme.
        """
        triggers = self.registry["trigger"]
        if type_name in self._routed or type_name in triggers:
            return type_name in self._routed
        return any(kind == "trigger" and key.startswith(f"{type_name}:") for kind, key in FIRST_PARTY_HINTS)

    def trigger_schemes(self, type_name: str) -> list[str]:
        """The ``source:`` schemes that installed classes of ``type_name`` serve, sorted."""
        prefix = f"{type_name}:"
        return sorted(key[len(prefix):] for key in self.registry["trigger"] if key.startswith(prefix))

    def trigger_class(self, type_name: str, source: str | None = None) -> type[Trigger] | None:
        """The class serving ``trigger: type_name``; for a type routed by scheme, the class
        declaring the scheme of ``source``."""
        triggers = self.registry["trigger"]
        key = scheme_key(type_name, source_scheme(source or "")) if type_name in self._routed else type_name
        entry = triggers.get(key)
        return entry[0] if entry else None  # type: ignore[return-value]

    def default_type(self, kind: str) -> str | None:
        """The component type of ``kind`` a config gets when it names none (``firelink_default_type``)."""
        if kind not in self._defaults:
            self._defaults[kind] = self.pm.hook.firelink_default_type(kind=kind)
        return self._defaults[kind]

    # hook calls -------------------------------------------------------------
    def run_event(self, event: Any) -> None:
        """Call ``firelink_run_event`` on every plugin; an exception is logged, never raised."""
        for impl in self.pm.hook.firelink_run_event.get_hookimpls():
            try:
                impl.function(event=event)
            except Exception:  # noqa: BLE001
                log.exception("plugin %s failed in firelink_run_event", impl.plugin_name)


SCHEME_PREFIX = re.compile(r"^([A-Za-z][A-Za-z0-9+.-]*):")
"""A ``source:`` starting with an RFC 3986 scheme and a colon names that scheme, even when
malformed (``s3:/bucket``, ``file:/x``); anything else is a local path (``./a:b``)."""


def source_scheme(source: str) -> str:
    """``s3://b/p`` -> ``s3``; ``S3:b`` -> ``s3`` (malformed: see ``source_url_problem``);
    a plain path -> ``file``."""
    match = SCHEME_PREFIX.match(source)
    return match.group(1).lower() if match else "file"


def source_url_problem(source: str) -> tuple[str, str] | None:
    """Why a ``source:`` that names a scheme is not a well-formed ``scheme://...`` URL, and the
    form likely meant; ``None`` for a well-formed URL or a plain path."""
    match = SCHEME_PREFIX.match(source)
    if match is None:
        return None
    written, rest = match.group(1), source[match.end():]
    scheme = written.lower()
    if written == scheme and rest.startswith("//"):
        return None  # what follows ``//`` is for the plugin serving the scheme to judge
    body = rest.lstrip("/")
    meant = f"{scheme}:///{body}" if scheme == "file" else f"{scheme}://{body or 'NAME/'}"
    if written != scheme:
        return f"the scheme is written in lower case ({scheme}://)", meant
    return f"{scheme}: URLs start with {scheme}://", meant


def _env_plugins() -> list[str]:
    raw = os.environ.get("FIRELINK_PLUGINS", "")
    return [p.strip() for p in raw.replace(";", ",").split(",") if p.strip()]


def make_plugins(
    *,
    extra: Sequence[str] = (),
    config_plugins: Sequence[str] = (),
    entry_points: bool = True,
    env: bool = True,
    builtins: Iterable[str] = BUILTIN_PLUGINS,
) -> Plugins:
    """A fresh plugin manager (never a global one), loaded and checked.

    Load errors are collected in ``Plugins.errors`` rather than raised, so the caller can
    report them with everything else that is wrong.
    """
    pm = pluggy.PluginManager(hookspecs.PROJECT_NAME)
    pm.add_hookspecs(hookspecs)
    plugins = Plugins(pm)
    for path in builtins:
        plugins.load_import_path(path, source="builtin")
    if entry_points:
        plugins.load_entry_points()
    for path in config_plugins:
        plugins.load_import_path(path, source="config")
    for path in extra:
        plugins.load_import_path(path, source="option")
    if env:
        for path in _env_plugins():
            plugins.load_import_path(path, source="env")
    plugins.check_pending()
    _ = plugins.registry
    return plugins
