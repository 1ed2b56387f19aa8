"""The dependency graph picture: Mermaid and dot text of a config, coloured by last results."""

from __future__ import annotations

from firelink_core._graph import render_dot, render_mermaid
from firelink_core.model import Config, Dependency, JobSpec, TriggerSpec
from firelink_core.records import RunRecord, RunState


def _config() -> Config:
    return Config(
        jobs=(
            JobSpec(name="jobA", triggers=(TriggerSpec("cron", {"schedule": "0 18 * * *"}, "jobA", 0),)),
            JobSpec(name="jobB", triggers=(TriggerSpec("watch", {"source": "s3://my-bucket/input/"}, "jobB", 0),)),
            JobSpec(
                name="jobC",
                triggers=(TriggerSpec("manual", {}, "jobC", 0),),
                depends_on=Dependency(("jobA", "jobB")),
            ),
            JobSpec(name="cleanup", depends_on=Dependency(("jobC",), "one_failed")),
        )
    )


def test_mermaid_shows_every_job_its_trigger_and_conditions_on_edges() -> None:
    text = render_mermaid(_config())
    assert text.startswith("flowchart LR\n")
    assert 'j_jobA["jobA<br/>cron 0 18 * * *"]' in text
    assert 'j_jobB["jobB<br/>watch s3://my-bucket/input/"]' in text
    assert 'j_cleanup["cleanup<br/>after upstream"]' in text
    assert "j_jobA -->|all_success| j_jobC" in text
    assert "j_jobB -->|all_success| j_jobC" in text
    assert "j_jobC -->|one_failed| j_cleanup" in text
    assert "style" not in text


def test_status_colours_nodes_by_last_result() -> None:
    last = {
        "jobA": RunRecord(id="1", job="jobA", state=RunState.SUCCESS),
        "jobC": RunRecord(id="2", job="jobC", state=RunState.FAILED),
    }
    text = render_mermaid(_config(), last)
    assert "style j_jobA fill:#2e7d32" in text
    assert "style j_jobC fill:#c62828" in text
    assert "style j_jobB" not in text  # never ran: uncoloured


def test_dot_is_a_digraph_with_labelled_edges() -> None:
    last = {"jobB": RunRecord(id="1", job="jobB", state=RunState.RUNNING)}
    text = render_dot(_config(), last)
    assert text.startswith("digraph firelink {")
    assert '"jobA" -> "jobC" [label="all_success"];' in text
    assert '"jobC" -> "cleanup" [label="one_failed"];' in text
    assert 'label="jobA\\ncron 0 18 * * *"' in text
    assert 'fillcolor="#1565c0"' in text
    assert text.rstrip().endswith("}")


CONFIG = """\
jobs:
  - name: extract
    trigger: manual
    command: ["true"]
  - name: broken
    trigger: manual
    command: ["false"]
  - name: report
    depends_on: {jobs: [extract, broken], condition: all_done}
    command: ["true"]
"""


def test_graph_command_prints_mermaid_and_dot(tmp_path) -> None:
    from click.testing import CliRunner

    from firelink_core.cli import main

    path = tmp_path / "firelink.yaml"
    path.write_text(CONFIG)
    result = CliRunner().invoke(main, ["graph", str(path)])
    assert result.exit_code == 0, result.output
    assert "j_extract -->|all_done| j_report" in result.output
    assert 'j_report["report<br/>after upstream"]' in result.output
    result = CliRunner().invoke(main, ["graph", str(path), "--format", "dot"])
    assert result.exit_code == 0 and '"broken" -> "report" [label="all_done"];' in result.output


def test_graph_of_an_invalid_config_reports_located_errors(tmp_path) -> None:
    from click.testing import CliRunner

    from firelink_core.cli import main

    path = tmp_path / "firelink.yaml"
    path.write_text(CONFIG.replace("[extract, broken]", "[extract, brokn]"))
    result = CliRunner().invoke(main, ["graph", str(path)])
    assert result.exit_code == 1
    assert f"{path}:9:34: job 'report': depends on unknown job 'brokn'" in result.output


def test_graph_status_colours_by_the_recorded_last_runs(tmp_path) -> None:
    import asyncio

    from click.testing import CliRunner

    from firelink_core.cli import main
    from firelink_core.testing import run_engine

    path = tmp_path / "firelink.yaml"
    path.write_text(CONFIG)

    async def scenario() -> None:
        async with run_engine(CONFIG, tmp_path) as h:
            assert (await h.run("extract")).state is RunState.SUCCESS
            assert (await h.run("broken")).state is RunState.FAILED

    asyncio.run(scenario())
    # the daemon is down: --status reads the runs recorded in the database
    result = CliRunner().invoke(main, ["graph", str(path), "--status", "--state-dir", str(tmp_path)])
    assert result.exit_code == 0, result.output
    assert "style j_extract fill:#2e7d32" in result.output
    assert "style j_broken fill:#c62828" in result.output


def test_readme_shows_the_current_picture_of_the_bundled_example() -> None:
    from pathlib import Path

    from firelink_core.config import load_config

    root = Path(__file__).resolve().parents[1]
    config, _plugins = load_config(root / "examples" / "firelink.yaml", interpolate=False)
    readme = (root / "README.md").read_text()
    assert f"```mermaid\n{render_mermaid(config)}```" in readme, (
        "README's Mermaid block is stale: paste the output of `firelink graph examples/firelink.yaml`"
    )
