"""The command line as a user meets it: ``--version``, bare-second durations, the default config,
the ``--plugin`` option, completion and broken plugins; the installed ``firelink`` in a subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest

FIRELINK = str(Path(sys.executable).with_name("firelink"))


def firelink(*args: str, cwd: Path | None = None, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("FIRELINK_")}
    return subprocess.run([FIRELINK, *args], capture_output=True, text=True, cwd=cwd, env={**clean, **(env or {})},
                          timeout=60)


def test_version_names_the_core_and_every_plugin_distribution() -> None:
    result = firelink("--version")
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0] == f"firelink-core {metadata.version('firelink-core')}"
    installed = {ep.dist.name for ep in metadata.entry_points(group="firelink") if ep.dist is not None}
    assert installed, "the first-party plugins are installed in the test venv"
    for dist in installed:
        assert f"{dist} {metadata.version(dist)}" in lines


# --------------------------------------------------------------------------- durations


def test_a_quoted_number_of_seconds_is_a_duration(tmp_path: Path) -> None:
    config = tmp_path / "firelink.yaml"
    config.write_text(
        "jobs:\n"
        "  - name: a\n    trigger: interval\n    every: \"90\"\n    command: ['true']\n    timeout: '2.5'\n"
    )
    result = firelink("validate", str(config))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_bad_duration_still_reads_as_one(tmp_path: Path) -> None:
    config = tmp_path / "firelink.yaml"
    config.write_text("jobs:\n  - name: a\n    trigger: interval\n    every: \"90 s\"\n    command: ['true']\n")
    result = firelink("validate", str(config))
    assert result.returncode == 1
    assert "4:12: job 'a': expected a duration like 30s, 5m or 1h30m, got '90 s'" in result.stdout


def test_the_core_schema_copies_the_one_duration_pattern() -> None:
    import firelink_core
    from firelink_core.durations import DURATION_PATTERN

    text = (Path(firelink_core.__file__).parent / "schema" / "core.schema.json").read_text(encoding="utf-8")
    patterns = set()

    def walk(node: object) -> None:
        if isinstance(node, dict):
            if "ms|s|m|h|d|w" in str(node.get("pattern", "")):
                patterns.add(node["pattern"])
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    walk(json.loads(text))
    assert patterns == {DURATION_PATTERN}


def test_stop_grace_takes_a_bare_number() -> None:
    result = firelink("stop", "--grace", "0", "--state-dir", "/nonexistent/firelink-state")
    assert result.returncode == 3, result.stderr  # the duration parsed; no daemon runs there


# --------------------------------------------------------------------------- the default config


INVALID = "jobs:\n  - name: a\n    trigger: manual\n    command: ['true']\n    timeout: soon\n"


@pytest.mark.parametrize("command", ["run", "validate"])
def test_run_and_validate_find_firelink_yaml_in_the_current_folder(tmp_path: Path, command: str) -> None:
    (tmp_path / "firelink.yaml").write_text(INVALID)
    result = firelink(command, cwd=tmp_path)
    assert result.returncode == 1
    assert "firelink.yaml:5:14: job 'a': expected a duration" in result.stdout + result.stderr


@pytest.mark.parametrize("command", ["run", "validate"])
def test_run_and_validate_find_firelink_config(tmp_path: Path, command: str) -> None:
    (tmp_path / "elsewhere.yaml").write_text(INVALID)
    (tmp_path / "firelink.yaml").write_text("not: used\n")
    result = firelink(command, cwd=tmp_path, env={"FIRELINK_CONFIG": str(tmp_path / "elsewhere.yaml")})
    assert result.returncode == 1
    assert "elsewhere.yaml:5:14: job 'a': expected a duration" in result.stdout + result.stderr


@pytest.mark.parametrize("command", ["run", "validate"])
def test_without_any_config_run_and_validate_say_where_they_looked(tmp_path: Path, command: str) -> None:
    result = firelink(command, cwd=tmp_path)
    assert result.returncode == 2
    assert "set FIRELINK_CONFIG or run where firelink.yaml is" in result.stderr


# --------------------------------------------------------------------------- --plugin


def test_every_plugin_option_reads_the_same() -> None:
    from firelink_core.cli import main

    seen = {}
    for name, command in main.commands.items():
        for param in command.params:
            if "--plugin" in getattr(param, "opts", ()):
                seen[name] = (param.metavar, param.help, param.name)
    assert {"run", "validate", "schema", "plugins"} <= seen.keys()
    assert len(set(seen.values())) == 1, seen


# --------------------------------------------------------------------------- a broken plugin


@pytest.fixture(scope="module")
def broken_site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A folder where pip installed a plugin distribution whose module fails to import."""
    root = tmp_path_factory.mktemp("broken")
    src = root / "src"
    (src / "firelink_shaky").mkdir(parents=True)
    (src / "firelink_shaky" / "__init__.py").write_text("")
    (src / "firelink_shaky" / "plugin.py").write_text("import no_such_dependency_of_shaky\n")
    (src / "pyproject.toml").write_text(
        '[build-system]\nrequires = ["setuptools>=64"]\nbuild-backend = "setuptools.build_meta"\n'
        '[project]\nname = "firelink-shaky"\nversion = "0.3.0"\n'
        '[project.entry-points.firelink]\nshaky = "firelink_shaky.plugin"\n'
        '[tool.setuptools]\npackages = ["firelink_shaky"]\n'
    )
    site = root / "site"
    subprocess.run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-build-isolation", "--no-index",
         "--target", str(site), str(src)],
        check=True, capture_output=True, text=True,
    )
    return site


