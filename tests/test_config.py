"""Valid configs: the seed of the format, building the model (defaults, shorthands), interpolation,
the merged schema as an editor sees it, and a 10,000-job config."""

from __future__ import annotations

from pathlib import Path

import jsonschema
import pytest
import yaml

from firelink_core.config import (
    ConfigInvalid,
    load_config,
    merged_schema,
    parse_config,
    validate_text,
)
from firelink_core.model import Dependency, NotifyRule, Retries
from firelink_core.plugins import Plugins
from firelink_core.testing import fresh_plugins

# The seed: the config the project's users wrote first; it must validate exactly as written.
SEED = """\
jobs:
  - name: jobA
    trigger: cron
    schedule: "0 18 * * *"
  - name: jobB
    trigger: watch
    source: "s3://my-bucket/input/"
  - name: jobC
    trigger: manual
    depends_on: [jobA, jobB]
"""

# The whole format in one file, every key used once (from docs/configuration.md).
FORMAT = """\
# yaml-language-server: $schema=../schema/firelink.schema.json
state_dir: ./state             # default ~/.local/state/firelink; relative paths are relative to the config file's folder
storage: {type: sqlite}        # default: sqlite file <state_dir>/firelink.db; {type: memory} for throwaway runs
plugins: [my_company.firelink_plugin]   # import paths of unpackaged in-house plugins
timezone: Europe/Paris         # default timezone of schedules (default UTC)
max_parallel: 16               # global cap on running attempts (default 64)
notifiers:                     # named notifiers
  ops: {type: webhook, url: "${OPS_WEBHOOK_URL}"}
defaults:                      # any job key except name/trigger/triggers/depends_on and trigger options
  retries: {count: 2, delay: 30s}
jobs:
  - name: jobA                 # ^[A-Za-z0-9][A-Za-z0-9_.-]*$, unique
    trigger: cron              # shorthand: one trigger; its options sit at the job level
    schedule: "0 18 * * *"     # cron trigger option (5 or 6 fields, 6 = seconds FIRST; @daily...; @every 90s)
    jitter: 30s                # cron/interval trigger option
    command: ["python", "etl.py"]   # argv list (no shell) or a string (shlex-split; /bin/sh -c only with shell: true)
    shell: false
    env: {KEY: value}
    cwd: /srv/etl
    executor: subprocess       # or {type: docker, image: busybox, ...executor options}
    timeout: 30m
    kill_grace: 10s            # SIGTERM -> SIGKILL delay for timeouts and shutdown
    retries: 3                 # or {count, delay, backoff: fixed|exponential, max_delay, jitter, on_exit_codes: [..], on_timeout: true}
    timezone: UTC
    max_instances: 1
    overlap: skip              # skip | queue | allow  (a trigger firing while the job runs)
    catchup: latest            # skip | latest | all   (schedule fires missed while the daemon was down)
    misfire_grace: 1h
    recovery: retry            # retry | fail | reattach  (runs a crashed daemon left running)
    depends_on: [a, b]         # or {jobs: [a, b], condition: all_success | all_done | one_failed}
    wait_timeout: 1h
    log: {max_size: 10MB, keep_runs: 100, keep_days: 30}
    notify: [ops]              # or [{notifier: ops, on: [failure, recovered]}]
    enabled: true
    description: text
  - name: multi
    triggers:                  # several triggers: each item is {trigger: TYPE, ...its options}
      - {trigger: interval, every: 90s}
      - {trigger: watch, source: "s3://my-bucket/input/"}   # `watch` is served by the plugin claiming the scheme (s3 -> firelink-s3; plain path or file:// -> firelink-fs)
  - name: jobC
    trigger: manual
    depends_on: [jobA, multi]
"""

# The format example's jobA depends on jobs 'a' and 'b' that it does not define: adding them makes it whole.
FORMAT_COMPLETE = FORMAT.replace(
    "  - name: multi\n", "  - {name: a, trigger: manual}\n  - {name: b, trigger: manual}\n  - name: multi\n"
)


def _has_s3(plugins: Plugins) -> bool:
    return "watch:s3" in plugins.triggers()


@pytest.fixture(scope="module")
def plugins() -> Plugins:
    """The built-ins and firelink-s3's plugin."""
    return fresh_plugins("firelink_s3.plugin")


@pytest.fixture(scope="module")
def bare() -> Plugins:
    return fresh_plugins()


def test_the_seed_validates_exactly_as_written(plugins: Plugins) -> None:
    assert _has_s3(plugins), "firelink-s3 is installed in the development environment"
    assert validate_text(SEED, "firelink.yaml", plugins=plugins) == []


def test_the_seed_without_firelink_s3_says_which_plugin_to_install(bare: Plugins) -> None:
    errors = validate_text(SEED, "firelink.yaml", plugins=bare)
    assert [(e.line, e.column, e.job, e.message) for e in errors] == [
        (7, 13, "jobB", "trigger 'watch' with an s3:// source needs the firelink-s3 plugin: pip install firelink-s3")
    ]


def test_format_example_reports_only_its_undefined_upstream_jobs(plugins: Plugins) -> None:
    errors = validate_text(FORMAT, "firelink.yaml", plugins=plugins)
    got = [(e.line, e.column, e.job, e.message) for e in errors]
    expected = [
        (30, 18, "jobA", "depends on unknown job 'a'"),
        (30, 21, "jobA", "depends on unknown job 'b'"),
    ]
    if not _has_s3(plugins):
        expected.append(
            (39, 34, "multi",
             "trigger 'watch' with an s3:// source needs the firelink-s3 plugin: pip install firelink-s3")
        )
    assert got == expected


def test_format_example_with_its_upstream_jobs_is_valid(plugins: Plugins) -> None:
    assert _has_s3(plugins), "firelink-s3 is installed in the development environment"
    assert validate_text(FORMAT_COMPLETE, "firelink.yaml", plugins=plugins) == []


def test_format_example_without_firelink_s3_says_which_plugin_to_install(bare: Plugins) -> None:
    assert not _has_s3(bare)
    errors = validate_text(FORMAT_COMPLETE, "firelink.yaml", plugins=bare)
    assert [(e.line, e.column, e.message) for e in errors] == [
        (41, 34, "trigger 'watch' with an s3:// source needs the firelink-s3 plugin: pip install firelink-s3")
    ]


def test_format_example_builds_the_model(plugins: Plugins, tmp_path: Path) -> None:
    assert _has_s3(plugins), "firelink-s3 is installed in the development environment"
    path = tmp_path / "conf" / "firelink.yaml"
    path.parent.mkdir()
    path.write_text(FORMAT_COMPLETE)
    config, same = load_config(path, plugins=plugins, environ={"OPS_WEBHOOK_URL": "https://hooks.example/x"})
    assert same is plugins
    assert config.state_dir == (tmp_path / "conf" / "state").resolve()
    assert config.path == path
    assert config.storage.type == "sqlite"
    assert config.max_parallel == 16
    assert config.timezone == "Europe/Paris"
    assert config.plugins == ("my_company.firelink_plugin",)
    assert config.notifiers["ops"].type == "webhook"
    assert config.notifiers["ops"].options == {"url": "https://hooks.example/x"}
    assert config.job_names == ("jobA", "a", "b", "multi", "jobC")

    job = config.job("jobA")
    assert job.source_line == 12
    assert job.command == ("python", "etl.py")
    assert job.env == {"KEY": "value"}
    assert job.cwd == "/srv/etl"
    assert job.executor.type == "subprocess"
    assert (job.timeout, job.kill_grace, job.misfire_grace, job.wait_timeout) == (1800, 10, 3600, 3600)
    # ``retries: 3`` over the default mapping keeps the default's delay.
    assert job.retries == Retries(count=3, delay=30.0)
    assert job.timezone == "UTC"
    assert job.depends_on == Dependency(jobs=("a", "b"))
    assert job.notify == (NotifyRule(notifier="ops", events=("failure",)),)
    assert (job.log.max_bytes, job.log.keep_runs, job.log.keep_days) == (10 * 1024 * 1024, 100, 30)
    assert job.description == "text"
    [trigger] = job.triggers
    assert (trigger.type, trigger.key, dict(trigger.options)) == (
        "cron", "jobA#0", {"schedule": "0 18 * * *", "jitter": "30s"}
    )

    multi = config.job("multi")
    assert [(t.type, t.key, dict(t.options)) for t in multi.triggers] == [
        ("interval", "multi#0", {"every": "90s"}),
        ("watch", "multi#1", {"source": "s3://my-bucket/input/"}),
    ]
    job_c = config.job("jobC")
    assert job_c.retries == Retries(count=2, delay=30.0)  # from defaults
    assert job_c.timezone == "Europe/Paris"  # from the top level
    assert job_c.depends_on == Dependency(jobs=("jobA", "multi"))


def test_defaults_and_shorthand_forms(bare: Plugins, tmp_path: Path) -> None:
    text = """
defaults:
  env: {SHARED: "1", OVERRIDE: default}
  executor: subprocess
  log: {keep_runs: 5}
  timeout: 90
  notify: [ops]
notifiers:
  ops: {type: log}
  pager: {type: log}
jobs:
  - name: plain
    trigger: manual
    command: "echo hello"
  - name: custom
    trigger: manual
    command: echo $HOME | wc -c
    shell: true
    cwd: work
    env: {OVERRIDE: mine, FLAG: true, NUMBER: 3}
    log: {max_size: 1KiB}
    retries: {count: 4, delay: 1m, backoff: exponential, max_delay: 10m, on_exit_codes: [75], on_timeout: false}
    depends_on: {jobs: [plain], condition: one_failed}
    notify: [{notifier: pager, on: [failure, recovered]}, ops]
    enabled: false
  - name: never
"""
    config, _ = parse_config(text, str(tmp_path / "f.yaml"), plugins=bare, state_dir=tmp_path / "explicit")
    assert config.state_dir == (tmp_path / "explicit").resolve()  # the explicit argument wins
    assert config.storage.type == "sqlite"  # the default
    assert config.max_parallel == 64
    plain, custom, never = config.jobs
    assert plain.command == "echo hello" and not plain.shell
    assert plain.env == {"SHARED": "1", "OVERRIDE": "default"}
    assert plain.timeout == 90.0
    assert plain.retries == Retries()
    assert plain.notify == (NotifyRule("ops"),)
    assert plain.log.keep_runs == 5 and plain.log.max_bytes == 10 * 1024 * 1024
    assert plain.cwd is None
    assert custom.shell and custom.command == "echo $HOME | wc -c"
    assert custom.cwd == str((tmp_path / "work").resolve())
    assert custom.env == {"SHARED": "1", "OVERRIDE": "mine", "FLAG": "true", "NUMBER": "3"}
    assert custom.log.max_bytes == 1024 and custom.log.keep_runs == 5  # mappings merge one level
    assert custom.retries == Retries(
        count=4, delay=60.0, backoff="exponential", max_delay=600.0, on_exit_codes=(75,), on_timeout=False
    )
    assert custom.depends_on == Dependency(jobs=("plain",), condition="one_failed")
    assert custom.notify == (NotifyRule("pager", ("failure", "recovered")), NotifyRule("ops"))
    assert custom.enabled is False
    assert never.triggers == ()  # runs only when asked for (firelink trigger, or as an upstream)


def test_yaml_anchors_and_merge_keys(bare: Plugins) -> None:
    text = """
jobs:
  - &common {name: one, trigger: interval, every: 5m, command: [make]}
  - {<<: *common, name: two, every: 1h}
"""
    config, _ = parse_config(text, plugins=bare)
    assert [(j.name, j.command, dict(j.triggers[0].options)) for j in config.jobs] == [
        ("one", ("make",), {"every": "5m"}),
        ("two", ("make",), {"every": "1h"}),
    ]


