"""The ``recordings`` and ``recording_listens`` tables, for the CLI and the web app.

The bridge writes the rows (:mod:`callcenter.bridge.store`, from :mod:`.track`); here they are
listed, shown, put on or off legal hold, marked purged, and each play or download is logged.

Listing is newest first and paged by keyset on ``(started_at, id)`` (index
``ix_recordings_started``; with an agent or queue filter ``ix_recordings_agent_started`` /
``ix_recordings_queue_started``): page 1000 of 100k recordings costs what page 1 does.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from callcenter.db.models import Call, Queue
from callcenter.db.models_campaigns import Campaign, CampaignAttempt
from callcenter.db.models_quality import Recording, RecordingListen
from callcenter.recordings.policy import RecordPolicy

#: The most rows one page or one CLI listing holds.
MAX_LIMIT = 1000
HOLD_REASON_MAX = 500


class RecordingError(ValueError):
    """No such recording, or a change that cannot be made; the message says why."""


@dataclass(frozen=True, slots=True)
class Cursor:
    """Where a page ends: the last row's start and id (the next page is strictly older)."""

    started_at: dt.datetime
    id: int

    def token(self) -> str:
        """The cursor as a URL-safe token: ``<epoch microseconds>-<id>``."""
        micros = round(self.started_at.timestamp() * 1_000_000)
        return f"{micros}-{self.id}"

    @classmethod
    def parse(cls, token: str) -> Cursor:
        """A token made by :meth:`token`; :class:`RecordingError` otherwise."""
        micros, sep, ident = token.partition("-")
        if not sep or not micros.isdigit() or not ident.isdigit() or len(token) > 40:
            raise RecordingError("the page cursor is not one this server made")
        at = dt.datetime.fromtimestamp(int(micros) / 1_000_000, dt.UTC)
        return cls(at, int(ident))


@dataclass(frozen=True, slots=True)
class Filters:
    """What a listing is narrowed to; None: anything."""

    agent: str | None = None
    queue: str | None = None
    since: dt.datetime | None = None
    until: dt.datetime | None = None
    state: str | None = None


def get(session: Session, recording_id: int) -> Recording:
    found = session.get(Recording, recording_id)
    if found is None:
        raise RecordingError(f"no recording {recording_id}")
    return found


def page(
    session: Session, filters: Filters, *, limit: int = 50, before: Cursor | None = None
) -> tuple[list[Recording], Cursor | None]:
    """Recordings newest first, at most ``limit``, strictly older than ``before``; with the
    cursor of the next page (None: this is the last)."""
    limit = max(1, min(limit, MAX_LIMIT))
    q = sa.select(Recording)
    if filters.agent is not None:
        q = q.where(Recording.agent == filters.agent)
    if filters.queue is not None:
        q = q.where(Recording.queue == filters.queue)
    if filters.since is not None:
        q = q.where(Recording.started_at >= filters.since)
    if filters.until is not None:
        q = q.where(Recording.started_at < filters.until)
    if filters.state is not None:
        q = q.where(Recording.state == filters.state)
    if before is not None:
        q = q.where(sa.tuple_(Recording.started_at, Recording.id) < (before.started_at, before.id))
    q = q.order_by(Recording.started_at.desc(), Recording.id.desc()).limit(limit + 1)
    rows = list(session.scalars(q))
    more = len(rows) > limit
    rows = rows[:limit]
    cursor = Cursor(rows[-1].started_at, rows[-1].id) if more and rows else None
    return rows, cursor


def listens(session: Session, recording_id: int, limit: int = 200) -> list[RecordingListen]:
    """Who played or downloaded the recording, newest first."""
    return list(
        session.scalars(
            sa.select(RecordingListen)
            .where(RecordingListen.recording_id == recording_id)
            .order_by(RecordingListen.at.desc(), RecordingListen.id.desc())
            .limit(limit)
        )
    )


def log_listen(
    session: Session, recording_id: int, user: str, action: str, remote: str = ""
) -> RecordingListen:
    """One play or download by ``user`` (kept when the file is purged)."""
    if action not in ("play", "download"):
        raise RecordingError(f"a listen is a play or a download, not {action!r}")
    listen = RecordingListen(
        recording_id=recording_id, user_name=user[:64], action=action, remote=remote[:64]
    )
    session.add(listen)
    session.flush()
    return listen


def hold(session: Session, recording_id: int, reason: str) -> Recording:
    """Put the recording on legal hold: no purge deletes it until it is released."""
    rec = get(session, recording_id)
    reason = " ".join(reason.split())
    if not reason:
        raise RecordingError("a legal hold needs a reason (e.g. the case or claim it is for)")
    if len(reason) > HOLD_REASON_MAX:
        raise RecordingError(f"the hold's reason is longer than {HOLD_REASON_MAX} characters")
    if rec.state == "purged":
        raise RecordingError(f"recording {recording_id} was purged: its file is gone")
    rec.legal_hold, rec.hold_reason = True, reason
    session.flush()
    return rec


