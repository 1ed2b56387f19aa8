"""Hostile and mistaken configs: near-miss URLs, misplaced keys, unusable names, alias bombs.

Each is checked as a user meets it (``firelink validate`` in a subprocess) and through
``validate_text`` for the exact message.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest

from firelink_core._yaml import MAX_DOCUMENT_BYTES, load_located
from firelink_core.config import ConfigError, validate_text
from firelink_core.plugins import Plugins, source_scheme, source_url_problem
from firelink_core.testing import fresh_plugins

FIRELINK = Path(sys.executable).parent / "firelink"


@pytest.fixture(autouse=True)
def _no_env_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FIRELINK_PLUGINS", raising=False)


@pytest.fixture(scope="module")
def installed() -> Plugins:
    """The builtins and the installed first-party plugins (firelink-fs and firelink-s3), as the CLI sees them."""
    plugins = fresh_plugins(entry_points=True)
    if not {"watch:file", "watch:s3"} <= set(plugins.triggers()):
        pytest.skip("firelink-fs and firelink-s3 are not installed")
    return plugins


def validate(tmp_path: Path, text: str, *, limit_memory: int | None = None) -> tuple[int, str, float]:
    """``firelink validate`` on ``text`` in a real subprocess: exit code, output, seconds."""
    path = tmp_path / "firelink.yaml"
    path.write_text(text)

    def limit() -> None:
        if limit_memory is not None:
            resource.setrlimit(resource.RLIMIT_AS, (limit_memory, limit_memory))

    env = {k: v for k, v in os.environ.items() if k != "FIRELINK_PLUGINS"}
    start = time.monotonic()
    done = subprocess.run(
        [str(FIRELINK), "validate", str(path)], capture_output=True, text=True, timeout=120, env=env,
        preexec_fn=limit,
    )
    return done.returncode, done.stdout + done.stderr, time.monotonic() - start


_LOAD_IN_CHILD = """
import json, sys, time
from firelink_core._yaml import load_located
text = sys.stdin.read()
start = time.perf_counter()
located = load_located(text)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "loaded": located.data is not None,
                  "problems": [[p.line, p.column, p.message] for p in located.problems]}))
"""


def load_in_child(text: str, limit_memory: int = 1 << 30) -> dict[str, object]:
    """``load_located`` in a child process with bounded memory: a bomb that got through
    would fail this test instead of taking the machine's memory."""
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit_memory, limit_memory))

    done = subprocess.run(
        [sys.executable, "-c", _LOAD_IN_CHILD], input=text, capture_output=True, text=True, timeout=60,
        preexec_fn=limit,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout)


def job(name: str, trigger: str) -> str:
    return f"jobs:\n  - name: {name}\n    {trigger}\n    command: [\"true\"]\n"


def messages(errors: list[ConfigError]) -> list[str]:
    return [f"{e.line}:{e.column}: {e.message}" for e in errors]


# --------------------------------------------------------------------------- almost a URL


@pytest.mark.parametrize(
    ("source", "says"),
    [
        ("s3:/bucket/in/", "malformed source 's3:/bucket/in/': s3: URLs start with s3:// (did you mean 's3://bucket/in/'?)"),
        ("s3:bucket", "(did you mean 's3://bucket'?)"),
        ("S3://", "the scheme is written in lower case (s3://)"),
        ("S3://bucket/in/", "(did you mean 's3://bucket/in/'?)"),
        ("file:/x", "malformed source 'file:/x': file: URLs start with file:// (did you mean 'file:///x'?)"),
        ("s3://", "no bucket name in 's3://'"),  # after s3:// the plugin judges
        ("s4://bucket/in/", "no installed plugin watches s4:// sources (known: file:// (or a path), s3://); "
         "did you mean 's3://bucket/in/'?"),
        ("gs://bucket/in/", "no installed plugin watches gs:// sources (known: file:// (or a path), s3://)"),
        ("inbox:new", "a local folder of that name is written ./inbox:new"),
    ],
)
def test_a_source_that_is_almost_a_url_is_a_located_error(installed: Plugins, source: str, says: str) -> None:
    errors = validate_text(job("a", f"trigger: watch\n    source: {source!r}"), plugins=installed)
    assert len(errors) == 1, messages(errors)
    assert (errors[0].line, errors[0].column, errors[0].job) == (4, 13, "a")
    assert says in errors[0].message
    assert "gs://bucket/in/" not in says or "did you mean" not in errors[0].message


@pytest.mark.parametrize("source", ["./a:b", "/srv/in:box/", "inbox", "file:///srv/in/", "s3://bucket/in/"])
def test_paths_with_a_colon_later_and_real_urls_stay_valid(installed: Plugins, source: str) -> None:
    assert validate_text(job("a", f"trigger: watch\n    source: {source!r}"), plugins=installed) == []


