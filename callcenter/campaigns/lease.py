"""Which dialer process works a campaign: a lease in PostgreSQL, one holder at a time.

A dialer calls :func:`acquire` before it dials a campaign and again well before the lease
expires (every ``ttl / 3``, say); a dialer that stops renewing -- crashed, cut off from the
database -- loses the campaign once ``expires_at`` has passed, and another takes it over.
Each function runs in the caller's session; the lease holds once that transaction commits,
so acquire in a short transaction of its own and commit at once. :func:`acquire` is one
statement (``INSERT ... ON CONFLICT DO UPDATE ... WHERE``): two dialers racing for the same
campaign are serialised by the row, and exactly one of them gets it.

Times are the callers' clocks (``now``); dialers on several machines need their clocks in
step to well under the ``ttl`` (NTP gives milliseconds).
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import delete, select, text
from sqlalchemy.orm import Session

from callcenter.db.models_campaigns import CampaignLease

_ACQUIRE = text(
    """
INSERT INTO campaign_leases AS l (campaign_id, holder, acquired_at, expires_at)
VALUES (:campaign_id, :holder, :now, :expires_at)
ON CONFLICT (campaign_id) DO UPDATE
   SET holder = excluded.holder,
       -- A renewal keeps when the holder first took it; a takeover starts afresh.
       acquired_at = CASE WHEN l.holder = excluded.holder AND l.expires_at >= :now
                          THEN l.acquired_at ELSE excluded.acquired_at END,
       expires_at = excluded.expires_at
 WHERE l.expires_at < :now OR l.holder = excluded.holder
RETURNING holder
"""
)


def acquire(
    session: Session, campaign_id: int, holder: str, *, now: dt.datetime, ttl: float
) -> bool:
    """Take the campaign for ``ttl`` seconds from ``now``, or renew our own lease: True.

    False when another holder's lease has not expired yet (``expires_at >= now``).
    """
    if ttl <= 0:
        raise ValueError("a lease lasts a positive number of seconds")
    row = session.execute(
        _ACQUIRE,
        {
            "campaign_id": campaign_id,
            "holder": holder,
            "now": now,
            "expires_at": now + dt.timedelta(seconds=ttl),
        },
    ).first()
    return row is not None


def release(session: Session, campaign_id: int, holder: str) -> bool:
    """Give the campaign up at once (a clean stop), if ``holder`` holds it: True if it did."""
    gone = session.execute(
        delete(CampaignLease)
        .where(CampaignLease.campaign_id == campaign_id, CampaignLease.holder == holder)
        .returning(CampaignLease.campaign_id)
    ).all()
    return bool(gone)


def holder_of(session: Session, campaign_id: int, now: dt.datetime) -> str | None:
    """Who holds the campaign at ``now``; None when nobody does (or the lease expired)."""
    return session.scalar(
        select(CampaignLease.holder).where(
            CampaignLease.campaign_id == campaign_id, CampaignLease.expires_at >= now
        )
    )