def test_interpolation_when_loading(bare: Plugins, tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text(
        "notifiers:\n"
        "  ops: {type: webhook, url: \"${HOOK}\"}\n"
        "jobs:\n"
        "  - name: a\n"
        "    trigger: manual\n"
        "    command: [echo, \"${GREETING:-hi} $$HOME\"]\n"
        "    timeout: ${TIMEOUT}\n"
    )
    config, _ = load_config(path, plugins=bare, environ={"HOOK": "https://h.example/1", "TIMEOUT": "5m"})
    assert config.notifiers["ops"].options["url"] == "https://h.example/1"
    assert config.job("a").command == ("echo", "hi $HOME")
    assert config.job("a").timeout == 300
    with pytest.raises(ConfigInvalid) as info:
        load_config(path, plugins=bare, environ={"TIMEOUT": "5m"})
    assert [(e.line, e.column, e.message) for e in info.value.errors] == [
        (2, 29, "environment variable 'HOOK' is not set")
    ]
    with pytest.raises(ConfigInvalid) as info:
        load_config(path, plugins=bare, environ={"HOOK": "https://h.example/1", "TIMEOUT": "soon"})
    assert [(e.line, e.column, e.message) for e in info.value.errors] == [
        (7, 14, "expected a duration like 30s, 5m or 1h30m, got 'soon'")
    ]
    # ``firelink validate`` does not need the variables.
    assert validate_text(path.read_text(), str(path), plugins=bare) == []


def test_unquoted_interpolation_is_typed_quoted_stays_a_string(bare: Plugins) -> None:
    text = (
        "max_parallel: ${PARALLEL}\n"
        "jobs:\n"
        "  - name: a\n"
        "    trigger: manual\n"
        "    enabled: ${ENABLED}\n"
        "    command:\n"
        "      - echo\n"
        "      - \"${PARALLEL}\"\n"
        "      - ${PARALLEL}x\n"
    )
    config, _ = parse_config(text, plugins=bare, interpolate=True, environ={"PARALLEL": "8", "ENABLED": "false"})
    assert config.max_parallel == 8
    assert config.job("a").enabled is False
    assert config.job("a").command == ("echo", "8", "8x")


def test_load_config_raises_every_problem(bare: Plugins, tmp_path: Path) -> None:
    path = tmp_path / "f.yaml"
    path.write_text("jobs:\n  - name: a\n    trigger: cron\n    schedul: x\n  - name: a\n    trigger: manual\n")
    with pytest.raises(ConfigInvalid) as info:
        load_config(path, plugins=bare)
    assert [(e.line, e.code) for e in info.value.errors] == [(4, "unknown-key"), (5, "duplicate-job")]
    assert str(info.value).splitlines()[0].startswith(f"{path}:4:5: job 'a': unknown key 'schedul'")


def test_unreadable_file_is_a_located_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigInvalid) as info:
        load_config(tmp_path / "missing.yaml")
    [error] = info.value.errors
    assert error.code == "io" and "cannot read the config" in error.message


# --------------------------------------------------------------------------- the merged schema


def test_merged_schema_is_valid_2020_12_and_closes_every_mapping(plugins: Plugins) -> None:
    schema = merged_schema(plugins)
    jsonschema.Draft202012Validator.check_schema(schema)
    validator = jsonschema.Draft202012Validator(schema)
    data = yaml.safe_load(FORMAT_COMPLETE)
    if _has_s3(plugins):
        assert list(validator.iter_errors(data)) == []
    data["jobs"][0]["schedul"] = data["jobs"][0].pop("schedule")
    messages = [e.message for e in validator.iter_errors(data)]
    assert any("'schedul'" in m and "unexpected" in m for m in messages), messages


def test_merged_schema_selects_trigger_options_by_type_and_scheme(plugins: Plugins) -> None:
    validator = jsonschema.Draft202012Validator(merged_schema(plugins))

    def errors(job: dict) -> list[str]:
        return [e.message for e in validator.iter_errors({"jobs": [job]})]

    assert errors({"name": "a", "trigger": "interval", "every": "5m"}) == []
    # 'every' is an interval option, not a cron one.
    assert errors({"name": "a", "trigger": "cron", "schedule": "* * * * *", "every": "5m"})
    assert errors({"name": "a", "trigger": "cron"})  # schedule is required
    assert errors({"name": "a", "executor": {"type": "subprocess", "imgae": "x"}})
    triggers = plugins.triggers()
    if "watch:s3" in triggers and "watch:file" in triggers:
        assert errors({"name": "a", "triggers": [{"trigger": "watch", "source": "s3://b/p/"}]}) == []
        s3_only = set(triggers["watch:s3"].config_schema["properties"]) - set(
            triggers["watch:file"].config_schema["properties"]
        )
        # An s3-only option on a file source is flagged: the scheme selects the options.
        option = sorted(s3_only)[0]
        assert errors({"name": "a", "triggers": [{"trigger": "watch", "source": "/in", option: 1}]})


