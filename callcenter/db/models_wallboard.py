"""Tables of the wallboard (migration 0003): supervisors who log in, and read-only TV tokens.

They live in their own module so ``models.py`` (the call log) stays with its owner; they share
its :class:`~callcenter.db.models.Base`, hence its metadata and naming convention. Anything
that needs the full metadata (Alembic's ``env.py``, the migration test) must import this module
(``callcenter.db`` does).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, CheckConstraint, Index, Integer, String, func, text
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.db.models import Base

#: Who may do what on the wallboard: both roles see everything and may pause, unpause and log
#: out agents; ``admin`` is kept apart for what only administrators may do later.
ROLES = ("supervisor", "admin")


class User(Base):
    """A supervisor who logs in to the wallboard. ``password_hash`` is argon2id (PHC string)."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    password_hash: Mapped[str] = mapped_column(String(200))
    role: Mapped[str] = mapped_column(String(16), default="supervisor")
    # The supervisor's own phone (a PJSIP endpoint): live monitoring rings it into ChanSpy.
    phone: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        # callcenter/names.py is the rule; this backstop of migration 0004 names code points,
        # not locale-dependent classes: no ASCII but letters, digits and ._@-, nor U+0080-U+00A0.
        CheckConstraint(r"name !~ '^$|^[._@-]|[\x01-,/:-?[-^`{-\u00a0]'", name="name_format"),
        CheckConstraint("role IN ('supervisor','admin')", name="role_known"),
    )


class TvToken(Base):
    """A read-only token for a screen that shows the board without anyone logging in.

    Only the SHA-256 of the token is stored: the token is 256 random bits, so a slow hash adds
    nothing, and a digest can be looked up by equality. ``label`` names the screen; it is
    unique among tokens not revoked, so ``users token revoke LABEL`` means one token.
    """

    __tablename__ = "tv_tokens"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    label: Mapped[str] = mapped_column(String(64))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    revoked: Mapped[bool] = mapped_column(Boolean, default=False)

    __table_args__ = (
        Index(
            "ix_tv_tokens_label_active",
            "label",
            unique=True,
            postgresql_where=text("NOT revoked"),
        ),
    )


class RevokedSession(Base):
    """A session ended before its time (logout, or an operator's revoke): its id, until the
    session would have expired anyway (then the row may go: a signed session past its
    ``exp`` is refused on its own). Every web process reads the table with the users and
    tokens, so a logout holds in every process within the directory's refresh period, and
    at once in the process that served it."""

    __tablename__ = "revoked_sessions"

    sid: Mapped[str] = mapped_column(String(64), primary_key=True)
    principal: Mapped[str] = mapped_column(String(140), default="")
    revoked_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    expires_at: Mapped[dt.datetime]

    __table_args__ = (Index("ix_revoked_sessions_expires", "expires_at"),)
