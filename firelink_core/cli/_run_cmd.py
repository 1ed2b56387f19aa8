"""``firelink run``: validate the config, then run the daemon in the foreground or detached."""

from __future__ import annotations

import sys
from pathlib import Path

import click

from .._daemon import lock_holder, run_daemon, spawn_detached
from ..model import Config
from ..plugins import Plugins
from ..services import missing_section_message, service_classes, with_section
from ._common import (
    address_param,
    default_config_or_exit,
    duration_param,
    fail,
    load_config_or_exit,
    plugin_option,
)

__all__ = ["COMMANDS", "run_cmd"]


@click.command("run")
@click.argument("config", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--state-dir", type=click.Path(file_okay=False, path_type=Path), envvar="FIRELINK_STATE_DIR",
    help="Where state, logs, the lock and the control socket live (default: the config's"
    " state_dir, else ~/.local/state/firelink). Env FIRELINK_STATE_DIR.",
)
@plugin_option
@click.option("--grace", default="30s", show_default=True, callback=duration_param, metavar="DURATION",
              help="How long running jobs get to finish on SIGTERM/SIGINT before they are terminated.")
@click.option("--log-format", type=click.Choice(["text", "json"]), default="text", show_default=True,
              help="Readable lines or one JSON object per line.")
@click.option("--log-level", type=click.Choice(["debug", "info", "warning", "error"], case_sensitive=False),
              default="info", show_default=True)
@click.option("--metrics", "metrics", metavar="HOST:PORT", callback=address_param,
              help="Serve Prometheus metrics at http://HOST:PORT/metrics (a bare PORT binds 127.0.0.1).")
@click.option("--http", "http", metavar="HOST:PORT", callback=address_param,
              help="Serve the HTTP API and dashboard on HOST:PORT (a bare PORT binds 127.0.0.1);"
              " needs the firelink-web package. Overrides the config's http: listen.")
@click.option("--detach", is_flag=True,
              help="Run in the background: pid file and log file in the state directory.")
@click.option("--detached-child", is_flag=True, hidden=True)
def run_cmd(
    config: Path | None,
    state_dir: Path | None,
    extra_plugins: tuple[str, ...],
    grace: float,
    log_format: str,
    log_level: str,
    metrics: tuple[str, int] | None,
    http: tuple[str, int] | None,
    detach: bool,
    detached_child: bool,
) -> None:
    """Run the scheduler daemon on CONFIG until SIGTERM/SIGINT (or `firelink stop`).

    \b
    Without CONFIG: FIRELINK_CONFIG, else ./firelink.yaml.
    The config is validated first, exactly as `firelink validate` does.
    SIGTERM/SIGINT: graceful stop (a second SIGINT stops at once).
    SIGHUP or `firelink reload`: re-read the config (an invalid one is rejected).
    Exit codes: 0 after a graceful stop, 1 invalid config, already running or a
    daemon error, 2 usage error.

    \b
    Example:
      firelink run firelink.yaml --state-dir /var/lib/firelink --grace 1m
    """
    if config is None:
        config = default_config_or_exit("CONFIG")
    config_path = config.absolute()
    override = state_dir.expanduser().absolute() if state_dir is not None else None
    loaded_config, loaded_plugins = load_config_or_exit(config_path, extra_plugins=extra_plugins, state_dir=override)
    listen = _host_port(http) if http is not None else None
    if listen is not None:
        if "http" not in service_classes(loaded_plugins):
            fail(f"--http: {missing_section_message('http')}")
        loaded_config = with_section(loaded_config, "http", {"listen": listen})
    resolved_state = Path(loaded_config.state_dir)

    if detach and not detached_child:
        pid = lock_holder(resolved_state)
        if pid:
            fail(f"firelink is already running on state directory {resolved_state} (pid {pid})")
        args = [str(config_path), "--state-dir", str(resolved_state), "--grace", f"{grace}s",
                "--log-format", log_format, "--log-level", log_level]
        for plugin in extra_plugins:
            args += ["--plugin", plugin]
        if metrics is not None:
            args += ["--metrics", _host_port(metrics)]
        if listen is not None:
            args += ["--http", listen]
        try:
            sys.exit(spawn_detached(args, resolved_state))
        except OSError as exc:
            fail(f"cannot start the daemon in the background: {exc}")

    def reload_config() -> tuple[Config, Plugins]:
        # An invalid new config is the daemon's to report (it keeps the old one): no exit here.
        from ..config import load_config as load

        config, plugins = load(config_path, extra_plugins=extra_plugins, state_dir=override)
        if listen is not None:  # --http keeps overriding the file's http: listen
            config = with_section(config, "http", {"listen": listen})
        return config, plugins

    sys.exit(
        run_daemon(
            loaded_config,
            loaded_plugins,
            config_path=config_path,
            reload_config=reload_config,
            grace=grace,
            log_format=log_format,
            log_level=log_level,
            log_to_file=detached_child,
            metrics=metrics,
        )
    )


def _host_port(address: tuple[str, int]) -> str:
    """``HOST:PORT`` again (an IPv6 host in brackets), as ``address_param`` reads it."""
    host, port = address
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


COMMANDS: list[click.Command] = [run_cmd]