def test_near_miss_urls_without_the_plugin_installed_still_say_the_intended_form() -> None:
    errors = validate_text(job("a", "trigger: watch\n    source: 's3:/bucket/in/'"), plugins=fresh_plugins())
    assert [e.message for e in errors] == [
        "malformed source 's3:/bucket/in/': s3: URLs start with s3:// (did you mean 's3://bucket/in/'?)"
    ]


def test_source_scheme_reads_a_scheme_only_before_the_first_colon() -> None:
    assert [source_scheme(s) for s in ("s3://b/", "S3:b", "file:/x", "./a:b", "/x:y", "in")] == [
        "s3", "s3", "file", "file", "file", "file",
    ]
    assert source_url_problem("./a:b") is None and source_url_problem("s3://b/p") is None
    assert source_url_problem("s3:b") == ("s3: URLs start with s3://", "s3://b")


def test_validate_reports_the_near_miss_url(tmp_path: Path, installed: Plugins) -> None:
    code, out, _seconds = validate(tmp_path, job("a", "trigger: watch\n    source: 's3:/bucket/in/'"))
    assert code == 1
    assert "firelink.yaml:4:13: job 'a': malformed source 's3:/bucket/in/'" in out
    assert "did you mean 's3://bucket/in/'?" in out


# --------------------------------------------------------------------------- did you mean


def test_a_misspelt_key_is_matched_against_every_components_options(tmp_path: Path) -> None:
    text = job("a", "trigger: manual\n    schedul: '0 18 * * *'")
    code, out, _seconds = validate(tmp_path, text)
    assert code == 1
    assert (
        "4:5: job 'a': unknown key 'schedul' in job 'a' (did you mean 'schedule'? "
        "'schedule' is an option of trigger: cron)"
    ) in out
    assert "'shell'" not in out


def test_suggestions_prefer_the_jobs_own_options_and_name_every_owner() -> None:
    plugins = fresh_plugins()
    got = [e.message for e in validate_text(job("a", "trigger: cron\n    schedule: '@daily'\n    jiter: 5s"), plugins=plugins)]
    assert got == ["unknown key 'jiter' in job 'a' (did you mean 'jitter'?)"]
    got = [e.message for e in validate_text(job("a", "trigger: manual\n    jitter: 5s"), plugins=plugins)]
    assert got == ["unknown key 'jitter' in job 'a' ('jitter' is an option of trigger: cron or trigger: interval)"]
    got = [e.message for e in validate_text(job("a", "trigger: manual\n    comand: x"), plugins=plugins)]
    assert got == ["unknown key 'comand' in job 'a' (did you mean 'command'?)"]


def test_an_option_of_a_trigger_routed_by_scheme_names_the_scheme(installed: Plugins) -> None:
    errors = validate_text(job("a", "trigger: manual\n    sqs_queue: q"), plugins=installed)
    assert len(errors) == 1
    assert "is an option of trigger: watch with an s3:// source" in errors[0].message


# --------------------------------------------------------------------------- names and env


def test_names_that_cannot_become_file_names_are_refused(tmp_path: Path) -> None:
    long_name = "n" * 201
    text = (
        f"jobs:\n  - name: {long_name}\n    trigger: manual\n    command: [\"true\"]\n"
        "  - name: |\n      trailing\n    trigger: manual\n    command: [\"true\"]\n"
        "  - name: \"bell\\a\"\n    trigger: manual\n    command: [\"true\"]\n"
        f"  - name: {'m' * 200}\n    trigger: manual\n    command: [\"true\"]\n"
    )
    code, out, _seconds = validate(tmp_path, text)
    assert code == 1
    assert "firelink.yaml:2:11: job 'nnnnnnnnnnnnnnnnnnnn'...'nnnnnnnnnnnnnnnnnnnn': invalid job name" in out
    assert "201 characters, at most 200" in out
    assert "firelink.yaml:5:11: job 'trailing\\n': invalid job name 'trailing\\n': it ends in a newline" in out
    assert "firelink.yaml:9:11: job 'bell\\x07': invalid job name 'bell\\x07'" in out
    assert "3 problems" in out


def test_env_names_with_equals_or_nul_and_values_with_nul_are_refused() -> None:
    text = job("a", 'trigger: manual\n    env: {"A=B": "1", "OK": "x\\0y", "": "2", "GOOD": "fine"}')
    errors = validate_text(text, plugins=fresh_plugins())
    assert messages(errors) == [
        "4:11: invalid environment variable name 'A=B': a name is not empty and holds no '=' or NUL",
        "4:29: the value of 'OK' holds a NUL character, which no environment can pass",
        "4:37: invalid environment variable name '': a name is not empty and holds no '=' or NUL",
    ]
    assert all(e.job == "a" for e in errors)
    assert not any("x\\0y" in e.message or "x\0y" in e.message for e in errors)  # values are never shown
    errors = validate_text(
        "defaults:\n  env: {\"X=1\": a}\n" + job("a", "trigger: manual"), plugins=fresh_plugins()
    )
    assert messages(errors) == ["2:9: invalid environment variable name 'X=1': a name is not empty and holds no '=' or NUL"]


