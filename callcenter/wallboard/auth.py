"""Who may see the board and who may act on it: sessions, CSRF, tokens, login rate limits.

- A session is a cookie (``cc_session``: HttpOnly, SameSite=Strict, Secure over HTTPS) whose
  value is a JSON payload and its HMAC-SHA256 under ``wallboard.secret_key`` (a random key
  per process when the setting is empty: sessions then end with the process). It names the
  principal, expires, and carries the session's CSRF token. Nothing is stored on the server.
- Every state-changing form carries the CSRF token; the login form, which has no session
  yet, carries a nonce that must match the signed ``cc_login`` cookie (double submit). A
  request whose ``Origin`` names another site is refused as well.
- A screen logs in with a read-only token (``/tv?token=...`` once; then its own session), a
  script with ``Authorization: Bearer <token>`` (a TV token, or an API token of
  :mod:`callcenter.tokens`, which never makes a session). Tokens and users come from a
  :class:`~callcenter.wallboard.accounts.Directory` refreshed in the background: a removed
  user or revoked token loses access within ``DirectoryCache.period`` seconds.
- Failed logins are limited per client address and per name (:class:`RateLimiter`).
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import datetime as dt
import hashlib
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter.tokens import touch
from callcenter.wallboard.accounts import Directory, Principal, load_directory

log = logging.getLogger(__name__)

SESSION_COOKIE = "cc_session"
LOGIN_COOKIE = "cc_login"


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Signer:
    """HMAC-SHA256 over a purpose and a JSON payload; a value signed for one purpose (the
    login nonce) is never valid for another (the session)."""

    def __init__(self, secret: str) -> None:
        self._key = secret.encode() if secret else secrets.token_bytes(32)

    def _mac(self, purpose: str, body: bytes) -> bytes:
        return hmac.new(self._key, purpose.encode() + b"\0" + body, hashlib.sha256).digest()

    def sign(self, purpose: str, payload: dict[str, Any]) -> str:
        body = json.dumps(payload, separators=(",", ":"), sort_keys=True).encode()
        return f"{_b64(body)}.{_b64(self._mac(purpose, body))}"

    def load(self, purpose: str, value: str, now: float | None = None) -> dict[str, Any] | None:
        """The payload if the signature holds and ``exp`` has not passed; else None."""
        body_b64, dot, mac_b64 = value.partition(".")
        if not dot or len(value) > 4096:
            return None
        try:
            body, mac = _unb64(body_b64), _unb64(mac_b64)
        except (binascii.Error, ValueError):
            return None
        if not hmac.compare_digest(mac, self._mac(purpose, body)):
            return None
        try:
            payload = json.loads(body)
        except ValueError:
            return None
        if not isinstance(payload, dict):
            return None
        expires = payload.get("exp")
        if not isinstance(expires, int | float) or expires < (now or time.time()):
            return None
        return payload


class RateLimiter:
    """At most ``attempts`` failures per ``window`` seconds for each key (an address, a
    name). Memory is bounded: expired keys are dropped when the table grows."""

    def __init__(self, attempts: int, window: float, clock: Callable[[], float] = time.monotonic
                 ) -> None:  # fmt: skip
        self.attempts = attempts
        self.window = window
        self.clock = clock
        self._failures: dict[str, collections.deque[float]] = {}

    def _recent(self, key: str, now: float) -> collections.deque[float]:
        times = self._failures.get(key, collections.deque())
        while times and times[0] <= now - self.window:
            times.popleft()
        return times

    def retry_after(self, *keys: str) -> float:
        """Seconds until any of ``keys`` may try again; 0 when all may now."""
        now = self.clock()
        wait = 0.0
        for key in keys:
            times = self._recent(key, now)
            if len(times) >= self.attempts:
                wait = max(wait, times[0] + self.window - now)
        return wait

    def failed(self, *keys: str) -> None:
        now = self.clock()
        if len(self._failures) > 10_000:
            for key in [k for k in self._failures if not self._recent(k, now)]:
                del self._failures[key]
        for key in keys:
            self._failures[key] = times = self._recent(key, now)
            times.append(now)


class DirectoryCache:
    """The users and tokens, re-read every ``period`` seconds in a thread. When API tokens
    were used since the last read, their ``last_used_at`` is written first."""

    def __init__(self, engine: Engine, period: float = 10.0) -> None:
        self.engine = engine
        self.period = period
        self.directory = Directory()
        self.loaded = False
        self.used: dict[int, dt.datetime] = {}  # API token id -> last use not yet written
        self._last_try = -float("inf")
        self._lock = asyncio.Lock()

    def check_bearer(self, token: str) -> Principal | None:
        principal = self.directory.check_bearer(token)
        if principal is not None and principal.kind == "api":
            self.used[int(principal.key)] = dt.datetime.now(dt.UTC)
        return principal

    def _read(self, used: dict[int, dt.datetime]) -> Directory:
        with Session(self.engine) as session, session.begin():
            if used:
                touch(session, used)
            return load_directory(session)

    async def reload(self) -> None:
        async with self._lock:
            self._last_try = time.monotonic()
            used, self.used = self.used, {}
            try:
                self.directory = await asyncio.to_thread(self._read, used)
                self.loaded = True
            except sa.exc.SQLAlchemyError as exc:
                self.used = {**used, **self.used}
                log.warning("wallboard: cannot read users and tokens (%s); keeping the last",
                            str(exc).splitlines()[0])  # fmt: skip

    async def reload_if_stale(self, age: float = 1.0) -> None:
        """Re-read now unless that was done in the last ``age`` seconds: a user added a
        moment ago can log in at once, and unknown names cannot hammer the database."""
        if self._lock.locked():  # a reload is under way (e.g. the first one): wait for it
            async with self._lock:
                return
        if time.monotonic() - self._last_try >= age:
            await self.reload()

    async def run(self) -> None:
        while True:
            await self.reload()
            await asyncio.sleep(self.period)


@dataclass(frozen=True, slots=True)
class Visitor:
    """An authenticated request: who, and (for a cookie session) the CSRF token it must
    send back. A bearer request has no CSRF token and cannot post forms."""

    principal: Principal
    csrf: str | None


class Auth:
    def __init__(self, signer: Signer, cache: DirectoryCache, *, session_hours: float,
                 tv_days: float) -> None:  # fmt: skip
        self.signer = signer
        self.cache = cache
        self.session_seconds = session_hours * 3600
        self.tv_seconds = tv_days * 86400

    # --- who is this ---------------------------------------------------------------------

    def visitor(self, request: web.Request) -> Visitor | None:
        """The session's or the bearer token's principal, if valid now."""
        header = request.headers.get("Authorization", "")
        if header[:7].lower() == "bearer ":
            principal = self.cache.check_bearer(header[7:].strip())
            return Visitor(principal, None) if principal else None
        value = request.cookies.get(SESSION_COOKIE)
        payload = self.signer.load("session", value) if value else None
        if payload is None:
            return None
        sub, csrf = payload.get("sub"), payload.get("csrf")
        if not isinstance(sub, str) or not isinstance(csrf, str):
            return None
        principal = self.cache.directory.principal(sub)
        if principal is None and not self.cache.loaded:
            # The database has been away since we started: trust the signed cookie rather
            # than blank every screen (the cookie was issued when the principal was valid).
            kind, _, key = sub.partition(":")
            principal = Principal(kind, key, str(payload.get("name", key)),
                                  str(payload.get("role", "viewer")))  # fmt: skip
        return Visitor(principal, csrf) if principal else None

    # --- sessions ------------------------------------------------------------------------

    def start_session(self, request: web.Request, response: web.StreamResponse,
                      principal: Principal) -> None:  # fmt: skip
        ttl = self.tv_seconds if principal.kind == "token" else self.session_seconds
        payload = {"sub": principal.ident, "name": principal.name, "role": principal.role,
                   "csrf": secrets.token_urlsafe(24), "exp": int(time.time() + ttl)}  # fmt: skip
        value = self.signer.sign("session", payload)
        self._cookie(request, response, SESSION_COOKIE, value, int(ttl))
        response.del_cookie(LOGIN_COOKIE, path="/")

    @staticmethod
    def end_session(response: web.StreamResponse) -> None:
        response.del_cookie(SESSION_COOKIE, path="/")

    @staticmethod
    def _cookie(request: web.Request, response: web.StreamResponse, name: str, value: str,
                max_age: int) -> None:  # fmt: skip
        response.set_cookie(name, value, max_age=max_age, path="/", httponly=True,
                            samesite="Strict", secure=request.secure)  # fmt: skip

    # --- CSRF ----------------------------------------------------------------------------

    def login_nonce(self, request: web.Request, response: web.StreamResponse) -> str:
        """A nonce for the login form, bound to this browser by a signed cookie."""
        nonce = secrets.token_urlsafe(24)
        value = self.signer.sign("login", {"nonce": nonce, "exp": int(time.time() + 3600)})
        self._cookie(request, response, LOGIN_COOKIE, value, 3600)
        return nonce

    def login_nonce_ok(self, request: web.Request, supplied: str) -> bool:
        value = request.cookies.get(LOGIN_COOKIE)
        payload = self.signer.load("login", value) if value else None
        nonce = payload.get("nonce") if payload else None
        return isinstance(nonce, str) and hmac.compare_digest(nonce.encode(), supplied.encode())

    @staticmethod
    def csrf_ok(visitor: Visitor, supplied: str) -> bool:
        return visitor.csrf is not None and hmac.compare_digest(
            visitor.csrf.encode(), supplied.encode()
        )

    @staticmethod
    def same_origin(request: web.Request) -> bool:
        """False when the browser says the request comes from another site. (Browsers send
        ``Origin`` on every POST; its absence is a non-browser client, which then still
        needs the CSRF token.)"""
        origin = request.headers.get("Origin")
        if origin is None:
            return True
        return urlsplit(origin).netloc == request.host
