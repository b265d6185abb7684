"""API tokens for the CRM and scripts: ``Authorization: Bearer ccapi_...``.

A token is ``ccapi_`` and 256 random bits (:mod:`secrets`), printed once by ``callcenter
tokens add``; the database keeps its SHA-256 (as the wallboard's TV tokens: see
:func:`callcenter.wallboard.accounts.token_digest`) and its first 14 characters, to tell
tokens apart in ``tokens list`` without being able to use them. A token has a scope, ``read``
(GET) or ``write`` (reads and changes), may expire, is revoked by name, and records when it
was last used (at most once a minute: a busy script does not write on every request).

Two ways to check one:

- :func:`check_token` in a session: for code that has one (a CLI, a test, a request
  handler that talks to the database anyway);
- the wallboard's :class:`~callcenter.wallboard.accounts.Directory`, which holds the active
  API tokens in memory beside its TV tokens (:func:`load_active`), so the wallboard's pages
  and JSON API and the REST API share one ``Authorization: Bearer`` check; it reports the
  tokens it saw used with :func:`touch`.

An API token's principal on the wallboard has kind ``api`` and role ``api-read`` or
``api-write`` (:func:`scope_allows` says what each may do); it cannot log in to pages (no
session is ever made from it) nor act on agents (that needs a supervisor's session).
"""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from zoneinfo import ZoneInfo

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from callcenter.db.models_webhooks import TOKEN_SCOPES, ApiToken
from callcenter.directory import DirectoryError
from callcenter.timespec import TimeSpecError, parse_time
from callcenter.wallboard.accounts import LABEL_RE, token_digest

TOKEN_PREFIX = "ccapi_"  # noqa: S105 - a prefix that makes leaked tokens easy to grep for
SHOWN = len(TOKEN_PREFIX) + 8  # characters of a token kept to tell it apart
#: last_used_at is written at most this often per token.
TOUCH_EVERY = dt.timedelta(seconds=60)

_FORWARD = re.compile(r"^\+?(\d+)([hdw])$")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


class TokenError(DirectoryError):
    """Bad input for API tokens: one line, fit to show an operator."""


@dataclass(frozen=True, slots=True)
class TokenPrincipal:
    """Who a valid API token is."""

    id: int
    name: str
    scope: str
    prefix: str

    @property
    def role(self) -> str:
        return f"api-{self.scope}"

    def allows(self, scope: str) -> bool:
        return scope_allows(self.role, scope)


@dataclass(frozen=True, slots=True)
class ApiTokenView:
    id: int
    name: str
    prefix: str
    scope: str
    created_at: dt.datetime
    expires_at: dt.datetime | None
    last_used_at: dt.datetime | None
    revoked_at: dt.datetime | None

    def status(self, now: dt.datetime) -> str:
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= now:
            return "expired"
        return "active"


@dataclass(frozen=True, slots=True)
class ActiveToken:
    """What the wallboard's directory keeps of an active token (keyed by its digest)."""

    id: int
    name: str
    scope: str
    expires_at: float | None  # Unix seconds


def scope_allows(role: str, scope: str) -> bool:
    """May a principal with ``role`` do what needs ``scope`` (``read`` or ``write``)?
    Supervisors and administrators (a session) may both; a TV screen (``viewer``) and an
    ``api-read`` token only read; an ``api-write`` token both."""
    if scope == "read":
        return role in ("viewer", "supervisor", "admin", "api-read", "api-write")
    if scope == "write":
        return role in ("supervisor", "admin", "api-write")
    raise ValueError(f"unknown scope {scope!r}")


def _view(t: ApiToken) -> ApiTokenView:
    return ApiTokenView(
        t.id, t.name, t.prefix, t.scope, t.created_at, t.expires_at, t.last_used_at, t.revoked_at
    )


def parse_expiry(text: str, tz: ZoneInfo, now: dt.datetime) -> dt.datetime:
    """``90d``, ``12h``, ``2w`` from ``now``, or a date or time (``2027-06-30``, in the
    site's time zone unless it has an offset); it must be in the future."""
    word = text.strip().lower()
    match = _FORWARD.match(word)
    if match:
        when = now + dt.timedelta(**{_UNITS[match.group(2)]: int(match.group(1))})
    else:
        try:
            when = parse_time(text, tz, now)
        except TimeSpecError:
            raise TokenError(
                f"cannot read the expiry {text!r}: use 90d, 12h, 2w or a date such as 2027-06-30"
            ) from None
    if when <= now:
        raise TokenError(f"the expiry {text!r} is not in the future")
    return when


