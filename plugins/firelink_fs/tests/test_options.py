"""Declaring the plugin, its schema, and what ``firelink validate`` says about watch options."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import jsonschema
import pytest
from firelink_fs._options import parse_options
from firelink_fs.trigger import FsWatchTrigger

from firelink_core import make_plugins, validate_text
from firelink_core.testing import TriggerContract, TriggerUnderTest


def _errors(job_yaml: str, config_dir: Path) -> list[str]:
    """Located errors of one job as ``"LINE: message"`` (config file in ``config_dir``)."""
    text = "jobs:\n  - name: ingest\n    command: [cat]\n" + job_yaml
    errors = validate_text(text, str(config_dir / "firelink.yaml"))
    return [f"{e.line}: {e.message}" for e in errors]


def test_the_installed_plugin_serves_local_watch_sources() -> None:
    plugins = make_plugins(env=False)
    assert plugins.errors == []
    for source in ("/srv/in", "relative/in", "file:///srv/in"):
        assert plugins.trigger_class("watch", source) is FsWatchTrigger
    assert plugins.provider("trigger", "watch:file").distribution == "firelink-fs"


def test_declaring_the_plugin_does_not_import_watchdog() -> None:
    code = (
        "import sys; from firelink_core import make_plugins; p = make_plugins(env=False);"
        "cls = p.trigger_class('watch', '/x'); cls.check({'source': '/x'});"
        "print('watchdog' in ' '.join(sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_schema_is_valid_documented_and_its_defaults_are_valid() -> None:
    schema = FsWatchTrigger.config_schema
    jsonschema.Draft202012Validator.check_schema(schema)
    for name, prop in schema["properties"].items():
        assert prop.get("description"), name
        if name not in schema.get("required", ()) and name != "poll":  # poll: absent = inotify
            assert "default" in prop, name
            jsonschema.validate(prop["default"], prop)


def test_defaults_parse_to_the_documented_behaviour(tmp_path: Path) -> None:
    opts = parse_options({"source": "in"}, tmp_path)
    assert opts.root == tmp_path / "in"
    assert (opts.settle, opts.batch, opts.poll, opts.recursive) == (1.0, 0.0, None, False)
    assert opts.events == {"created", "moved"} and opts.catchup and opts.start_from == "now"
    assert opts.matches("report.csv") and opts.matches("sub/report.csv")
    for ignored in (".report.csv.Ab12Cd", "report.csv~", "x.tmp", "x.part", ".x.swp"):
        assert not opts.matches(ignored), ignored
    # the shorthand's catchup: is the job's key; skip there turns the file catch-up off
    assert not parse_options({"source": "in"}, tmp_path, job_catchup="skip").catchup
    assert parse_options({"source": "in", "catchup": True}, tmp_path, job_catchup="skip").catchup


def test_validate_accepts_a_folder_that_does_not_exist_yet(tmp_path: Path) -> None:
    job = "    trigger: watch\n    source: /srv/not-on-this-machine/incoming\n    settle: 2s\n    batch: 1m\n"
    assert _errors(job, tmp_path) == []
    assert _errors("    trigger: watch\n    source: ${DROP_DIR}/in\n", tmp_path) == []


@pytest.mark.parametrize(
    ("job", "expected"),
    [
        ("    trigger: watch\n    source: file://fileserver/share\n", "5: file:// URLs name a local folder"),
        ("    trigger: watch\n    source: firelink.yaml\n", "is not a folder"),
        ("    trigger: watch\n    source: in\n    patterns: [/srv/in/*.csv]\n", "globs match paths relative"),
        ("    trigger: watch\n    source: in\n    settle: soon\n", "6: expected a duration"),
        ("    trigger: watch\n    source: in\n    poll: 0\n", "the poll interval must be more than 0"),
        ("    trigger: watch\n    source: in\n    events: [created, renamed]\n", "6:"),
        ("    trigger: watch\n    source: in\n    recursive: yes please\n", "6:"),
    ],
)
def test_validate_locates_bad_options(tmp_path: Path, job: str, expected: str) -> None:
    (tmp_path / "firelink.yaml").write_text("")
    errors = _errors(job, tmp_path)
    assert len(errors) == 1 and expected in errors[0], errors


def test_unknown_option_is_reported(tmp_path: Path) -> None:
    errors = _errors("    trigger: watch\n    source: in\n    setle: 1s\n", tmp_path)
    assert len(errors) == 1 and "setle" in errors[0], errors


class TestFsWatchTriggerContract(TriggerContract):
    @pytest.fixture
    def trigger_under_test(self, tmp_path: Path) -> TriggerUnderTest:
        inbox = tmp_path / "inbox"
        inbox.mkdir()

        async def fire(trigger: object) -> None:
            (inbox / "contract.csv").write_text("x")

        return TriggerUnderTest(FsWatchTrigger, {"source": "inbox", "settle": "100ms"}, fire)
