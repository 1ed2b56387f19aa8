"""Third-party plugins found for real: a throwaway distribution built and pip-installed into a
temporary folder, import paths from --plugin / FIRELINK_PLUGINS / the config's ``plugins:``,
load errors and name clashes reported clearly."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
import types
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from firelink_core.abc import Trigger
from firelink_core.cli import main
from firelink_core.config import validate_text
from firelink_core.plugin_api import hookimpl
from firelink_core.testing import fresh_plugins

FIRELINK = Path(sys.executable).parent / "firelink"

PLUGIN_MODULE = '''
"""firelink-acme: a trigger fired by messages of the ACME queue."""
from firelink_core.plugin_api import hookimpl
from firelink_core.abc import Problem, Trigger


class AcmeQueueTrigger(Trigger):
    type_name = "acme_queue"
    description = "Messages of an ACME queue"
    config_schema = {
        "type": "object",
        "properties": {
            "queue": {"type": "string", "description": "Queue name."},
            "batch": {"type": "integer", "minimum": 1, "default": 1, "description": "Messages per run."},
        },
        "required": ["queue"],
    }

    @classmethod
    def check(cls, options, *, config_dir=None):
        if " " in options.get("queue", ""):
            return [Problem(("queue",), "a queue name has no spaces")]
        return []

    async def start(self):
        pass

    async def stop(self):
        pass


@hookimpl
def firelink_register_triggers():
    return [AcmeQueueTrigger]
'''


def _distribution(root: Path, name: str, module: str, body: str) -> Path:
    src = root / name
    (src / module).mkdir(parents=True)
    (src / module / "__init__.py").write_text("")
    (src / module / "plugin.py").write_text(body)
    (src / "pyproject.toml").write_text(
        textwrap.dedent(
            f"""\
            [build-system]
            requires = ["setuptools>=64"]
            build-backend = "setuptools.build_meta"

            [project]
            name = "{name}"
            version = "1.2.3"

            [project.entry-points.firelink]
            {module.split("_", 1)[1]} = "{module}.plugin"

            [tool.setuptools]
            packages = ["{module}"]
            """
        )
    )
    return src


def _pip_install(src: Path, target: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation",
         "--no-index", "--target", str(target), str(src)],
        check=True, capture_output=True, text=True,
    )


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Two throwaway distributions, each pip-installed into its own folder (not the venv)."""
    root = tmp_path_factory.mktemp("dists")
    good = root / "site-good"
    broken = root / "site-broken"
    _pip_install(_distribution(root, "firelink-acme", "firelink_acme", PLUGIN_MODULE), good)
    _pip_install(
        _distribution(root, "firelink-broken", "firelink_broken", "import no_such_dependency_for_firelink\n"),
        broken,
    )
    return {"good": good, "broken": broken}


def _firelink(*args: str, pythonpath: list[Path], cwd: Path | None = None, **env: str) -> subprocess.CompletedProcess:
    environ = {k: v for k, v in os.environ.items() if k != "FIRELINK_PLUGINS"}
    environ["PYTHONPATH"] = os.pathsep.join(str(p) for p in pythonpath)
    environ.update(env)
    return subprocess.run(
        [str(FIRELINK), *args], capture_output=True, text=True, env=environ, cwd=cwd, timeout=120
    )


