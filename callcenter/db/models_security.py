"""The table of SIP attack detection (migration 0014): addresses that failed too many logins.

One row per address (or network) that raised an alert or was blocked, kept after the alert
ends: the blocks must survive restarts, and ``callcenter security list --all`` shows what was
seen. It shares :class:`~callcenter.db.models.Base` (its metadata and naming convention);
``callcenter.db`` imports this module so Alembic and the tests see the table.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import CheckConstraint, Index, Integer, String, text
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.db.models import Base


class SipBlock(Base):
    """An address that raised a SIP attack alert, or that is (or was) blocked.

    ``address`` is the canonical text of callcenter.security.acl.block_key: an address as
    itself (``203.0.113.5``, ``2001:db8::5``), a network in CIDR (``203.0.113.0/24``, only by an
    operator's ``security block``). ``first_seen``/``last_seen``/``failures``: the failed
    logins the bridge counted (none for a block an operator made by hand). Blocked now:
    ``blocked_at`` set and ``unblocked_at`` null; ``security unblock`` sets ``unblocked_at``, a
    new block clears it again. ``reason`` says what was seen or why an operator blocked it;
    ``node`` the Asterisk node it came from.
    """

    __tablename__ = "sip_blocks"

    address: Mapped[str] = mapped_column(String(64), primary_key=True)
    first_seen: Mapped[dt.datetime | None]
    last_seen: Mapped[dt.datetime | None]
    failures: Mapped[int] = mapped_column(Integer, default=0)
    reason: Mapped[str] = mapped_column(String(500), default="")
    blocked_at: Mapped[dt.datetime | None]
    unblocked_at: Mapped[dt.datetime | None]
    node: Mapped[str] = mapped_column(String(64), default="")

    __table_args__ = (
        CheckConstraint("failures >= 0", name="failures_not_negative"),
        CheckConstraint(
            "unblocked_at IS NULL OR blocked_at IS NOT NULL", name="unblock_after_block"
        ),
        # What the bridge and the renderer read: the addresses blocked now.
        Index(
            "ix_sip_blocks_active",
            "address",
            postgresql_where=text("blocked_at IS NOT NULL AND unblocked_at IS NULL"),
        ),
    )
