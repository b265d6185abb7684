"""Supervisors and TV tokens in PostgreSQL (``users``, ``tv_tokens``; migration 0003).

Every function works inside the caller's session and raises :class:`AccountError` (a
:class:`~callcenter.directory.DirectoryError`, so the CLI reports it as one ``Error:`` line)
before anything is written. Passwords are hashed with argon2id (argon2-cffi's defaults);
tokens are 256 random bits, stored as their SHA-256 (see
:class:`~callcenter.db.models_wallboard.TvToken`).

:func:`load_directory` reads what the web server needs to check logins and sessions into one
immutable :class:`Directory`, which it refreshes in the background: browsers' requests never
wait for the database.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
import time
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter import names
from callcenter.db.models import Agent
from callcenter.db.models_wallboard import ROLES, TvToken, User
from callcenter.directory import DirectoryError
from callcenter.monitoring.rules import check_phone

if TYPE_CHECKING:
    from callcenter.tokens import ActiveToken

LABEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 _.:-]{0,63}$")
MIN_PASSWORD = 10
MAX_PASSWORD = 1024  # argon2 takes any length; a megabyte "password" is an attack
TOKEN_PREFIX = "cctv_"  # noqa: S105 - a prefix that makes leaked tokens easy to grep for

_hasher = PasswordHasher()
#: Verified against when the name is unknown, so a wrong name costs the same time as a
#: wrong password (no user enumeration by timing).
_DUMMY_HASH = _hasher.hash(secrets.token_urlsafe(16))


class AccountError(DirectoryError):
    """Bad input for users or tokens: one line, fit to show an operator."""


@dataclass(frozen=True, slots=True)
class UserView:
    name: str
    role: str
    created_at: dt.datetime
    #: Their own phone (a PJSIP endpoint), which live monitoring rings; None: none set.
    phone: str | None = None


@dataclass(frozen=True, slots=True)
class TokenView:
    id: int
    label: str
    created_at: dt.datetime
    revoked: bool


@dataclass(frozen=True, slots=True)
class Principal:
    """Who makes a request: a supervisor (``kind`` user) or a screen (``kind`` token, role
    ``viewer``). ``key`` is the user name or the token's id: a session names it, so a revoked
    token's sessions end even if a new token gets the same label. An API token
    (:mod:`callcenter.tokens`) is ``kind`` api, role ``api-read`` or ``api-write``: bearer
    requests only, never a session, never an action on agents."""

    kind: str
    key: str
    name: str
    role: str

    @property
    def ident(self) -> str:
        return f"{self.kind}:{self.key}"

    @property
    def can_act(self) -> bool:
        return self.role in ROLES


@dataclass(frozen=True, slots=True)
class Directory:
    """Users (name -> (hash, role)), active TV tokens (sha256 -> (id, label)) and active API
    tokens (sha256 -> :class:`~callcenter.tokens.ActiveToken`), as last read."""

    users: dict[str, tuple[str, str]] = field(default_factory=dict)
    tokens: dict[str, tuple[int, str]] = field(default_factory=dict)
    labels: dict[str, str] = field(default_factory=dict)  # token id -> label
    api: dict[str, ActiveToken] = field(default_factory=dict)
    #: Agents who have a password (``callcenter agents password``): name -> argon2 hash.
    agents: dict[str, str] = field(default_factory=dict)
    #: Users who have a phone (``users add|update --phone``): name -> PJSIP endpoint. The
    #: board shows the monitoring buttons to them only.
    phones: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of(cls, users: dict[str, tuple[str, str]], tokens: dict[str, tuple[int, str]],
           api: dict[str, ActiveToken] | None = None) -> Directory:  # fmt: skip
        return cls(users, tokens, {str(i): label for i, label in tokens.values()}, api or {})

    def principal(self, ident: str) -> Principal | None:
        """The principal a session names, if it still exists (user removed, token revoked:
        the session ends)."""
        kind, _, key = ident.partition(":")
        if kind == "user" and key in self.users:
            return Principal("user", key, key, self.users[key][1])
        if kind == "token" and key in self.labels:
            return Principal("token", key, self.labels[key], "viewer")
        if kind == "agent" and key in self.agents:
            return Principal("agent", key, key, "agent")
        return None

    def check_agent_password(self, name: str, password: str) -> Principal | None:
        """The agent, if the password is theirs (the agent's desktop). Slow: in a thread."""
        held = self.agents.get(name)
        if not password or len(password) > MAX_PASSWORD:
            return None
        try:
            if _hasher.verify(held or _DUMMY_HASH, password) and held:
                return Principal("agent", name, name, "agent")
        except (VerificationError, InvalidHashError):
            pass
        return None

    def check_password(self, name: str, password: str) -> Principal | None:
        """The user, if the password is theirs. Slow (argon2): call it in a thread."""
        held = self.users.get(name)
        if not password or len(password) > MAX_PASSWORD:
            return None
        try:
            if _hasher.verify(held[0] if held else _DUMMY_HASH, password) and held:
                return Principal("user", name, name, held[1])
        except (VerificationError, InvalidHashError):
            pass
        return None

    def check_token(self, token: str) -> Principal | None:
        """A TV token's principal (the ``/tv`` entry: it becomes a session)."""
        held = self.tokens.get(token_digest(token))
        if held is None:
            return None
        return Principal("token", str(held[0]), held[1], "viewer")

    def check_bearer(self, token: str, now: float | None = None) -> Principal | None:
        """``Authorization: Bearer``: a TV token's principal, or an API token's if it has
        not expired (``now``: Unix seconds)."""
        principal = self.check_token(token)
        if principal is not None:
            return principal
        held = self.api.get(token_digest(token))
        if held is None:
            return None
        if held.expires_at is not None and held.expires_at <= (time.time() if now is None else now):
            return None
        return Principal("api", str(held.id), held.name, f"api-{held.scope}")


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "replace")).hexdigest()