def test_installed_distribution_is_listed_merged_and_validated(installed: dict[str, Path], tmp_path: Path) -> None:
    site = [installed["good"]]
    listing = _firelink("plugins", "--json", pythonpath=site)
    report = json.loads(listing.stdout)
    [acme] = [p for p in report["plugins"] if p["distribution"] == "firelink-acme"]
    assert acme == {
        "name": "acme",
        "distribution": "firelink-acme",
        "version": "1.2.3",
        "source": "entry-point",
        "module": "firelink_acme.plugin",
        "provides": {"trigger": ["acme_queue"]},
    }
    text = _firelink("plugins", pythonpath=site).stdout
    assert "acme  [firelink-acme 1.2.3]  source=entry-point" in text
    assert "    trigger acme_queue  Messages of an ACME queue" in text

    schema = json.loads(_firelink("schema", pythonpath=site).stdout)
    assert "acme_queue" in schema["$defs"]["trigger_type"]["enum"]
    assert schema["$defs"]["trigger.acme_queue"]["required"] == ["queue"]

    good = tmp_path / "good.yaml"
    good.write_text("jobs:\n  - name: orders\n    trigger: acme_queue\n    queue: orders\n    batch: 10\n")
    result = _firelink("validate", str(good), pythonpath=site)
    assert (result.returncode, result.stdout) == (0, f"{good}: valid\n"), result.stderr

    bad = tmp_path / "bad.yaml"
    bad.write_text(
        "jobs:\n  - name: orders\n    trigger: acme_queue\n    queu: orders\n"
        "  - name: refunds\n    trigger: acme_queue\n    queue: the refunds\n    batch: 0\n"
    )
    result = _firelink("validate", str(bad), pythonpath=site)
    assert result.returncode == 1
    assert result.stdout.splitlines() == [
        f"{bad}:4:5: job 'orders': unknown key 'queu' in job 'orders' (did you mean 'queue'?)",
        f"{bad}:8:12: job 'refunds': expected at least 1, got 0",
    ]
    # The plugin's check() runs once its schema passes.
    bad.write_text("jobs:\n  - name: refunds\n    trigger: acme_queue\n    queue: the refunds\n")
    result = _firelink("validate", str(bad), pythonpath=site)
    assert result.stdout == f"{bad}:4:12: job 'refunds': a queue name has no spaces\n"

    # Without the distribution, the type is unknown.
    result = _firelink("validate", str(good), pythonpath=[])
    assert result.returncode == 1
    assert "3:14: job 'orders': unknown trigger type 'acme_queue'" in result.stdout


def test_plugin_that_fails_to_import_names_plugin_and_distribution(installed: dict[str, Path], tmp_path: Path) -> None:
    site = [installed["broken"]]
    result = _firelink("plugins", pythonpath=site)
    assert result.returncode == 1
    assert (
        "error: plugin 'broken' (distribution firelink-broken): cannot be imported (firelink_broken.plugin): "
        "ModuleNotFoundError: No module named 'no_such_dependency_for_firelink'"
    ) in result.stderr
    assert "Traceback" not in result.stderr
    config = tmp_path / "c.yaml"
    config.write_text("jobs: []\n")
    result = _firelink("validate", str(config), pythonpath=site)
    assert result.returncode == 0, result.stdout  # a config that uses nothing of it: a warning
    assert "firelink: warning: plugin 'broken' (distribution firelink-broken): cannot be imported" in result.stderr


INHOUSE = '''
from firelink_core.plugin_api import hookimpl
from firelink_core.abc import Trigger


class InhouseTrigger(Trigger):
    type_name = "inhouse_{n}"
    config_schema = {{"type": "object", "properties": {{"topic": {{"type": "string", "description": "Topic."}}}}}}

    async def start(self):
        pass

    async def stop(self):
        pass


@hookimpl
def firelink_register_triggers():
    return [InhouseTrigger]
'''


@pytest.fixture
def inhouse(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> str:
    """An unpackaged in-house plugin module on sys.path; its name is unique per test."""
    name = f"inhouse_{request.node.name.replace('[', '_').replace(']', '').replace('-', '_')}"
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / f"{name}.py").write_text(INHOUSE.format(n=name))
    monkeypatch.syspath_prepend(str(tmp_path / "lib"))
    monkeypatch.delenv("FIRELINK_PLUGINS", raising=False)
    return name


def _config(tmp_path: Path, trigger: str, plugins: str = "") -> Path:
    path = tmp_path / "c.yaml"
    path.write_text(f"{plugins}jobs:\n  - name: a\n    trigger: inhouse_{trigger}\n    topic: t\n")
    return path


def test_import_path_from_the_config(inhouse: str, tmp_path: Path) -> None:
    path = _config(tmp_path, inhouse, f"plugins: [{inhouse}]\n")
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 0, result.output


def test_import_path_from_the_option(inhouse: str, tmp_path: Path) -> None:
    path = _config(tmp_path, inhouse)
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 1 and f"unknown trigger type 'inhouse_{inhouse}'" in result.output
    result = CliRunner().invoke(main, ["validate", "--plugin", inhouse, str(path)])
    assert result.exit_code == 0, result.output


