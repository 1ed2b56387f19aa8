"""``firelink validate``, ``schema`` and ``plugins``: exit codes, output formats, a real subprocess."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from firelink_core.cli import main

FIRELINK = Path(sys.executable).parent / "firelink"

VALID = """\
jobs:
  - name: extract
    trigger: cron
    schedule: "0 3 * * *"
    command: [python, extract.py]
  - name: load
    trigger: manual
    depends_on: [extract]
"""

INVALID = """\
jobs:
  - name: extract
    trigger: cron
    schedul: "0 3 * * *"
  - name: load
    trigger: manual
    depends_on: [extrac]
"""


@pytest.fixture(autouse=True)
def _no_env_plugins(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FIRELINK_PLUGINS", raising=False)


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    (tmp_path / "good.yaml").write_text(VALID)
    (tmp_path / "bad.yaml").write_text(INVALID)
    return {"good": tmp_path / "good.yaml", "bad": tmp_path / "bad.yaml"}


def run(*args: str) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, list(args), catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr


def test_valid_file_exits_0(files: dict[str, Path]) -> None:
    code, out, _err = run("validate", str(files["good"]))
    assert code == 0
    assert out == f"{files['good']}: valid\n"


def test_invalid_file_exits_1_with_every_problem_located(files: dict[str, Path]) -> None:
    code, out, err = run("validate", str(files["good"]), str(files["bad"]))
    assert code == 1
    bad = files["bad"]
    assert out.splitlines() == [
        f"{files['good']}: valid",
        f"{bad}:4:5: job 'extract': unknown key 'schedul' in job 'extract' (did you mean 'schedule'?)",
        f"{bad}:7:18: job 'load': depends on unknown job 'extrac' (did you mean 'extract'?)",
    ]
    assert "2 problems in 1 file" in err


def test_usage_errors_exit_2(files: dict[str, Path], tmp_path: Path) -> None:
    code, _out, err = run("validate", str(tmp_path / "missing.yaml"))
    assert code == 2 and "does not exist" in err
    code, _out, err = run("validate", "--format", "xml", str(files["good"]))
    assert code == 2 and "xml" in err
    code, _out, _err = run("validate")
    assert code == 2


def test_json_format(files: dict[str, Path]) -> None:
    code, out, _err = run("validate", "--format", "json", str(files["good"]), str(files["bad"]))
    assert code == 1
    report = json.loads(out)
    assert report["valid"] is False
    good, bad = report["files"]
    assert good == {"file": str(files["good"]), "valid": True, "errors": []}
    assert bad["valid"] is False
    assert bad["errors"][0] == {
        "file": str(files["bad"]),
        "line": 4,
        "column": 5,
        "job": "extract",
        "code": "unknown-key",
        "message": "unknown key 'schedul' in job 'extract' (did you mean 'schedule'?)",
    }
    assert [e["code"] for e in bad["errors"]] == ["unknown-key", "unknown-job"]


def test_github_format(files: dict[str, Path]) -> None:
    code, out, _err = run("validate", "--format", "github", str(files["bad"]))
    assert code == 1
    name = str(files["bad"]).replace(":", "%3A").replace(",", "%2C")
    assert out.splitlines() == [
        f"::error file={name},line=4,col=5,title=firelink validate::job 'extract': unknown key 'schedul'"
        " in job 'extract' (did you mean 'schedule'?)",
        f"::error file={name},line=7,col=18,title=firelink validate::job 'load': depends on unknown job"
        " 'extrac' (did you mean 'extract'?)",
    ]


def test_valid_json_and_github_exit_0(files: dict[str, Path]) -> None:
    code, out, _err = run("validate", "--format", "json", str(files["good"]))
    assert code == 0 and json.loads(out)["valid"] is True
    code, out, _err = run("validate", "--format", "github", str(files["good"]))
    assert code == 0 and out == ""


def test_schema_command_prints_the_merged_schema() -> None:
    code, out, _err = run("schema")
    assert code == 0
    schema = json.loads(out)
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    assert "cron" in schema["$defs"]["trigger_type"]["enum"]
    assert "schedule" in schema["$defs"]["trigger.cron"]["properties"]


def test_plugins_command_lists_builtins_and_what_they_provide() -> None:
    code, out, _err = run("plugins", "--json")
    report = json.loads(out)
    by_name = {p["name"]: p for p in report["plugins"]}
    assert by_name["firelink.webhook"]["provides"] == {"notifier": ["webhook"]}
    assert by_name["firelink.webhook"]["distribution"] == "firelink-core"
    assert by_name["firelink.webhook"]["source"] == "builtin"
    assert code == (1 if report["errors"] else 0)
    code, out, _err = run("plugins")
    assert "firelink.webhook  [firelink-core " in out and "    notifier webhook" in out


def test_real_subprocess_of_the_installed_script(files: dict[str, Path]) -> None:
    env = dict(os.environ)
    env.pop("FIRELINK_PLUGINS", None)
    good = subprocess.run(
        [str(FIRELINK), "validate", str(files["good"])], capture_output=True, text=True, env=env
    )
    assert (good.returncode, good.stdout) == (0, f"{files['good']}: valid\n"), good.stderr
    bad = subprocess.run(
        [str(FIRELINK), "validate", "--format", "github", str(files["bad"])],
        capture_output=True, text=True, env=env,
    )
    assert bad.returncode == 1, bad.stderr
    assert bad.stdout.startswith("::error file=") and "line=4,col=5" in bad.stdout
    assert "Traceback" not in bad.stderr
    missing = subprocess.run([str(FIRELINK), "validate", "nope.yaml"], capture_output=True, text=True, env=env)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr


def test_yaml_error_is_located_not_a_traceback(tmp_path: Path) -> None:
    path = tmp_path / "broken.yaml"
    path.write_text("jobs:\n  - name: a\n    command: [unclosed\n")
    code, out, err = run("validate", str(path))
    assert code == 1
    assert out.startswith(f"{path}:4:1: ")
    assert "Traceback" not in out + err
