"""Who may use the HTTP server: a bearer token, one-time login links, session cookies, CSRF.

- The token is ``FIRELINK_HTTP_TOKEN``, else the content of ``<state_dir>/http-token``,
  generated there owner-only (0600) on first use.
- ``firelink web-url`` prints ``/login?code=...``: a code signed with the token, valid for
  ``LOGIN_TTL`` seconds and accepted once. It becomes a session cookie (HttpOnly,
  SameSite=Strict) signed with the token, valid for ``SESSION_TTL``.
- A request authenticated by the cookie that changes something (any method but GET/HEAD/
  OPTIONS) must carry the CSRF token of its session: the ``csrf_token`` field of a form or
  the ``X-CSRF-Token`` header. A bearer-token request needs none (a browser never adds it).

Nothing here logs or answers the token.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import os
import secrets
import time
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from aiohttp import web

__all__ = [
    "COOKIE_NAME",
    "CSRF_FIELD",
    "CSRF_HEADER",
    "TOKEN_ENV",
    "TOKEN_FILE",
    "Auth",
    "check_csrf",
    "csrf_token",
    "is_loopback",
    "load_token",
    "login_code",
]

TOKEN_ENV = "FIRELINK_HTTP_TOKEN"
TOKEN_FILE = "http-token"
COOKIE_NAME = "firelink_session"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
LOGIN_TTL = 600.0
SESSION_TTL = 12 * 3600.0
PUBLIC_PREFIXES = ("/api/v1/health", "/hooks/", "/static/", "/login")
"""Paths open without authentication (the webhook checks its own signatures)."""
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

SESSION_KEY = "firelink_web_session"
"""``request[SESSION_KEY]``: the session cookie's value when the request came with one."""


def _sign(token: str, message: str) -> str:
    return hmac.new(token.encode(), message.encode(), hashlib.sha256).hexdigest()


def load_token(state_dir: Path, environ: Mapping[str, str] | None = None) -> tuple[str, bool]:
    """The token and whether it was configured (``FIRELINK_HTTP_TOKEN``) rather than generated."""
    environ = os.environ if environ is None else environ
    configured = environ.get(TOKEN_ENV, "").strip()
    if configured:
        return configured, True
    path = state_dir / TOKEN_FILE
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    except FileExistsError:
        token = path.read_text(encoding="utf-8").strip()
        if token:
            return token, False
        path.unlink()
        return load_token(state_dir, environ)
    token = secrets.token_urlsafe(32)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(token + "\n")
    return token, False


def login_code(token: str, now: float | None = None) -> str:
    """A one-time login code for ``/login?code=...`` (what ``firelink web-url`` prints)."""
    issued = int(time.time() if now is None else now)
    nonce = secrets.token_urlsafe(12)
    return f"{issued}.{nonce}.{_sign(token, f'login.{issued}.{nonce}')}"