def test_import_path_from_the_environment(inhouse: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = _config(tmp_path, inhouse)
    monkeypatch.setenv("FIRELINK_PLUGINS", inhouse)
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 0, result.output
    listing = json.loads(CliRunner().invoke(main, ["plugins", "--json"]).stdout)
    [info] = [p for p in listing["plugins"] if p["name"] == inhouse]
    assert info["source"] == "env" and info["provides"] == {"trigger": [f"inhouse_{inhouse}"]}


def test_missing_config_plugin_is_located_at_its_entry(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FIRELINK_PLUGINS", raising=False)
    path = tmp_path / "c.yaml"
    path.write_text("plugins:\n  - my_company.no_such_plugin\njobs: []\n")
    result = CliRunner().invoke(main, ["validate", str(path)])
    assert result.exit_code == 1
    assert result.stdout.startswith(
        f"{path}:2:5: plugin 'my_company.no_such_plugin': cannot be imported: ModuleNotFoundError"
    )


def _claiming(name: str) -> types.ModuleType:
    module = types.ModuleType(name)

    class Claim(Trigger):
        type_name = "cron"

    module.firelink_register_triggers = hookimpl(lambda: [Claim])  # type: ignore[attr-defined]
    return module


def test_a_type_claimed_twice_names_both_plugins() -> None:
    # Only the claims and the storage a config without ``storage:`` defaults to.
    plugins = fresh_plugins(
        _claiming("first_claim"), _claiming("second_claim"), "firelink_core.builtin.sqlite", builtins=False
    )
    [error] = plugins.errors
    others = {"first_claim", "second_claim"} - {error.plugin}
    assert len(others) == 1  # the error names one plugin, its message the other
    assert f"trigger type 'cron' is already provided by plugin {others.pop()!r}" in error.message
    [reported] = validate_text("jobs: []\n", "c.yaml", plugins=plugins)
    assert (reported.file, reported.code) == ("c.yaml", "plugin")
    assert "'second_claim'" in reported.message and "'first_claim'" in reported.message


def test_first_party_plugin_installed_but_broken_is_not_told_to_install() -> None:
    from firelink_core.plugins import PluginError

    plugins = fresh_plugins()
    plugins.errors.append(
        PluginError("docker", "firelink-docker", "cannot be imported (firelink_docker.plugin): ImportError: x")
    )
    text = "jobs:\n  - name: a\n    executor: {type: docker, image: busybox}\n"
    messages = [e.message for e in validate_text(text, "c.yaml", plugins=plugins)]
    assert messages == [
        "plugin 'docker' (distribution firelink-docker): cannot be imported (firelink_docker.plugin): ImportError: x",
        "executor type 'docker' needs the firelink-docker plugin, which is installed but failed to load"
        " (see its error)",
    ]


# --------------------------------------------------------------------------- scheme routing and default types


def _fetchers() -> types.ModuleType:
    """A plugin whose ``fetch`` trigger is served by one class per ``source:`` scheme."""
    module = types.ModuleType("fetchers")

    class FtpFetch(Trigger):
        type_name = "fetch"
        schemes = ("ftp",)
        config_schema = {"type": "object", "properties": {
            "source": {"type": "string", "description": "The URL."},
            "passive": {"type": "boolean", "description": "Passive mode."},
        }}

    class HttpFetch(Trigger):
        type_name = "fetch"
        schemes = ("http", "https")
        config_schema = {"type": "object", "properties": {
            "source": {"type": "string", "description": "The URL."},
            "etag": {"type": "boolean", "description": "Skip unchanged bodies."},
        }}

    module.firelink_register_triggers = hookimpl(lambda: [FtpFetch, HttpFetch])  # type: ignore[attr-defined]
    module.classes = (FtpFetch, HttpFetch)  # type: ignore[attr-defined]
    return module


def test_any_trigger_type_declaring_schemes_is_routed_by_the_source_scheme() -> None:
    fetchers = _fetchers()
    ftp, http = fetchers.classes
    plugins = fresh_plugins(fetchers)
    assert plugins.errors == []
    assert plugins.trigger_class("fetch", "ftp://host/dir/") is ftp
    assert plugins.trigger_class("fetch", "https://host/feed") is http
    assert plugins.trigger_class("fetch", "gopher://host/") is None
    assert plugins.trigger_schemes("fetch") == ["ftp", "http", "https"]
    assert "fetch" in plugins.trigger_types() and plugins.provider("trigger", "fetch:ftp").name == "fetchers"

    def messages(trigger: str) -> list[str]:
        return [e.message for e in validate_text(f"jobs:\n  - {{name: a, {trigger}}}\n", plugins=plugins)]

    assert messages("trigger: fetch, source: 'ftp://h/d', passive: true") == []
    assert messages("trigger: fetch, source: 'http://h/d', passive: true") == [
        "unknown key 'passive' in job 'a' ('passive' is an option of trigger: fetch with an ftp:// source)"
    ]
    assert messages("trigger: fetch") == ["missing required key 'source' for trigger 'fetch'"]
    assert messages("trigger: fetch, source: 'gopher://h/'") == [
        "no installed plugin fetches gopher:// sources (known: ftp://, http://, https://)"
    ]


def test_the_merged_schema_selects_options_by_scheme_for_any_routed_type() -> None:
    import jsonschema

    from firelink_core.config import merged_schema

    validator = jsonschema.Draft202012Validator(merged_schema(fresh_plugins(_fetchers())))

    def errors(job: dict) -> list[str]:
        return [e.message for e in validator.iter_errors({"jobs": [{"name": "a", **job}]})]

    assert errors({"trigger": "fetch", "source": "ftp://h/", "passive": True}) == []
    assert errors({"trigger": "fetch", "source": "https://h/", "etag": True}) == []
    assert errors({"trigger": "fetch", "source": "https://h/", "passive": True})


def test_a_class_without_schemes_for_a_routed_type_is_refused() -> None:
    fetchers = _fetchers()
    plain = types.ModuleType("plain_fetch")

    class PlainFetch(Trigger):
        type_name = "fetch"

    plain.firelink_register_triggers = hookimpl(lambda: [PlainFetch])  # type: ignore[attr-defined]
    plugins = fresh_plugins(fetchers, plain)
    [error] = plugins.errors
    assert error.plugin == "plain_fetch" and "PlainFetch declares no schemes" in error.message
    assert plugins.trigger_class("fetch", "ftp://h/") is fetchers.classes[0]


def _default_executor(name: str) -> types.ModuleType:
    """A plugin declaring ``name`` the default executor type (and, when asked, registering it)."""
    module = types.ModuleType("default_" + name)
    module.firelink_default_type = hookimpl(  # type: ignore[attr-defined]
        lambda kind: name if kind == "executor" else None
    )
    return module


def _executor_named(name: str) -> types.ModuleType:
    from firelink_core.abc import Executor

    class NamedExecutor(Executor):
        type_name = name

        async def run(self, request: Any, reporter: Any) -> Any:
            raise NotImplementedError  # never run: these tests only build configs

    module = types.ModuleType(name + "_plugin")
    module.firelink_register_executors = hookimpl(lambda: [NamedExecutor])  # type: ignore[attr-defined]
    return module


def test_a_plugin_can_change_the_default_executor() -> None:
    from firelink_core.config import merged_schema, parse_config

    plugins = fresh_plugins(_default_executor("elsewhere"), _executor_named("elsewhere"))
    assert plugins.default_type("executor") == "elsewhere"
    assert plugins.default_type("storage") == "sqlite"  # the built-in answers what the plugin leaves
    text = "jobs:\n  - {name: a, trigger: manual}\n  - {name: b, trigger: manual, executor: subprocess}\n"
    config, _ = parse_config(text, plugins=plugins)
    assert [job.executor.type for job in config.jobs] == ["elsewhere", "subprocess"]
    assert config.storage.type == "sqlite"
    assert merged_schema(plugins)["$defs"]["job_keys"]["properties"]["executor"]["default"] == "elsewhere"


def test_without_a_default_type_a_config_must_name_one() -> None:
    manual = "firelink_core.builtin.manual"
    plugins = fresh_plugins(manual, builtins=False)
    assert plugins.default_type("executor") is None and plugins.default_type("storage") is None
    text = "jobs:\n  - name: a\n    trigger: manual\n"
    assert [(e.line, e.job, e.message) for e in validate_text(text, "c.yaml", plugins=plugins)] == [
        (1, None, "no storage configured, and no installed plugin declares a default storage type: set 'storage:'"),
        (2, "a", "no executor configured, and no installed plugin declares a default executor type: "
                 "set 'executor:' in the job or in defaults"),
    ]
    broken = fresh_plugins(manual, _default_executor("nowhere"), "firelink_core.builtin.memory", builtins=False)
    text = "storage: memory\njobs:\n  - name: a\n    trigger: manual\n"
    assert [e.message for e in validate_text(text, "c.yaml", plugins=broken)] == [
        "no executor configured, and the default executor type 'nowhere' is not installed: "
        "set 'executor:' in the job or in defaults"
    ]