# --------------------------------------------------------------------------- scale


def test_ten_thousand_jobs_validate(bare: Plugins) -> None:
    lines = ["defaults: {retries: 2, timeout: 30m}", "jobs:"]
    for i in range(10_000):
        lines += [
            f"  - name: job{i}",
            "    trigger: cron",
            f'    schedule: "{i % 60} * * * *"',
            f'    command: ["echo", "{i}"]',
        ]
        if i:
            lines.append(f"    depends_on: [job{i - 1}]")
    text = "\n".join(lines) + "\n  - {name: job3, trigger: manual}\n"
    errors = validate_text(text, "big.yaml", plugins=bare)
    assert [(e.line, e.message) for e in errors] == [
        (len(lines) + 1, "duplicate job name 'job3' (first defined on line 17)")
    ]


def test_empty_jobs_and_yaml_edge_cases(bare: Plugins) -> None:
    assert validate_text("jobs:\n", plugins=bare) == []
    [error] = validate_text("jobs: []\n---\njobs: []\n", plugins=bare)
    assert (error.line, error.code) == (2, "yaml") and "single document" in error.message
    [error] = validate_text("jobs:\n  - name: a\n    trigger: manual\n    [x]: 1\n", plugins=bare)
    assert (error.line, error.column, error.message) == (4, 5, "a mapping key must be a plain value")
    # ``on`` is a key, not YAML 1.1's boolean.
    config, _ = parse_config(
        "notifiers: {ops: {type: log}}\njobs:\n  - {name: a, notify: [{notifier: ops, on: [success]}]}\n",
        plugins=bare,
    )
    assert config.job("a").notify == (NotifyRule("ops", ("success",)),)


def test_storage_shorthand(bare: Plugins) -> None:
    config, _ = parse_config("storage: memory\njobs: []\n", plugins=bare)
    assert (config.storage.type, dict(config.storage.options)) == ("memory", {})
    config, _ = parse_config("storage: {type: sqlite, path: x.db}\njobs: []\n", plugins=bare)
    assert config.storage.type == "sqlite" and config.storage.options["path"] == "x.db"
    [error] = validate_text("storage: postgres\njobs: []\n", plugins=bare)
    assert (error.line, error.column) == (1, 10) and error.message.startswith("unknown storage type 'postgres'")


# --------------------------------------------------------------------------- one home per concept


def test_every_cycle_is_reported_once_with_a_real_path(bare: Plugins) -> None:
    # b's first upstream (c) leads back only to b: the path to a goes through d.
    text = """\
jobs:
  - {name: a, trigger: manual, depends_on: [b]}
  - {name: b, trigger: manual, depends_on: [c, d]}
  - {name: c, trigger: manual, depends_on: [b]}
  - {name: d, trigger: manual, depends_on: [a]}
  - {name: x, trigger: manual, depends_on: [y]}
  - {name: y, trigger: manual, depends_on: [x]}
"""
    assert [(e.line, e.job, e.message) for e in validate_text(text, plugins=bare)] == [
        (2, "a", "dependency cycle: a -> b -> d -> a"),
        (6, "x", "dependency cycle: x -> y -> x"),
    ]


def test_the_client_finds_the_state_dir_the_daemon_uses(
    bare: Plugins, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from firelink_core._state_dir import config_state_dir

    monkeypatch.delenv("FL_TEST_UNSET_STATE", raising=False)
    path = tmp_path / "firelink.yaml"
    path.write_text("state_dir: ${FL_TEST_UNSET_STATE:-./st}/$$x\njobs: []\n")
    config, _ = load_config(path, plugins=bare)
    assert config.state_dir == (tmp_path / "st" / "$x").resolve() == config_state_dir(path)