def release(session: Session, recording_id: int) -> Recording:
    """Take the recording off legal hold (the reason is kept for the record)."""
    rec = get(session, recording_id)
    rec.legal_hold = False
    session.flush()
    return rec


def purgeable(
    session: Session, cutoff: dt.datetime, limit: int, after: Cursor | None = None
) -> list[Recording]:
    """Up to ``limit`` recordings a purge at ``cutoff`` deletes (:func:`callcenter.recordings.
    retention.purgeable` is the rule), oldest first and after ``after``, locked for this
    transaction (another purge running at once skips them)."""
    q = sa.select(Recording).where(
        Recording.state.in_(("done", "missing")),
        Recording.legal_hold.is_(False),
        Recording.started_at < cutoff,
    )
    if after is not None:
        q = q.where(sa.tuple_(Recording.started_at, Recording.id) > (after.started_at, after.id))
    q = q.order_by(Recording.started_at, Recording.id).limit(limit)
    return list(session.scalars(q.with_for_update(skip_locked=True)))


def held_before(session: Session, cutoff: dt.datetime) -> int:
    """How many recordings older than ``cutoff`` a purge keeps for their legal hold."""
    return int(
        session.scalar(
            sa.select(sa.func.count())
            .select_from(Recording)
            .where(
                Recording.legal_hold.is_(True),
                Recording.state != "purged",
                Recording.started_at < cutoff,
            )
        )
        or 0
    )


def policy_for_call(session: Session, node: str, uniqueid: str) -> tuple[RecordPolicy, str]:
    """The recording policy a call follows, and whose it is (``campaign X`` or ``queue Y``):
    a campaign's call (its attempt's channel id is the call's uniqueid) its campaign's, any
    other its queue's; none when the call log knows neither yet."""
    campaign = session.execute(
        sa.select(Campaign.name, Campaign.record_policy, Campaign.record_share)
        .join(CampaignAttempt, CampaignAttempt.campaign_id == Campaign.id)
        .where(CampaignAttempt.channel_id == uniqueid)
        .limit(1)
    ).first()
    if campaign is not None:
        return RecordPolicy.of(campaign[1], campaign[2]), f"campaign {campaign[0]}"
    queue = session.execute(
        sa.select(Queue.name, Queue.record_policy, Queue.record_share)
        .join(Call, Call.queue == Queue.name)
        .where(Call.node == node, Call.uniqueid == uniqueid)
    ).first()
    if queue is not None:
        return RecordPolicy.of(queue[1], queue[2]), f"queue {queue[0]}"
    return RecordPolicy("none"), "no queue yet"


def active(session: Session, node: str, uniqueid: str) -> list[Recording]:
    """The call's recordings still being written (its agent's leg not yet hung up)."""
    return list(
        session.scalars(
            sa.select(Recording).where(
                Recording.node == node,
                Recording.uniqueid == uniqueid,
                Recording.state == "recording",
                Recording.ended_at.is_(None),
            )
        )
    )


def muted_now(rec: Recording) -> bool:
    return rec.muted_since is not None


def view(rec: Recording, now: dt.datetime | None = None) -> dict[str, Any]:
    """A recording as the CLI's ``--json`` and the web show it. ``muted_ms`` includes a mute
    still on (up to ``now``)."""
    muted = rec.muted_ms
    if rec.muted_since is not None and now is not None and rec.ended_at is None:
        muted += max(0, round((now - rec.muted_since).total_seconds() * 1000))
    return {
        "id": rec.id,
        "node": rec.node,
        "uniqueid": rec.uniqueid,
        "linkedid": rec.linkedid,
        "visit": rec.visit,
        "queue": rec.queue,
        "campaign": rec.campaign,
        "agent": rec.agent,
        "channel": rec.channel,
        "path": rec.path,
        "reason": rec.reason,
        "requested_by": rec.requested_by,
        "state": rec.state,
        "started_at": rec.started_at,
        "ended_at": rec.ended_at,
        "duration_ms": rec.duration_ms,
        "size_bytes": rec.size_bytes,
        "sha256": rec.sha256,
        "muted_ms": muted,
        "mutes": rec.mutes,
        "muted": rec.muted_since is not None and rec.ended_at is None,
        "legal_hold": rec.legal_hold,
        "hold_reason": rec.hold_reason,
        "purged_at": rec.purged_at,
    }


def listen_view(listen: RecordingListen) -> dict[str, Any]:
    return {
        "user": listen.user_name,
        "action": listen.action,
        "at": listen.at,
        "remote": listen.remote,
    }