# --------------------------------------------------------------------------- malicious YAML


def laughs(levels: int = 9, width: int = 9) -> str:
    """A "billion laughs" document: ``width`` aliases per level, ``levels`` deep."""
    lines = ["a0: &a0 [" + ", ".join(["lol"] * width) + "]"]
    for i in range(1, levels + 1):
        lines.append(f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * width) + "]")
    lines.append(f"jobs:\n  - name: x\n    trigger: manual\n    command: [*a{levels}]")
    return "\n".join(lines) + "\n"


def merge_laughs(levels: int = 9, width: int = 9) -> str:
    """The same bomb through ``<<:`` merge keys, each level with keys of its own."""
    lines = ["m0: &m0 {" + ", ".join(f"k{j}: lol" for j in range(width)) + "}"]
    for i in range(1, levels + 1):
        inner = ", ".join(f"k{j}: *m{i - 1}" for j in range(width))
        lines.append(f"m{i}: &m{i} {{<<: *m{i - 1}, {inner}}}")
    lines.append("jobs: []")
    return "\n".join(lines) + "\n"


def test_an_alias_bomb_is_a_located_error_fast_and_in_bounded_memory(tmp_path: Path) -> None:
    # 1 GiB of address space: today's loader expands 9**9 strings and dies of MemoryError.
    code, out, seconds = validate(tmp_path, laughs(), limit_memory=1 << 30)
    assert code == 1, out
    assert "Traceback" not in out and "MemoryError" not in out
    assert "firelink.yaml:" in out and "an alias bomb?" in out
    assert seconds < 10
    loaded = load_in_child(laughs())
    assert loaded["seconds"] < 1.0 and not loaded["loaded"]
    assert [(line, column) for line, column, _message in loaded["problems"]] == [(6, 1)]


@pytest.mark.parametrize("text", [laughs(levels=12, width=4), merge_laughs(), laughs(levels=3, width=400)])
def test_other_bomb_shapes_are_refused_under_a_second(text: str) -> None:
    loaded = load_in_child(text)
    assert loaded["seconds"] < 1.0 and not loaded["loaded"]
    [(line, _column, message)] = loaded["problems"]
    assert "alias" in message and line is not None


def test_a_document_over_the_size_limit_is_refused_before_parsing() -> None:
    located = load_located("a: " + "x" * MAX_DOCUMENT_BYTES)
    assert located.data is None
    assert [p.message for p in located.problems] == ["the config is 32.0 MiB; firelink reads at most 32 MiB"]


def test_a_honest_config_merging_an_anchor_in_every_job_stays_within_its_budget() -> None:
    located = load_located(honest_config(2_000))
    assert located.problems == []
    assert len(located.data["jobs"]) == 2_000 and located.data["jobs"][-1]["retries"] == {"count": 2, "delay": "5s"}


def test_ordinary_aliases_and_merges_still_load() -> None:
    text = (
        "x-env: &env {A: '1'}\nx-retry: &retry {count: 2}\n"
        + "".join(f"j{i}: {{<<: *retry, env: *env, also: [*env, *env]}}\n" for i in range(200))
    )
    located = load_located(text)
    assert located.problems == []
    assert located.data["j199"] == {"count": 2, "env": {"A": "1"}, "also": [{"A": "1"}, {"A": "1"}]}


def honest_config(jobs: int) -> str:
    """A large, honest config: every job merges settings the first job anchors."""
    parts = ["jobs:\n"]
    for i in range(jobs):
        common = "&common {retries: {count: 2, delay: 5s}, timeout: 1h}" if i == 0 else "*common"
        parts.append(
            f"  - name: job-{i:05d}\n    <<: {common}\n    trigger: cron\n    schedule: '{i % 60} {i % 24} * * *'\n"
            f"    command: ['python', '-c', 'print({i})', '--flag', 'value-{i}']\n"
            f"    description: 'job number {i} of a generated config, with enough words to weigh what real ones do'\n"
            f"    env: {{X: '{i}', Y: 'some value here', Z: another}}\n"
        )
    return "".join(parts)


def test_an_honest_20000_job_config_still_validates(tmp_path: Path) -> None:
    text = honest_config(20_000)
    assert len(text) > 5_000_000
    code, out, _seconds = validate(tmp_path, text)
    assert (code, out.strip()) == (0, f"{tmp_path / 'firelink.yaml'}: valid"), out[-2000:]


def test_deep_nesting_stays_a_located_error(tmp_path: Path) -> None:
    code, out, _seconds = validate(tmp_path, "jobs: " + "[" * 20_000 + "]" * 20_000 + "\n")
    assert code == 1 and "Traceback" not in out
    assert "exceeded maximum nesting depth" in out and "firelink.yaml:1:" in out