# --- the CLI's operations ----------------------------------------------------------------


def add_token(
    session: Session, name: str, scope: str, *, expires_at: dt.datetime | None = None
) -> tuple[ApiTokenView, str]:
    """A new token ``name`` with ``scope``: its view, and the token itself (shown once)."""
    if not LABEL_RE.match(name):
        raise TokenError(
            f"token name {name!r} must start with a letter or digit and hold only letters, "
            "digits, spaces, '.', '_', ':' or '-' (at most 64)"
        )
    if scope not in TOKEN_SCOPES:
        raise TokenError(f"scope {scope!r} is not one of {', '.join(TOKEN_SCOPES)}")
    active = select(ApiToken.id).where(ApiToken.name == name, ApiToken.revoked_at.is_(None))
    if session.scalar(active) is not None:
        raise TokenError(f"an API token named {name!r} exists; revoke it first")
    raw = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = ApiToken(
        name=name,
        prefix=raw[:SHOWN],
        token_hash=token_digest(raw),
        scope=scope,
        expires_at=expires_at,
    )
    session.add(row)
    session.flush()
    session.refresh(row)
    return _view(row), raw


def list_tokens(session: Session, *, include_revoked: bool = True) -> list[ApiTokenView]:
    query = select(ApiToken).order_by(ApiToken.name, ApiToken.id)
    if not include_revoked:
        query = query.where(ApiToken.revoked_at.is_(None))
    return [_view(t) for t in session.scalars(query)]


def revoke_token(session: Session, which: str, *, now: dt.datetime | None = None) -> ApiTokenView:
    """Revoke the active token named ``which`` (or whose shown prefix is ``which``)."""
    rows = session.scalars(
        select(ApiToken)
        .where(or_(ApiToken.name == which, ApiToken.prefix == which), ApiToken.revoked_at.is_(None))
        .with_for_update()
    ).all()
    if not rows:
        raise TokenError(f"no active API token named {which!r}")
    if len(rows) > 1:
        raise TokenError(f"{which!r} names {len(rows)} tokens: revoke by name")
    row = rows[0]
    row.revoked_at = now or dt.datetime.now(dt.UTC)
    session.flush()
    return _view(row)


# --- checking ----------------------------------------------------------------------------


def check_token(
    session: Session, raw: str, *, now: dt.datetime | None = None
) -> TokenPrincipal | None:
    """The token's principal if ``raw`` is an active token (not revoked, not expired);
    else None. Records the use (``last_used_at``) in ``session``'s transaction."""
    if not raw.startswith(TOKEN_PREFIX) or len(raw) > 200:
        return None
    now = now or dt.datetime.now(dt.UTC)
    row = session.scalar(
        select(ApiToken).where(
            ApiToken.token_hash == token_digest(raw),
            ApiToken.revoked_at.is_(None),
            or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now),
        )
    )
    if row is None:
        return None
    if row.last_used_at is None or row.last_used_at <= now - TOUCH_EVERY:
        row.last_used_at = now
        session.flush()
    return TokenPrincipal(row.id, row.name, row.scope, row.prefix)


def load_active(session: Session, now: dt.datetime | None = None) -> dict[str, ActiveToken]:
    """The tokens neither revoked nor expired, by digest (for the wallboard's directory,
    which checks the expiry again on each request)."""
    now = now or dt.datetime.now(dt.UTC)
    rows = session.scalars(
        select(ApiToken).where(
            ApiToken.revoked_at.is_(None),
            or_(ApiToken.expires_at.is_(None), ApiToken.expires_at > now),
        )
    )
    return {
        t.token_hash: ActiveToken(
            t.id, t.name, t.scope, t.expires_at.timestamp() if t.expires_at else None
        )
        for t in rows
    }


def touch(session: Session, used: Mapping[int, dt.datetime]) -> None:
    """Record when tokens were last used (``id -> when``), never moving a time back."""
    for ident, when in used.items():
        session.execute(
            update(ApiToken)
            .where(
                ApiToken.id == ident,
                or_(ApiToken.last_used_at.is_(None), ApiToken.last_used_at < when),
            )
            .values(last_used_at=when)
        )