def load_directory(session: Session) -> Directory:
    from callcenter.tokens import load_active  # it imports this module

    users = {u.name: (u.password_hash, u.role) for u in session.scalars(select(User))}
    tokens = {
        t.token_hash: (t.id, t.label)
        for t in session.scalars(select(TvToken).where(TvToken.revoked.is_(False)))
    }
    directory = Directory.of(users, tokens, load_active(session))
    agents = {
        str(name): str(hashed)
        for name, hashed in session.execute(
            select(Agent.name, Agent.password_hash).where(Agent.password_hash.is_not(None))
        )
    }
    phones = {
        str(name): str(phone)
        for name, phone in session.execute(
            select(User.name, User.phone).where(User.phone.is_not(None), User.phone != "")
        )
    }
    return replace(directory, agents=agents, phones=phones)


# --- the CLI's operations ----------------------------------------------------------------


def check_user_name(name: str) -> str:
    """The name in NFC, the form it is stored and the login form's name compared in
    (:mod:`callcenter.names` says what is allowed)."""
    name = names.normalize(name)
    problem = names.user_name_problem(name)
    if problem:
        raise AccountError(f"user name {name!r} {problem}; {names.USER_RULE}")
    return name


def add_user(
    session: Session, name: str, password: str, role: str = "supervisor", phone: str | None = None
) -> UserView:
    """Add a user; ``phone``: their own phone's PJSIP endpoint, which live monitoring rings
    (:func:`callcenter.monitoring.rules.check_phone` is the rule)."""
    name = check_user_name(name)
    if role not in ROLES:
        raise AccountError(f"role {role!r} is not one of {', '.join(ROLES)}")
    if phone is not None:
        phone = check_phone(phone)
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise AccountError(f"the password must have {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    if session.scalar(select(User.id).where(User.name == name)) is not None:
        raise AccountError(f"user {name} already exists")
    user = User(name=name, password_hash=_hasher.hash(password), role=role, phone=phone)
    session.add(user)
    session.flush()
    session.refresh(user)
    return UserView(user.name, user.role, user.created_at, user.phone)


def set_user_phone(session: Session, name: str, phone: str | None) -> UserView:
    """Give user ``name`` a phone (a PJSIP endpoint), or take theirs away (None)."""
    name = names.normalize(name)
    if phone is not None:
        phone = check_phone(phone)
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        shown = repr(name) if names.user_name_problem(name) else name
        raise AccountError(f"no user named {shown}")
    user.phone = phone
    session.flush()
    return UserView(user.name, user.role, user.created_at, user.phone)


def set_agent_password(session: Session, name: str, password: str) -> None:
    """Let agent ``name`` log in to the agent's desktop with ``password`` (argon2)."""
    name = names.normalize(name)
    if not MIN_PASSWORD <= len(password) <= MAX_PASSWORD:
        raise AccountError(f"the password must have {MIN_PASSWORD} to {MAX_PASSWORD} characters")
    agent = session.scalar(select(Agent).where(Agent.name == name))
    if agent is None:
        shown = repr(name) if names.user_name_problem(name) else name
        raise AccountError(f"no agent named {shown}")
    agent.password_hash = _hasher.hash(password)
    session.flush()


def list_users(session: Session) -> list[UserView]:
    return [UserView(u.name, u.role, u.created_at, u.phone)
            for u in session.scalars(select(User).order_by(User.name))]  # fmt: skip


def remove_user(session: Session, name: str) -> None:
    name = names.normalize(name)
    user = session.scalar(select(User).where(User.name == name))
    if user is None:
        shown = repr(name) if names.user_name_problem(name) else name  # stays one line
        raise AccountError(f"no user named {shown}")
    session.delete(user)


def add_token(session: Session, label: str) -> tuple[TokenView, str]:
    """A new token for the screen ``label``: its view, and the token itself (shown once)."""
    if not LABEL_RE.match(label):
        raise AccountError(
            f"token label {label!r} must start with a letter or digit and hold only letters, "
            "digits, spaces, '.', '_', ':' or '-' (at most 64)"
        )
    active = select(TvToken.id).where(TvToken.label == label, TvToken.revoked.is_(False))
    if session.scalar(active) is not None:
        raise AccountError(f"a token labelled {label!r} exists; revoke it first")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    row = TvToken(label=label, token_hash=token_digest(token), revoked=False)
    session.add(row)
    session.flush()
    session.refresh(row)
    return TokenView(row.id, row.label, row.created_at, row.revoked), token


def list_tokens(session: Session) -> list[TokenView]:
    rows = session.scalars(select(TvToken).order_by(TvToken.label, TvToken.id))
    return [TokenView(t.id, t.label, t.created_at, t.revoked) for t in rows]


def revoke_token(session: Session, label: str) -> None:
    row = session.scalar(select(TvToken).where(TvToken.label == label, TvToken.revoked.is_(False)))
    if row is None:
        raise AccountError(f"no active token labelled {label!r}")
    row.revoked = True
