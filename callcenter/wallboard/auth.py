"""Who may see the board and who may act on it: sessions, CSRF, tokens, login throttling,
and who the client is behind a reverse proxy.

- A session is a cookie (``cc_session``: HttpOnly, SameSite=Strict, Secure over HTTPS) whose
  value is a JSON payload and its HMAC-SHA256 under ``wallboard.secret_key`` (a random key
  per process when the setting is empty: sessions then end with the process). It names the
  principal, expires, carries the session's CSRF token and a random session id (``sid``).
  Logging out revokes the sid on the server (:meth:`DirectoryCache.revoke`: table
  ``revoked_sessions``, and this process's own set at once), so a copy of the cookie is
  refused afterwards; other processes learn it within ``DirectoryCache.period`` seconds. A
  session without a sid (issued before sessions had one) is refused: it could not be revoked.
- Every state-changing form carries the CSRF token; the login form, which has no session
  yet, carries a nonce that must match the signed ``cc_login`` cookie (double submit). A
  request whose ``Origin`` names another site is refused as well.
- A screen logs in with a read-only token (``/tv?token=...`` once; then its own session), a
  script with ``Authorization: Bearer <token>`` (a TV token, or an API token of
  :mod:`callcenter.tokens`, which never makes a session). Tokens and users come from a
  :class:`~callcenter.wallboard.accounts.Directory` refreshed in the background: a removed
  user or revoked token loses access within ``DirectoryCache.period`` seconds.
- Failed logins are throttled per (client address, account) pair and per client address
  (:class:`LoginThrottle`), never per account alone: someone elsewhere guessing a
  supervisor's password cannot lock the supervisor out.
- The client address is the TCP peer's, unless the peer is one of ``wallboard.trusted_proxies``:
  then it is the right-most address of ``X-Forwarded-For`` that is not a trusted proxy
  (:func:`forwarded_client`; the hops to the left of it are the client's own claims), and
  ``X-Forwarded-Proto`` says whether the client used HTTPS. From any other peer both headers
  are ignored: anyone can send them.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import collections
import datetime as dt
import hashlib
import hmac
import ipaddress
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

import sqlalchemy as sa
from aiohttp import web
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter.db.models_wallboard import RevokedSession
from callcenter.logsafe import LogGate, clean
from callcenter.tokens import touch
from callcenter.wallboard.accounts import Directory, Principal, load_directory

log = logging.getLogger(__name__)

SESSION_COOKIE = "cc_session"
LOGIN_COOKIE = "cc_login"
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


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
    """At most ``attempts`` failures per ``window`` seconds for each key. Memory is bounded:
    expired keys are dropped when the table grows past ``max_keys``, and should it still be
    full (a flood from that many places at once), the oldest keys go."""

    def __init__(self, attempts: int, window: float, clock: Callable[[], float] = time.monotonic,
                 max_keys: int = 100_000) -> None:  # fmt: skip
        self.attempts = attempts
        self.window = window
        self.clock = clock
        self.max_keys = max_keys
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
        if len(self._failures) >= self.max_keys:
            for key in [k for k in self._failures if not self._recent(k, now)]:
                del self._failures[key]
            for key in list(self._failures)[: max(0, len(self._failures) - self.max_keys + 1)]:
                del self._failures[key]
        for key in keys:
            self._failures[key] = times = self._recent(key, now)
            times.append(now)

    def clear(self, key: str) -> None:
        self._failures.pop(key, None)


# --- who the client is ------------------------------------------------------------------------


def parse_networks(entries: Iterable[str]) -> tuple[Network, ...]:
    """``wallboard.trusted_proxies`` as networks: each an address or a CIDR (``10.0.0.5``,
    ``10.0.0.0/24``, ``::1``). ValueError naming the first entry that is neither."""
    networks: list[Network] = []
    for entry in entries:
        try:
            networks.append(ipaddress.ip_network(entry.strip(), strict=False))
        except ValueError:
            raise ValueError(
                f"{entry!r} is not an IP address or network (e.g. 10.0.0.5 or 10.0.0.0/24)"
            ) from None
    return tuple(networks)


def ip_of(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """An address as a peer or a proxy writes it, or None: IPv6 possibly in brackets with a
    port (``[::1]:8080``), IPv4 possibly with a port (some proxies append it), a zone id
    dropped, an IPv4-mapped IPv6 address (``::ffff:10.0.0.5``, a dual-stack socket's view
    of an IPv4 peer) as the IPv4 address it is."""
    text = text.strip()
    if text.startswith("["):
        text = text[1:].partition("]")[0]
    elif text.count(":") == 1:
        text = text.partition(":")[0]
    try:
        ip = ipaddress.ip_address(text.partition("%")[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def is_trusted(address: str, proxies: Sequence[Network]) -> bool:
    ip = ip_of(address)
    return ip is not None and any(ip in network for network in proxies)


def _entries(values: Sequence[str]) -> list[str]:
    """The comma-separated entries of every copy of a header, left to right."""
    return [e.strip() for value in values for e in value.split(",") if e.strip()]


def forwarded_client(peer: str, forwarded_for: Sequence[str], forwarded_proto: Sequence[str],
                     proxies: Sequence[Network]) -> tuple[str, str] | None:  # fmt: skip
    """The client's address and scheme (``http``/``https``) when the TCP ``peer`` is a
    trusted proxy; None when it is not (then the peer is the client, and its
    ``X-Forwarded-*`` headers are its own claims, worth nothing).

    ``X-Forwarded-For`` is walked from the right: each trusted proxy appended the address it
    got the request from, so the right-most address that is not a trusted proxy was written
    by one and is true; everything to its left is that client's say-so. When every hop is a
    trusted proxy, the left-most is the client (a request the proxies made themselves). An
    entry that is not an address (``unknown``, a garbled header) stops the walk at the last
    sound one (the peer itself when it is the first).

    ``X-Forwarded-Proto``: with one entry per ``X-Forwarded-For`` hop, the chosen hop's (each
    proxy appended the scheme it was reached by with the address); otherwise its right-most
    entry (the nearest proxy's: nginx's ``proxy_set_header X-Forwarded-Proto $scheme`` writes
    one). Anything but ``https`` is http; no header at all is http.
    """
    if not is_trusted(peer, proxies):
        return None
    hops = _entries(forwarded_for)
    protos = [p.lower() for p in _entries(forwarded_proto)]
    client, index = str(ip_of(peer)), None
    for i in range(len(hops) - 1, -1, -1):
        ip = ip_of(hops[i])
        if ip is None:
            break
        client, index = str(ip), i
        if not any(ip in network for network in proxies):
            break
    if index is not None and len(protos) == len(hops):
        proto = protos[index]
    else:
        proto = protos[-1] if protos else "http"
    return client, "https" if proto == "https" else "http"


def throttle_key(address: str) -> str:
    """What the login throttle counts as one place: an IPv4 address, or the /64 network of
    an IPv6 address (one host usually holds a whole /64: its addresses one by one would be
    as many fresh places to guess from)."""
    ip = ip_of(address)
    if ip is None:
        return clean(address, 64)
    if ip.version == 6:
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class LoginThrottle:
    """Failed logins (and wrong TV tokens), counted per place (:func:`throttle_key`):

    - per (place, account) pair: ``attempts`` failures per ``window`` seconds; then that pair
      waits until its oldest failure is ``window`` old. Someone guessing one account from one
      place; the account's owner, anywhere else, logs in as usual.
    - per place, over every account: ``address_attempts`` failures per window; someone trying
      many names from one place. (An office behind one NAT address shares it, hence a larger
      number.)

    A success clears its pair. Nothing is counted per account alone: no one can lock an
    account out from a place its owner is not at. (Guessing one account from many places is
    slowed by argon2 and by each place's own limit; long passwords are the remedy.)
    """

    def __init__(self, attempts: int, window: float, address_attempts: int,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.pairs = RateLimiter(attempts, window, clock)
        self.places = RateLimiter(address_attempts, window, clock)

    @staticmethod
    def _keys(address: str, account: str) -> tuple[str, str]:
        place = throttle_key(address)
        return place, f"{place}|{account.casefold()}"

    def retry_after(self, address: str, account: str) -> float:
        """Seconds this place must wait before it may try ``account`` again; 0: it may now."""
        place, pair = self._keys(address, account)
        return max(self.pairs.retry_after(pair), self.places.retry_after(place))

    def failed(self, address: str, account: str) -> str | None:
        """Count a failure. Which lock it starts, if any: ``"account"`` (this place, this
        account) or ``"address"`` (this place, every account): log it once, here."""
        place, pair = self._keys(address, account)
        self.pairs.failed(pair)
        self.places.failed(place)
        if self.places.retry_after(place):
            return "address"
        if self.pairs.retry_after(pair):
            return "account"
        return None

    def succeeded(self, address: str, account: str) -> None:
        self.pairs.clear(self._keys(address, account)[1])


class DirectoryCache:
    """The users, tokens and revoked sessions, re-read every ``period`` seconds in a thread.
    When API tokens were used since the last read, their ``last_used_at`` is written first,
    and so are sessions revoked while the database was away. Revoked sessions past their
    expiry are deleted about once every ``PURGE_EVERY`` seconds (a signed session past its
    ``exp`` is refused on its own)."""

    PURGE_EVERY = 3600.0

    def __init__(self, engine: Engine, period: float = 10.0) -> None:
        self.engine = engine
        self.period = period
        self.directory = Directory()
        self.loaded = False
        self.used: dict[int, dt.datetime] = {}  # API token id -> last use not yet written
        #: Revoked session ids -> their expiry (Unix seconds): as last read from the table,
        #: and those this process revoked itself (held until they expire, whatever the table
        #: said at the last read: a read may have started before the revoke).
        self.revoked: dict[str, float] = {}
        self.revoked_here: dict[str, float] = {}
        self._unsaved: dict[str, tuple[str, float]] = {}  # sid -> principal, expiry
        self._last_try = -float("inf")
        self._purged_at = -float("inf")
        self._lock = asyncio.Lock()
        self._gate = LogGate(burst=1, period=60.0)

    def check_bearer(self, token: str) -> Principal | None:
        principal = self.directory.check_bearer(token)
        if principal is not None and principal.kind == "api":
            self.used[int(principal.key)] = dt.datetime.now(dt.UTC)
        return principal

    def is_revoked(self, sid: str) -> bool:
        return sid in self.revoked_here or sid in self.revoked

    async def revoke(self, sid: str, principal: str, expires: float) -> None:
        """End session ``sid`` now in this process, and in every other once it has read the
        table (written here at once; if the database is away, at the next reload)."""
        self.revoked_here[sid] = expires
        self._unsaved[sid] = (principal, expires)
        rows = dict(self._unsaved)
        try:
            await asyncio.to_thread(self._save, rows)
        except sa.exc.SQLAlchemyError as exc:
            self._warn("cannot write a revoked session (kept, written at the next reload)", exc)
            return
        for key in rows:
            self._unsaved.pop(key, None)

    def _save(self, rows: dict[str, tuple[str, float]]) -> None:
        with Session(self.engine) as session, session.begin():
            _insert_revoked(session, rows)

    def _read(self, used: dict[int, dt.datetime], unsaved: dict[str, tuple[str, float]],
              purge: bool) -> tuple[Directory, dict[str, float]]:  # fmt: skip
        now = dt.datetime.now(dt.UTC)
        with Session(self.engine) as session, session.begin():
            if used:
                touch(session, used)
            if unsaved:
                _insert_revoked(session, unsaved)
            if purge:
                session.execute(sa.delete(RevokedSession).where(RevokedSession.expires_at < now))
            revoked = {
                str(sid): expires.timestamp()
                for sid, expires in session.execute(
                    sa.select(RevokedSession.sid, RevokedSession.expires_at).where(
                        RevokedSession.expires_at >= now
                    )
                )
            }
            return load_directory(session), revoked

    async def reload(self) -> None:
        async with self._lock:
            self._last_try = now = time.monotonic()
            used, self.used = self.used, {}
            unsaved = dict(self._unsaved)
            purge = now - self._purged_at >= self.PURGE_EVERY
            try:
                self.directory, self.revoked = await asyncio.to_thread(
                    self._read, used, unsaved, purge
                )
                self.loaded = True
            except sa.exc.SQLAlchemyError as exc:
                self.used = {**used, **self.used}
                self._warn("cannot read users and tokens; keeping the last", exc)
                return
            if purge:
                self._purged_at = now
            for sid in unsaved:
                self._unsaved.pop(sid, None)
            wall = time.time()
            self.revoked_here = {s: e for s, e in self.revoked_here.items() if e >= wall}

    def _warn(self, what: str, exc: Exception) -> None:
        """One line per minute at most while the database stays away (a login attempt with
        an unknown name triggers a reload)."""
        admitted, held = self._gate.admit(what)
        if admitted:
            detail = str(getattr(exc, "orig", None) or exc).strip().splitlines() or ["?"]
            log.warning("wallboard: %s (%s)%s", what, clean(detail[0]), LogGate.note(held))

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


def _insert_revoked(session: Session, rows: dict[str, tuple[str, float]]) -> None:
    """Insert revoked sessions; one already there (another try of the same) is fine."""
    from sqlalchemy.dialects.postgresql import insert

    values = [{"sid": sid, "principal": principal[:140],
               "expires_at": dt.datetime.fromtimestamp(expires, dt.UTC)}
              for sid, (principal, expires) in rows.items()]  # fmt: skip
    session.execute(insert(RevokedSession).values(values).on_conflict_do_nothing())


@dataclass(frozen=True, slots=True)
class Visitor:
    """An authenticated request: who, and (for a cookie session) the CSRF token it must
    send back, the session's id and expiry (Unix seconds). A bearer request has no CSRF
    token and cannot post forms."""

    principal: Principal
    csrf: str | None
    sid: str | None = None
    expires: float | None = None


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
        sub, csrf, sid = payload.get("sub"), payload.get("csrf"), payload.get("sid")
        if not isinstance(sub, str) or not isinstance(csrf, str) or not isinstance(sid, str):
            return None
        if self.cache.is_revoked(sid):
            return None
        principal = self.cache.directory.principal(sub)
        if principal is None and not self.cache.loaded:
            # The database has been away since we started: trust the signed cookie rather
            # than blank every screen (the cookie was issued when the principal was valid).
            kind, _, key = sub.partition(":")
            principal = Principal(kind, key, str(payload.get("name", key)),
                                  str(payload.get("role", "viewer")))  # fmt: skip
        return Visitor(principal, csrf, sid, float(payload["exp"])) if principal else None

    # --- sessions ------------------------------------------------------------------------

    def start_session(self, request: web.Request, response: web.StreamResponse,
                      principal: Principal) -> None:  # fmt: skip
        ttl = self.tv_seconds if principal.kind == "token" else self.session_seconds
        payload = {"sub": principal.ident, "name": principal.name, "role": principal.role,
                   "csrf": secrets.token_urlsafe(24), "sid": secrets.token_urlsafe(18),
                   "exp": int(time.time() + ttl)}  # fmt: skip
        value = self.signer.sign("session", payload)
        self._cookie(request, response, SESSION_COOKIE, value, int(ttl))
        response.del_cookie(LOGIN_COOKIE, path="/")

    async def end_session(self, response: web.StreamResponse, visitor: Visitor) -> None:
        """Log out: revoke the visitor's session on the server (any copy of its cookie is
        refused from now on, here at once) and drop the cookie from this browser."""
        if visitor.sid is not None:
            expires = visitor.expires or time.time() + max(self.session_seconds, self.tv_seconds)
            await self.cache.revoke(visitor.sid, visitor.principal.ident, expires)
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
