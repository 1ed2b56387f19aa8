"""Run a real engine in-process for a test: real SQLite file, real executors, helpers to trigger and wait."""

from __future__ import annotations

import contextlib
import dataclasses
import types
from collections.abc import AsyncIterator
from pathlib import Path

from ..abc import Clock, Component, Storage
from ..engine import Engine
from ..hookspecs import hookimpl
from ..model import Config
from ..plugins import BASE_OF_KIND, HOOK_OF_KIND, PluginInfo, Plugins, make_plugins
from ..records import RunRecord
from ._wait import async_wait_for

__all__ = ["EngineHarness", "run_engine", "plugins_with"]


class EngineHarness:
    """A started engine and the shortcuts tests need (``h.trigger``, ``h.wait_run``, ``h.runs``)."""

    def __init__(self, engine: Engine, tmp_path: Path) -> None:
        self.engine = engine
        self.tmp_path = tmp_path

    @property
    def storage(self) -> Storage:
        return self.engine.storage

    @property
    def config(self) -> Config:
        return self.engine.config

    async def trigger(self, job: str, env: dict[str, str] | None = None, with_upstream: bool = False) -> str:
        """Queue a manual run of ``job``; return its run id."""
        return await self.engine.trigger(job, env, with_upstream=with_upstream)

    async def wait_run(self, run_id: str, timeout: float = 10) -> RunRecord:
        """The run once it is finished (fails the test at the deadline)."""
        return await self.engine.wait_run(run_id, timeout)

    async def run(self, job: str, env: dict[str, str] | None = None, timeout: float = 10) -> RunRecord:
        """Trigger ``job`` and wait for its run."""
        return await self.wait_run(await self.trigger(job, env), timeout)

    async def settle(self, timeout: float = 10) -> None:
        """Wait until the engine dispatched every event and finished its follow-ups
        (dependency evaluation, retention); use before asserting that something did NOT happen."""
        await self.engine.wait_idle(timeout)

    async def runs(self, job: str | None = None) -> list[RunRecord]:
        """Every stored run (of ``job``), oldest first."""
        runs = await self.storage.list_runs(job, limit=None)
        return sorted(runs, key=lambda r: r.created_at)

    async def wait_runs(self, job: str, count: int, timeout: float = 10) -> list[RunRecord]:
        """Wait until ``job`` has at least ``count`` finished runs; return its runs, oldest first."""

        async def finished() -> list[RunRecord] | None:
            runs = await self.runs(job)
            done = [r for r in runs if r.finished]
            return runs if len(done) >= count else None

        return await async_wait_for(finished, timeout, message=f"{count} finished runs of {job}")

    def log_text(self, run: RunRecord, attempt: int | None = None) -> str:
        """The log of the run's latest attempt (or of ``attempt``), as text."""
        path = run.log_path
        if attempt is not None:
            path = str(self.engine.config.state_dir / "logs" / run.job / f"{run.id}.{attempt}.log")
        if not path or not Path(path).exists():
            return ""
        return Path(path).read_text(errors="replace")


def _as_config(config_or_yaml: Config | str, tmp_path: Path, plugins: Plugins | None) -> tuple[Config, Plugins]:
    if isinstance(config_or_yaml, str):
        from ..config import parse_config

        config_file = tmp_path / "firelink.yaml"
        config_file.write_text(config_or_yaml)
        config, loaded = parse_config(
            config_or_yaml, str(config_file), plugins=plugins, state_dir=tmp_path, interpolate=True
        )
        return dataclasses.replace(config, state_dir=tmp_path), loaded
    if plugins is None:
        plugins = make_plugins(config_plugins=config_or_yaml.plugins, entry_points=True, env=False)
    return dataclasses.replace(config_or_yaml, state_dir=tmp_path), plugins


@contextlib.asynccontextmanager
async def run_engine(
    config_or_yaml_text: Config | str,
    tmp_path: Path,
    *,
    plugins: Plugins | None = None,
    clock: Clock | None = None,
    grace: float = 5.0,
) -> AsyncIterator[EngineHarness]:
    """Start an engine with its state (SQLite file, logs) in ``tmp_path``; stop it on exit.

    ``config_or_yaml_text`` is a ``Config`` or the text of a ``firelink.yaml``.
    """
    tmp_path = Path(tmp_path)
    config, plugins = _as_config(config_or_yaml_text, tmp_path, plugins)
    engine = Engine(config, plugins, clock=clock)
    await engine.start()
    try:
        await engine.wait_idle(60)  # schedules planned, recovered work dispatched
        yield EngineHarness(engine, tmp_path)
    finally:
        await engine.stop(grace=grace)


def plugins_with(*components: type[Component], name: str = "test-components") -> Plugins:
    """The built-in plugins (and installed ones) plus ``components`` registered as one more plugin."""
    by_hook: dict[str, list[type[Component]]] = {}
    for cls in components:
        hook = next(HOOK_OF_KIND[kind] for kind, base in BASE_OF_KIND.items() if issubclass(cls, base))
        by_hook.setdefault(hook, []).append(cls)
    namespace = {hook: hookimpl(specname=hook)(lambda classes=classes: list(classes)) for hook, classes in by_hook.items()}
    plugin = types.SimpleNamespace(**namespace)
    plugins = make_plugins(entry_points=True, env=True)
    plugins.register_module(
        plugin, PluginInfo(name=name, distribution=None, version=None, source="option", module=name)
    )
    return plugins
