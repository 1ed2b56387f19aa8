"""``firelink validate``, ``firelink schema`` and ``firelink plugins``: no daemon, no network."""

from __future__ import annotations

import json
from collections.abc import Sequence

import click

from ..config import ConfigError, merged_schema, validate_files
from ..plugins import KINDS, Plugins, make_plugins
from ._common import default_config_or_exit, plugin_option, warn_broken_plugins

__all__ = ["COMMANDS", "validate", "schema", "plugins_cmd"]

def _escape_data(text: str) -> str:
    return text.replace("%", "%25").replace("\r", "%0D").replace("\n", "%0A")


def _escape_property(text: str) -> str:
    return _escape_data(text).replace(":", "%3A").replace(",", "%2C")


def _github(error: ConfigError) -> str:
    """A GitHub Actions workflow command: shows as an annotation on the line in the PR."""
    props = [f"file={_escape_property(error.file)}"]
    if error.line is not None:
        props.append(f"line={error.line}")
        if error.column is not None:
            props.append(f"col={error.column}")
    props.append("title=firelink validate")
    job = f"job {error.job!r}: " if error.job else ""
    return f"::error {','.join(props)}::{_escape_data(job + error.message)}"


@click.command()
@click.argument("files", nargs=-1, type=click.Path(exists=True, dir_okay=False))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "github"]),
    default="text",
    show_default=True,
    help="text: file:line:col: message; json: a report object; github: workflow annotations.",
)
@plugin_option
def validate(files: Sequence[str], fmt: str, extra_plugins: Sequence[str]) -> None:
    """Check config FILES and report every problem with its location.

    Without FILES: FIRELINK_CONFIG, else ./firelink.yaml. Needs no daemon, no network
    and no credentials; ${VARS} are not interpolated.
    Exit status: 0 all valid, 1 any problem, 2 usage error (missing file).

    \b
    Example:
      firelink validate firelink.yaml --format github
    """
    if not files:
        files = [str(default_config_or_exit("FILES"))]
    broken = [e for e in make_plugins(extra=extra_plugins).errors if e.optional]
    by_file: dict[str, list[ConfigError]] = {f: [] for f in files}
    for error in validate_files(files, extra_plugins=extra_plugins):
        by_file.setdefault(error.file, []).append(error)
    total = sum(len(v) for v in by_file.values())
    if fmt == "json":
        report = {
            "valid": total == 0,
            "files": [
                {"file": f, "valid": not errs, "errors": [e.as_dict() for e in errs]} for f, errs in by_file.items()
            ],
            "warnings": [str(e) for e in broken],
        }
        click.echo(json.dumps(report, indent=2))
    elif fmt == "github":
        for error in broken:
            click.echo(f"::warning title=firelink validate::{_escape_data(str(error))}")
        for errs in by_file.values():
            for error in errs:
                click.echo(_github(error))
    else:
        for error in broken:
            click.echo(f"firelink: warning: {error}; skipped", err=True)
        for f, errs in by_file.items():
            for error in errs:
                click.echo(str(error))
            if not errs:
                click.echo(f"{f}: valid")
    if total:
        bad = sum(1 for errs in by_file.values() if errs)
        click.echo(f"{total} problem{'s' * (total != 1)} in {bad} file{'s' * (bad != 1)}", err=True)
        raise SystemExit(1)


def _report_plugin_errors(plugins: Plugins) -> None:
    for error in plugins.errors:
        click.echo(f"error: {error}", err=True)


@click.command()
@plugin_option
def schema(extra_plugins: Sequence[str]) -> None:
    """Print the JSON Schema (draft 2020-12) of the config, with every installed plugin's options.

    Point your editor at it: a first line ``# yaml-language-server: $schema=<path>``.

    \b
    Example:
      firelink schema > firelink.schema.json
    """
    plugins = make_plugins(extra=extra_plugins)
    if any(not e.optional for e in plugins.errors):
        _report_plugin_errors(plugins)
        raise SystemExit(1)
    warn_broken_plugins(plugins)
    click.echo(json.dumps(merged_schema(plugins), indent=2, ensure_ascii=False))


@click.command("plugins")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON object instead of text.")
@plugin_option
def plugins_cmd(as_json: bool, extra_plugins: Sequence[str]) -> None:
    """List loaded plugins, where each came from, and the component types it provides.

    \b
    Example:
      firelink plugins --json


    Exit status 1 when a plugin failed to load or two plugins claim the same type.
    """
    plugins = make_plugins(extra=extra_plugins)
    if as_json:
        click.echo(
            json.dumps(
                {
                    "plugins": [info.as_dict() for info in plugins.infos],
                    "errors": [
                        {"plugin": e.plugin, "distribution": e.distribution, "message": e.message}
                        for e in plugins.errors
                    ],
                },
                indent=2,
            )
        )
    else:
        for info in plugins.infos:
            origin = info.distribution or "-"
            if info.version:
                origin += f" {info.version}"
            click.echo(f"{info.name}  [{origin}]  source={info.source}  module={info.module}")
            for kind in KINDS:
                for key in info.provides.get(kind, []):
                    cls = plugins.components(kind)[key]
                    desc = f"  {cls.description}" if cls.description else ""
                    click.echo(f"    {kind} {key}{desc}")
        _report_plugin_errors(plugins)
    if plugins.errors:
        raise SystemExit(1)


COMMANDS: list[click.Command] = [validate, schema, plugins_cmd]
