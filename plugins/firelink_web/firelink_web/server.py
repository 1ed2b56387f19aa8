"""The firelink-web service: an aiohttp application run in the daemon's event loop.

With no client connected it schedules nothing: aiohttp's server only arms timers for open
connections (keep-alive, request deadlines), so an idle daemon stays idle.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
from collections.abc import Mapping
from typing import Any, ClassVar

from aiohttp import web

from firelink_core.plugin_api import Service, ServiceError, ServiceHost

from . import api, hooks, pages
from .auth import AUTH_KEY, TOKEN_ENV, Auth, is_loopback, load_token
from .context import CONTEXT, WebContext

__all__ = ["CONTEXT", "URL_FILE", "WebService", "make_app", "parse_listen"]

log = logging.getLogger("firelink.web")

URL_FILE = "http.json"
"""``<state_dir>/http.json``: where the server listens, for ``firelink web-url`` (0600)."""
DEFAULT_PORT = 8080
LISTEN_PATTERN = r"^(\[[0-9A-Fa-f:.]+\]:|[A-Za-z0-9_.-]+:)?[0-9]{1,5}$"


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT``, ``[V6]:PORT`` or a bare ``PORT`` (on 127.0.0.1); ``ValueError`` otherwise."""
    host, sep, port = str(text).rpartition(":")
    if not sep:
        host = "127.0.0.1"
    host = host.strip("[]")
    if not port.isdigit() or not 0 <= int(port) <= 65535 or (sep and not host):
        raise ValueError(f"expected HOST:PORT (or a bare PORT), got {text!r}")
    return host, int(port)


def make_app(context: WebContext, auth: Auth | None = None) -> web.Application:
    """Build the application: the shared context at ``app[CONTEXT]``, then every part's routes."""
    app = web.Application(
        middlewares=[auth.middleware] if auth is not None else [], client_max_size=2 * 1024**2
    )
    app[CONTEXT] = context
    if auth is not None:
        app[AUTH_KEY] = auth
        app.router.add_get("/login", auth.login)
    api.setup(app)
    pages.setup(app)
    hooks.setup(app)
    return app


class WebService(Service):
    """``http: {listen: "127.0.0.1:8080"}``: the API, the dashboard and the webhook endpoint."""

    config_key: ClassVar[str] = "http"
    description: ClassVar[str] = (
        "firelink-web: the HTTP API, the dashboard and the webhook trigger, served by the daemon."
    )
    config_schema: ClassVar[dict[str, Any]] = {
        "type": "object",
        "properties": {
            "listen": {
                "type": "string",
                "pattern": LISTEN_PATTERN,
                "default": f"127.0.0.1:{DEFAULT_PORT}",
                "description": "HOST:PORT (or a bare PORT on 127.0.0.1). A non-loopback host needs"
                f" {TOKEN_ENV} set.",
            },
        },
        "additionalProperties": False,
    }

    def __init__(self, options: Mapping[str, Any], host: ServiceHost) -> None:
        super().__init__(options, host)
        self.context = WebContext(host)
        self._runner: web.AppRunner | None = None
        self.url: str | None = None

    async def start(self) -> None:
        try:
            bind, port = parse_listen(self.options.get("listen") or f"127.0.0.1:{DEFAULT_PORT}")
        except ValueError as exc:
            raise ServiceError(f"http: listen: {exc}") from None
        try:
            token, configured = load_token(self.host.state_dir)
        except OSError as exc:
            raise ServiceError(f"http: cannot read or create the token file: {exc}") from None
        if not is_loopback(bind) and not configured:
            raise ServiceError(
                f"http: refusing to listen on {bind} (not a loopback address) without a configured"
                f" token: set {TOKEN_ENV}, and put a reverse proxy with TLS in front (see docs/web.md)"
            )
        app = make_app(self.context, Auth(token))
        runner = web.AppRunner(app, handle_signals=False, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, bind, port, shutdown_timeout=2.0)
        try:
            await site.start()
        except OSError as exc:
            await runner.cleanup()
            raise ServiceError(
                f"http: cannot listen on {bind}:{port}: {exc.strerror or exc}"
            ) from None
        self._runner = runner
        self.context.start()
        sockets = [s for s in (site._server.sockets if site._server else ()) if s]  # type: ignore[union-attr]
        actual = sockets[0].getsockname()[1] if sockets else port
        shown = f"[{bind}]" if ":" in bind else bind
        self.url = f"http://{shown}:{actual}"
        self._write_url()

    def _write_url(self) -> None:
        path = self.host.state_dir / URL_FILE
        with contextlib.suppress(FileNotFoundError):
            path.unlink()
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump({"url": self.url, "pid": os.getpid()}, f)

    async def stop(self) -> None:
        self.context.stop()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()
        with contextlib.suppress(FileNotFoundError):
            (self.host.state_dir / URL_FILE).unlink()

    def describe(self) -> str | None:
        return f"web on {self.url} (login link: firelink web-url)" if self.url else None
