"""Options of the S3 watch trigger as `firelink validate` sees them: schema, located errors, offline checks."""

from __future__ import annotations

import subprocess
import sys

import jsonschema
import pytest
from firelink_s3.trigger import S3WatchTrigger

from firelink_core import make_plugins, parse_config, validate_text


def _errors(job_yaml: str) -> list[str]:
    """Located errors as ``"LINE: message"``."""
    text = "jobs:\n" + job_yaml
    errors = validate_text(text, "firelink.yaml")
    return [f"{e.line}: {e.message}" for e in errors]


def test_the_installed_plugin_serves_s3_watch_sources() -> None:
    plugins = make_plugins(env=False)
    assert plugins.errors == []
    assert plugins.trigger_class("watch", "s3://my-bucket/input/") is S3WatchTrigger
    assert plugins.provider("trigger", "watch:s3").distribution == "firelink-s3"


def test_declaring_the_plugin_does_not_import_boto3() -> None:
    code = (
        "import sys; from firelink_core import make_plugins; "
        "p = make_plugins(builtins=(), entry_points=False, env=False, extra=['firelink_s3.plugin']); "
        "assert p.trigger_class('watch', 's3://b/') is not None; "
        "print('boto3' in sys.modules, 'botocore' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]


def test_schema_is_valid_and_documents_every_option() -> None:
    schema = S3WatchTrigger.config_schema
    jsonschema.Draft202012Validator.check_schema(schema)
    for name, prop in schema["properties"].items():
        assert prop.get("description"), name
        if name != "source":
            assert "default" in prop or name in ("endpoint_url", "region", "profile", "queue"), name


def test_the_seed_config_validates_as_written() -> None:
    assert _errors("  - {name: jobB, trigger: watch, source: \"s3://my-bucket/input/\"}\n") == []
    config, _ = parse_config(
        'jobs:\n  - {name: jobB, trigger: watch, source: "s3://my-bucket/input/"}\n', "firelink.yaml"
    )
    (spec,) = config.jobs[0].triggers
    trigger_cls = make_plugins(env=False).trigger_class(spec.type, spec.options["source"])
    assert trigger_cls is S3WatchTrigger


def test_every_option_together_validates() -> None:
    job = """\
  - name: ingest
    trigger: watch
    source: "s3://data.example-1/incoming/"
    patterns: ["*.csv", "*.json"]
    ignore_patterns: ["_tmp/*"]
    endpoint_url: "http://127.0.0.1:9000"
    region: eu-west-3
    profile: etl
    poll: 1m30s
    start_from: beginning
    lookback: 1h
    ordered_keys: true
    command: ["python", "ingest.py"]
  - name: notified
    triggers:
      - {trigger: watch, source: "s3://${BUCKET}/in/", queue: "${QUEUE_URL}"}
"""
    assert _errors(job) == []


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('source: "s3://"', "4: no bucket name in 's3://' (expected s3://BUCKET/PREFIX)"),
        ('source: "s3:///input/"', "4: no bucket name in 's3:///input/'"),
        ('source: "s3://My_Bucket/in/"', "4: invalid bucket name 'My_Bucket': 3 to 63 lowercase letters"),
        ('source: "s3://ab/in/"', "4: invalid bucket name 'ab'"),
        ('source: "s3://192.168.1.10/in/"', "4: invalid bucket name '192.168.1.10': it must not look like an IP address"),
    ],
)
def test_malformed_sources_are_located_errors(line: str, expected: str) -> None:
    errors = _errors(f"  - name: j\n    trigger: watch\n    {line}\n    command: [\"true\"]\n")
    assert len(errors) == 1 and errors[0].startswith(expected), errors


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ('queue: "sqs-queue-name"', "5: expected an http:// or https:// URL, got 'sqs-queue-name'"),
        ('endpoint_url: "localhost:9000"', "5: expected an http:// or https:// URL, got 'localhost:9000'"),
        ("poll: 5 minutes", "5: expected a duration like 30s, 5m or 1h30m, got '5 minutes'"),
        ("poll: 0s", "5: the poll interval must be more than 0"),
        ("lookback: soon", "5: expected a duration like 30s, 5m or 1h30m, got 'soon'"),
        ("start_from: yesterday", "5: expected one of 'now', 'beginning', got 'yesterday'"),
        ("pol: 30s", "5: unknown key 'pol' in job 'j' (did you mean 'poll'?)"),
        ("patterns: '*.csv'", "5: expected a list, got a string"),
    ],
)
def test_bad_options_are_located_errors(line: str, expected: str) -> None:
    errors = _errors(f"  - name: j\n    trigger: watch\n    source: \"s3://good-bucket/in/\"\n    {line}\n")
    assert len(errors) == 1 and errors[0].startswith(expected), errors


def test_queue_with_ordered_keys_is_contradictory() -> None:
    errors = _errors(
        '  - name: j\n    trigger: watch\n    source: "s3://good-bucket/in/"\n'
        '    queue: "https://sqs.eu-west-1.amazonaws.com/123456789012/events"\n    ordered_keys: true\n'
    )
    assert errors == ["6: ordered_keys applies to polling; a trigger with `queue` lists nothing"]


def test_check_needs_no_network_or_credentials() -> None:
    # Hosts that cannot resolve and no credentials anywhere: check() must not care.
    options = {
        "source": "s3://some-bucket/x/", "endpoint_url": "https://s3.invalid", "profile": "missing",
        "queue": "https://sqs.invalid/1/q",
    }
    assert S3WatchTrigger.check(options) == []


def test_patterns_match_keys_relative_to_the_prefix() -> None:
    from firelink_s3._options import parse_options

    opts = parse_options({"source": "s3://bkt/in/", "patterns": ["*.csv", "raw/*"], "ignore_patterns": ["*_tmp*"]})
    assert opts.wants("in/a.csv")
    assert opts.wants("in/deep/er/a.csv")  # * crosses /
    assert opts.wants("in/raw/x.bin")
    assert not opts.wants("in/a.json")
    assert not opts.wants("in/a_tmp.csv")
    assert not opts.wants("out/a.csv")
    assert not opts.wants("inside/a.csv")
    assert parse_options({"source": "s3://bkt"}).wants("anything/at/all")
