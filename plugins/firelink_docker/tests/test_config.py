"""The docker executor's options as `firelink validate` sees them: schema and located checks."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import jsonschema
from firelink_docker._options import parse_memory, parse_volume
from firelink_docker.executor import DockerExecutor

from firelink_core import make_plugins, validate_files


def test_schema_is_valid_and_documented():
    jsonschema.Draft202012Validator.check_schema(DockerExecutor.config_schema)
    for name, prop in DockerExecutor.config_schema["properties"].items():
        assert prop.get("description"), name


def test_installed_plugin_provides_the_docker_executor():
    plugins = make_plugins(env=False)
    assert plugins.executors()["docker"] is DockerExecutor
    assert plugins.provider("executor", "docker").distribution == "firelink-docker"


def test_memory_sizes():
    assert parse_memory("256m") == 256 * 1024**2
    assert parse_memory("1g") == parse_memory("1GiB") == 1024**3
    assert parse_memory(1048576) == 1048576
    for bad in ("lots", "-1m", "", True, 0):
        try:
            parse_memory(bad)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} accepted")


def validate(tmp_path, jobs: str) -> list[str]:
    path = tmp_path / "firelink.yaml"
    path.write_text("jobs:\n" + textwrap.indent(textwrap.dedent(jobs), "  "))
    return [f"{e.line}: {e.message}" for e in validate_files([path])]


def test_bad_options_are_located(tmp_path):
    errors = validate(
        tmp_path,
        """\
        - name: a
          trigger: manual
          executor:
            type: docker
            image: busybox
            memory: lots
            volumes: ["nocolon", {source: ./x, target: rel}]
            working_dir: relative
            labels: {firelink.job: x}
            command: "echo 'unbalanced"
            stop_signal: SIGNOPE
            docker_host: localhost:2375
        - name: b
          trigger: manual
          executor: {type: docker, image: "busybox", memory: 2m}
        """,
    )
    expected = [
        "7: expected a size like",
        "8: expected host:container or host:container:ro, got 'nocolon'",
        "8: the container path must be absolute, got 'rel'",
        "9: must be an absolute path in the container",
        "10: firelink.* labels are reserved",
        "11: cannot split",
        "12: not a signal name or number: 'SIGNOPE'",
        "13: expected a URL like unix://",
        "16: Docker needs a memory limit of at least 6m",
    ]
    assert len(errors) == len(expected), errors
    for error, start in zip(sorted(errors, key=lambda e: int(e.split(":")[0])), expected, strict=True):
        assert error.startswith(start), (error, start)


def test_schema_errors_are_located(tmp_path):
    errors = validate(
        tmp_path,
        """\
        - name: a
          trigger: manual
          executor: {type: docker, image: busybox, memroy: 1g, pull: sometimes}
        - name: b
          trigger: manual
          executor: {type: docker}
        """,
    )
    assert any(e.startswith("4: ") and "memroy" in e for e in errors), errors
    assert any(e.startswith("4: ") and "sometimes" in e for e in errors), errors
    assert any(e.startswith("7: ") and "image" in e for e in errors), errors


def test_valid_options_pass_even_with_unset_variables(tmp_path):
    errors = validate(
        tmp_path,
        """\
        - name: a
          trigger: manual
          command: python etl.py
          executor:
            type: docker
            image: "${ETL_IMAGE}"
            docker_host: "${ETL_DOCKER_HOST}"
            volumes: ["./data:/data:ro", "cache:/cache", {source: /srv, target: /srv, read_only: true}]
            memory: 512m
            cpus: 1.5
            network: none
            user: "1000:1000"
            working_dir: /work
            pull: never
            stop_signal: SIGINT
            env: {MODE: batch, LEVEL: 3}
        """,
    )
    assert errors == []


def test_volume_specs(tmp_path):
    assert parse_volume("./data:/data:ro", tmp_path) == f"{tmp_path}/data:/data:ro"
    assert parse_volume({"source": "cache", "target": "/cache"}, tmp_path) == "cache:/cache:rw"


def test_validate_and_plugins_never_import_the_docker_sdk(tmp_path):
    """The plugin loads and its options are checked without the SDK: only an attempt imports it."""
    config = tmp_path / "firelink.yaml"
    config.write_text(
        "jobs:\n  - name: a\n    trigger: manual\n    command: [etl]\n"
        "    executor: {type: docker, image: busybox, memory: 64m, volumes: ['./data:/data:ro']}\n"
    )
    script = textwrap.dedent(
        """\
        import sys
        from firelink_core.cli import main
        for argv in (["validate", sys.argv[1]], ["plugins"]):
            sys.argv = ["firelink", *argv]
            try:
                main()
            except SystemExit as exc:
                assert exc.code in (0, None), (argv, exc.code)
        assert "docker" not in sys.modules, "the docker SDK was imported"
        """
    )
    done = subprocess.run([sys.executable, "-c", script, str(config)], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr
