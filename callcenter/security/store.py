"""The ``sip_blocks`` table: alerted addresses, blocks and unblocks (SQLAlchemy sessions).

Blocked now = ``blocked_at`` set and ``unblocked_at`` null. Every write is an upsert keyed by
the address, so the bridge may write the same alert twice (a retry after the database was
away) without counting its failures twice: it passes the failures not yet written.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.orm import Session

from callcenter.db.models_security import SipBlock
from callcenter.security.detector import Offender

UTC = dt.UTC
#: The longest reason kept (the column's width).
REASON_MAX = 500


def _time(epoch: float) -> dt.datetime:
    return dt.datetime.fromtimestamp(epoch, UTC)


def describe(o: Offender) -> str:
    """What was seen, for ``reason``: ``57 failed logins (ChallengeResponseFailed 40,
    InvalidAccountID 17) over PJSIP; accounts tried: 1001, admin``."""
    kinds = ", ".join(f"{name} {n}" for name, n in sorted(o.kinds, key=lambda k: -k[1]))
    text = f"{o.failures} failed logins ({kinds})"
    if o.services:
        text += f" over {', '.join(o.services)}"
    if o.accounts:
        text += f"; accounts tried: {', '.join(o.accounts)}"
    return text[:REASON_MAX]


def active(session: Session) -> list[str]:
    """The addresses and networks blocked now, sorted."""
    rows = session.scalars(
        sa.select(SipBlock.address)
        .where(SipBlock.blocked_at.is_not(None), SipBlock.unblocked_at.is_(None))
        .order_by(SipBlock.address)
    )
    return list(rows)


def record(session: Session, o: Offender, new_failures: int, *, block: bool, now: float) -> None:
    """Upsert what the bridge saw of ``o``: the times widen, ``new_failures`` (those not yet
    written) are added, the reason and node are the latest. ``block``: blocked from ``now``
    (an unblock before is undone)."""
    values = {
        "address": o.address, "first_seen": _time(o.first_seen), "last_seen": _time(o.last_seen),
        "failures": max(new_failures, 0), "reason": describe(o), "node": o.node[:64],
    }  # fmt: skip
    if block:
        values |= {"blocked_at": _time(now), "unblocked_at": None}
    stmt = insert(SipBlock).values(**values)
    t = SipBlock.__table__.c
    update: dict[str, Any] = {
        "first_seen": sa.func.least(t.first_seen, stmt.excluded.first_seen),
        "last_seen": sa.func.greatest(t.last_seen, stmt.excluded.last_seen),
        "failures": t.failures + stmt.excluded.failures,
        "reason": stmt.excluded.reason,
        "node": stmt.excluded.node,
    }
    if block:
        # A block of an address blocked already keeps its first blocked_at.
        update["blocked_at"] = sa.case(
            (t.unblocked_at.is_(None) & t.blocked_at.is_not(None), t.blocked_at),
            else_=stmt.excluded.blocked_at,
        )
        update["unblocked_at"] = None
    session.execute(stmt.on_conflict_do_update(index_elements=[t.address], set_=update))


@dataclass(frozen=True, slots=True)
class BlockResult:
    """What ``block`` did: ``created`` a row, or ``already`` blocked (nothing changed)."""

    created: bool
    already: bool


def block(session: Session, address: str, reason: str, *, now: float) -> BlockResult:
    """An operator's block of ``address`` (a checked block key). Blocking what is blocked
    already changes nothing."""
    row = session.get(SipBlock, address, with_for_update=True)
    if row is None:
        session.add(
            SipBlock(address=address, failures=0, reason=reason[:REASON_MAX], node="",
                     blocked_at=_time(now), unblocked_at=None)
        )  # fmt: skip
        return BlockResult(created=True, already=False)
    if row.blocked_at is not None and row.unblocked_at is None:
        return BlockResult(created=False, already=True)
    row.blocked_at, row.unblocked_at = _time(now), None
    if reason:
        row.reason = reason[:REASON_MAX]
    return BlockResult(created=False, already=False)


def unblock(session: Session, address: str, *, now: float) -> bool:
    """Lift the block of ``address``; False when it was not blocked."""
    done = session.execute(
        sa.update(SipBlock)
        .where(
            SipBlock.address == address,
            SipBlock.blocked_at.is_not(None),
            SipBlock.unblocked_at.is_(None),
        )
        .values(unblocked_at=_time(now))
    )
    return bool(done.rowcount)  # type: ignore[attr-defined]


def rows(session: Session, *, everything: bool = False) -> Sequence[SipBlock]:
    """The rows blocked now (``everything``: every row), the most recently seen first."""
    query = sa.select(SipBlock)
    if not everything:
        query = query.where(SipBlock.blocked_at.is_not(None), SipBlock.unblocked_at.is_(None))
    latest = sa.func.greatest(SipBlock.last_seen, SipBlock.blocked_at, SipBlock.unblocked_at)
    return session.scalars(query.order_by(latest.desc().nulls_last(), SipBlock.address)).all()


def status(row: SipBlock) -> str:
    """``blocked``, ``unblocked`` or ``alerted`` (seen, never blocked)."""
    if row.blocked_at is None:
        return "alerted"
    return "blocked" if row.unblocked_at is None else "unblocked"
