"""The station's guards: the access token, same-origin and CSRF checks, the body cap and the
security headers of every response.

With a token (any host but loopback needs one), every request carries it: the API as
``Authorization: Bearer TOKEN``, the pages as the session cookie the login form sets (an HMAC of
the token, never the token itself). Tokens are compared in constant time; failures are logged
with the client's address and the path, never the token. A state-changing request from another
origin (its ``Origin`` or ``Referer``) is refused, and the pages' forms carry a CSRF token as well.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import secrets
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

from fastapi import HTTPException, Request

logger = logging.getLogger("cryprint.station")

SESSION_COOKIE = "cryprint_session"
CSRF_FIELD = "csrf"
CSRF_HEADER = "x-csrf-token"
UNSAFE_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
SECURITY_HEADERS = {
    "content-security-policy": (
        "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
        "media-src 'self' blob:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; "
        "form-action 'self'; object-src 'none'"
    ),
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "same-origin",
    "cache-control": "no-store",
}


class Guard:
    """The station's secrets: its access token (None on loopback without one) and the CSRF
    token of this run."""

    def __init__(self, token: str | None) -> None:
        self.token = token
        self.csrf = secrets.token_urlsafe(32)

    @property
    def session(self) -> str | None:
        """The session cookie's value: an HMAC of the token."""
        if self.token is None:
            return None
        return hmac.new(
            self.token.encode(), b"cryprint-station-session", hashlib.sha256
        ).hexdigest()

    def bearer(self, request: Request) -> bool:
        """Whether the request carries the token as ``Authorization: Bearer``."""
        scheme, _, given = request.headers.get("authorization", "").partition(" ")
        return (
            self.token is not None
            and scheme.lower() == "bearer"
            and hmac.compare_digest(given.strip().encode(), self.token.encode())
        )

    def allowed(self, request: Request) -> bool:
        if self.token is None:
            return True
        cookie = request.cookies.get(SESSION_COOKIE, "")
        session = self.session or ""
        return self.bearer(request) or hmac.compare_digest(cookie.encode(), session.encode())

    def login(self, given: str) -> bool:
        return self.token is not None and hmac.compare_digest(given.encode(), self.token.encode())


def require_access(request: Request) -> None:
    """Every page and API call: the token, when the station has one."""
    guard: Guard = request.app.state.guard
    if guard.allowed(request):
        return
    client = request.client.host if request.client else "?"
    logger.warning(
        "refused %s %s from %s: no valid token", request.method, request.url.path, client
    )
    if request.url.path.startswith("/api/"):
        raise HTTPException(401, "a valid access token is needed", {"www-authenticate": "Bearer"})
    raise HTTPException(303, "log in first", {"location": "/login"})


def _origin(url: str) -> str:
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc}".lower()


def require_same_origin(request: Request) -> None:
    """A state-changing request whose Origin (or Referer) names another site is refused."""
    if request.method not in UNSAFE_METHODS:
        return
    own = _origin(str(request.base_url))
    claimed = request.headers.get("origin") or request.headers.get("referer")
    if claimed and claimed != "null" and _origin(claimed) != own:
        logger.warning("refused %s %s from origin %s", request.method, request.url.path, claimed)
        raise HTTPException(403, "a request from another site cannot change the ward")
    if claimed == "null":
        raise HTTPException(403, "a request from an opaque origin cannot change the ward")


async def require_csrf(request: Request) -> None:
    """A state-changing page request carries this run's CSRF token (a form field or the
    ``X-CSRF-Token`` header); an API client with the bearer token needs none."""
    if request.method not in UNSAFE_METHODS:
        return
    guard: Guard = request.app.state.guard
    if guard.bearer(request):
        return
    given = request.headers.get(CSRF_HEADER)
    if given is None and "form" in request.headers.get("content-type", ""):
        given = (await request.form()).get(CSRF_FIELD)
    if not isinstance(given, str) or not hmac.compare_digest(given.encode(), guard.csrf.encode()):
        raise HTTPException(403, "the form is stale or from elsewhere: reload the page")


class BodyLimit:
    """ASGI middleware: a body larger than ``limit`` bytes is refused with 413 — at once when
    its Content-Length says so, else as soon as the bytes read pass it (the app then sees the
    client go away, and its own answer is dropped): never read whole."""

    def __init__(self, app: Any, limit: int) -> None:
        self.app, self.limit = app, limit

    async def __call__(
        self, scope: dict, receive: Callable[[], Awaitable[dict]], send: Any
    ) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = dict(scope.get("headers", [])).get(b"content-length", b"")
        if declared.isdigit() and int(declared) > self.limit:
            await _too_large(send, self.limit)
            return
        seen, exceeded = 0, False

        async def counted() -> dict:
            nonlocal seen, exceeded
            if not exceeded:
                message = await receive()
                seen += len(message.get("body", b""))
                exceeded = seen > self.limit
                if not exceeded:
                    return message
            return {"type": "http.disconnect"}

        async def unless_exceeded(message: dict) -> None:
            if not exceeded:
                await send(message)

        try:
            await self.app(scope, counted, unless_exceeded)
        except Exception:
            if not exceeded:
                raise
        if exceeded:
            await _too_large(send, self.limit)


def _size(limit: int) -> str:
    return f"{limit / 2**20:g} MB" if limit >= 2**20 else f"{limit / 2**10:g} KB"


async def _too_large(send: Any, limit: int) -> None:
    body = f'{{"detail": "the upload is larger than the station takes ({_size(limit)})"}}'.encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    headers += [(k.encode(), v.encode()) for k, v in SECURITY_HEADERS.items()]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})
