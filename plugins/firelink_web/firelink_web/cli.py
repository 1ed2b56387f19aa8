"""``firelink web-url``: a one-time login link to the dashboard (an entry point of the
``firelink.commands`` group, loaded by the ``firelink`` command line when named)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import click

from firelink_core.plugin_api import Target, locate_options, lock_holder

from .auth import TOKEN_ENV, TOKEN_FILE, load_token, login_code
from .server import URL_FILE

__all__ = ["web_url_cmd"]


@click.command("web-url")
@locate_options
def web_url_cmd(state_dir: Path | None, config_path: Path | None, as_json: bool) -> None:
    """Print a one-time login link to the running daemon's dashboard (firelink-web).

    \b
    The link holds a code signed with the HTTP token (FIRELINK_HTTP_TOKEN, else the
    state directory's http-token); it works once, within 10 minutes, and gives the
    browser a session cookie. Exit code 3 when no HTTP server runs there.
    """
    target = Target(state_dir, config_path)
    url_file = target.state_dir / URL_FILE
    try:
        written = json.loads(url_file.read_text(encoding="utf-8"))
        url = written["url"]
        # a daemon killed with -9 leaves the file: only the lock holder's is current
        current = lock_holder(target.state_dir) == written["pid"]
    except (OSError, ValueError, KeyError, TypeError):
        current = False
    if not current:
        click.echo(
            f"firelink: no HTTP server runs on state directory {target.state_dir}"
            " (start it with `firelink run --http 127.0.0.1:8080` or an http: section)",
            err=True,
        )
        sys.exit(3)
    if not (target.state_dir / TOKEN_FILE).exists() and not _env_token():
        click.echo(f"firelink: the server's token is in {TOKEN_ENV}: set it here too", err=True)
        sys.exit(1)
    token, _configured = load_token(target.state_dir)
    link = f"{url}/login?code={login_code(token)}"
    if as_json:
        click.echo(json.dumps({"url": url, "login": link}))
    else:
        click.echo(link)


def _env_token() -> bool:
    import os

    return bool(os.environ.get(TOKEN_ENV, "").strip())