WARNING = "firelink: warning: plugin 'shaky' (distribution firelink-shaky): cannot be imported"


def test_a_broken_plugin_the_config_does_not_use_is_a_warning(broken_site: Path, tmp_path: Path) -> None:
    config = tmp_path / "firelink.yaml"
    config.write_text("jobs:\n  - name: a\n    trigger: manual\n    command: ['true']\n")
    env = {"PYTHONPATH": str(broken_site)}
    for args in (("validate",), ("graph", str(config)), ("schema",), ("status", "-c", str(config))):
        result = firelink(*args, cwd=tmp_path, env={**env, "FIRELINK_STATE_DIR": str(tmp_path / "state")})
        assert result.returncode in (0, 3), (args, result.stdout, result.stderr)  # status: 3, no daemon
        assert WARNING in result.stderr, args
    as_json = firelink("validate", "--format", "json", cwd=tmp_path, env=env)
    assert as_json.returncode == 0 and "firelink-shaky" in json.loads(as_json.stdout)["warnings"][0]
    github = firelink("validate", "--format", "github", cwd=tmp_path, env=env)
    assert github.returncode == 0 and github.stdout.startswith("::warning title=firelink validate::plugin 'shaky'")
    listed = firelink("--version", env=env)
    assert "firelink-shaky 0.3.0 (broken" in listed.stdout
    # `firelink plugins` is where plugins are diagnosed: it still fails on one that is broken.
    assert firelink("plugins", env=env).returncode == 1


def test_a_type_nobody_provides_names_the_broken_plugin(broken_site: Path, tmp_path: Path) -> None:
    config = tmp_path / "firelink.yaml"
    config.write_text("jobs:\n  - name: a\n    trigger: shaky_queue\n    command: ['true']\n")
    result = firelink("validate", cwd=tmp_path, env={"PYTHONPATH": str(broken_site)})
    assert result.returncode == 1
    assert "3:14: job 'a': unknown trigger type 'shaky_queue'" in result.stdout
    assert "installed but failed to load: 'shaky' (firelink-shaky)" in result.stdout


# --------------------------------------------------------------------------- shell completion


JOBS = "jobs:\n  - {name: nightly, trigger: manual, command: ['true']}\n  - {name: notify, trigger: manual, command: ['true']}\n"


def test_bash_completion_from_the_readme_line_offers_job_names(tmp_path: Path) -> None:
    (tmp_path / "firelink.yaml").write_text(JOBS)
    script = (
        'eval "$(_FIRELINK_COMPLETE=bash_source firelink)"\n'
        "COMP_WORDS=(firelink logs n); COMP_CWORD=2; _firelink_completion firelink\n"
        'printf "%s\\n" "${COMPREPLY[@]}"\n'
    )
    path = f"{Path(FIRELINK).parent}{os.pathsep}{os.environ['PATH']}"
    result = subprocess.run(["bash", "-c", script], capture_output=True, text=True, cwd=tmp_path, timeout=60,
                            env={**os.environ, "PATH": path})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["nightly", "notify"]


@pytest.mark.parametrize("shell", ["zsh", "fish"])
def test_zsh_and_fish_completion_offer_job_names(tmp_path: Path, shell: str) -> None:
    (tmp_path / "firelink.yaml").write_text(JOBS)
    source = firelink(env={"_FIRELINK_COMPLETE": f"{shell}_source"})
    assert "_firelink_completion" in source.stdout
    cword = "2" if shell == "zsh" else "no"
    result = firelink(cwd=tmp_path, env={"_FIRELINK_COMPLETE": f"{shell}_complete",
                                         "COMP_WORDS": "firelink trigger no", "COMP_CWORD": cword})
    assert result.returncode == 0, result.stderr
    assert "notify" in result.stdout and "nightly" not in result.stdout