def is_loopback(host: str) -> bool:
    """Whether ``host`` (an address or ``localhost``) only listens on this machine."""
    if host in ("localhost", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


class Auth:
    """The checks of one server, with its token."""

    def __init__(self, token: str) -> None:
        self._token = token
        self._used: dict[str, float] = {}

    # tokens ------------------------------------------------------------------
    def bearer_ok(self, request: web.Request) -> bool:
        header = request.headers.get("Authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() != "bearer" or not value:
            return False
        return hmac.compare_digest(value.strip().encode(), self._token.encode())

    def session_ok(self, value: str | None, now: float | None = None) -> bool:
        if not value:
            return False
        issued, _, signature = value.partition(".")
        if not issued.isdigit():
            return False
        now = time.time() if now is None else now
        if not 0 <= now - int(issued) <= SESSION_TTL:
            return False
        return hmac.compare_digest(signature, _sign(self._token, f"session.{issued}"))

    def new_session(self) -> str:
        issued = str(int(time.time()))
        return f"{issued}.{_sign(self._token, f'session.{issued}')}"

    def csrf_for(self, session: str) -> str:
        return _sign(self._token, f"csrf.{session}")

    def use_login_code(self, code: str, now: float | None = None) -> bool:
        """Whether ``code`` is a valid login code never used before (it is used up)."""
        now = time.time() if now is None else now
        for nonce, expires in list(self._used.items()):
            if expires < now:
                del self._used[nonce]
        parts = code.split(".")
        if len(parts) != 3 or not parts[0].isdigit():
            return False
        issued, nonce, signature = int(parts[0]), parts[1], parts[2]
        if not hmac.compare_digest(signature, _sign(self._token, f"login.{issued}.{nonce}")):
            return False
        if not -60 <= now - issued <= LOGIN_TTL or nonce in self._used:
            return False
        self._used[nonce] = issued + LOGIN_TTL + 60
        return True

    # the middleware ----------------------------------------------------------
    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        path = request.path
        if path == "/api/v1/health" or path.startswith(PUBLIC_PREFIXES[1:]):
            return await handler(request)
        if self.bearer_ok(request):
            return await handler(request)
        session = request.cookies.get(COOKIE_NAME)
        if self.session_ok(session):
            assert session is not None
            request[SESSION_KEY] = session
            if request.method not in SAFE_METHODS and not await self._csrf_ok(request, session):
                return _refuse(
                    request,
                    403,
                    "csrf",
                    "missing or wrong CSRF token: reload the page and try again",
                )
            return await handler(request)
        if request.headers.get("Authorization"):
            return _refuse(request, 401, "unauthorized", "wrong bearer token")
        return _refuse(
            request,
            401,
            "unauthorized",
            "authentication required: send 'Authorization: Bearer <token>', or open the link"
            " `firelink web-url` prints",
        )

    async def _csrf_ok(self, request: web.Request, session: str) -> bool:
        given = request.headers.get(CSRF_HEADER)
        if given is None and request.content_type in (
            "application/x-www-form-urlencoded",
            "multipart/form-data",
        ):
            form = await request.post()  # cached: the handler reads it again for free
            value = form.get(CSRF_FIELD)
            given = value if isinstance(value, str) else None
        return given is not None and hmac.compare_digest(
            given.encode(), self.csrf_for(session).encode()
        )

    # login -------------------------------------------------------------------
    async def login(self, request: web.Request) -> web.StreamResponse:
        """``GET /login?code=...``: a valid unused code becomes a session cookie, then ``next`` (``/``)."""
        code = request.query.get("code", "")
        if not self.use_login_code(code):
            return _refuse(
                request,
                401,
                "bad-login",
                "this login link is invalid, expired or already used: run `firelink web-url` for a new one",
            )
        target = request.query.get("next", "/")
        if not target.startswith("/") or target.startswith("//"):
            target = "/"
        response = web.HTTPSeeOther(target)
        response.set_cookie(
            COOKIE_NAME,
            self.new_session(),
            max_age=int(SESSION_TTL),
            httponly=True,
            samesite="Strict",
            path="/",
            secure=request.secure,
        )
        raise response


AUTH_KEY: web.AppKey[Auth] = web.AppKey("firelink_web_auth", Auth)
"""``app[AUTH_KEY]``: the server's :class:`Auth`."""


def _refuse(request: web.Request, status: int, code: str, message: str) -> web.Response:
    if request.path.startswith("/api/") or "text/html" not in request.headers.get("Accept", ""):
        return web.json_response({"error": {"code": code, "message": message}}, status=status)
    return web.Response(status=status, text=f"{message}\n", content_type="text/plain")


def csrf_token(request: web.Request) -> str:
    """The CSRF token a form of this request's session must send back (field ``csrf_token``);
    empty for a request without a session (a bearer-token client needs none)."""
    session = request.get(SESSION_KEY)
    if not session:
        return ""
    return request.app[AUTH_KEY].csrf_for(session)


def check_csrf(request: web.Request, form: Mapping[str, Any]) -> bool:
    """Whether ``form`` carries this session's CSRF token (always true for bearer-token requests:
    the middleware has already refused a cookie request without it)."""
    session = request.get(SESSION_KEY)
    if not session:
        return True
    given = form.get(CSRF_FIELD)
    expected = request.app[AUTH_KEY].csrf_for(session)
    return isinstance(given, str) and hmac.compare_digest(given.encode(), expected.encode())
