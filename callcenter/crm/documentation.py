"""Every answered call documented: the agent's disposition and notes, or a "not documented"
mark.

A disposition belongs to one queue visit of a call (``node``, ``uniqueid``, ``visit``; visit 0
for a call that had none): the agent who answered that visit says how it ended with one of
the codes of its queue, or of its campaign (:func:`~callcenter.crm.dispositions.
allowed_codes`), with notes, and may tie it to a case, which then shows the call and the
disposition on its timeline. Saving again replaces the disposition (the timeline keeps each).

**The "not documented" rule** (:func:`is_undocumented`, pure): a queue visit an agent
answered, whose queue or campaign had disposition codes when it was answered, and that has
no disposition once its wrap-up is over plus a grace (``ended_at + wrapup_seconds + grace``)
is not documented. :func:`mark_undocumented` writes a mark (a disposition row without a code)
for each such visit, in one statement with the same rule in SQL; it is idempotent, so a
service calls it every minute or so. A disposition given later replaces the mark but keeps
its time: the call was documented late. Visits of queues without codes, and those answered
before their first code existed, need none (nothing retroactive).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy import select
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.orm import Session

from callcenter.crm import CrmError
from callcenter.crm import cases as case_store
from callcenter.crm.dispositions import allowed_codes, check_code
from callcenter.db.models import Queue, QueueVisit
from callcenter.db.models_campaigns import Campaign, CampaignAttempt
from callcenter.db.models_crm import CallDisposition

UTC = dt.UTC
#: Seconds after the wrap-up before an answered call without a disposition is marked.
GRACE_SECONDS = 60.0
#: How far back :func:`mark_undocumented` looks by default (answered within).
LOOKBACK = dt.timedelta(days=2)
NOTES_MAX = 10_000


# --- pure --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AnsweredVisit:
    """What the rule reads of a queue visit."""

    answered_at: dt.datetime | None
    ended_at: dt.datetime | None
    wrapup_seconds: float | None
    #: When its queue's (or campaign's) first disposition code was added; None: it has none.
    codes_since: dt.datetime | None


def documentation_due(visit: AnsweredVisit, grace_seconds: float) -> dt.datetime | None:
    """When the visit must have a disposition by; None when it needs none (yet)."""
    if visit.answered_at is None or visit.ended_at is None or visit.codes_since is None:
        return None
    if visit.codes_since > visit.answered_at:
        return None
    wrapup = max(visit.wrapup_seconds or 0.0, 0.0)
    return visit.ended_at + dt.timedelta(seconds=wrapup + grace_seconds)


def is_undocumented(
    visit: AnsweredVisit, documented: bool, now: dt.datetime, grace_seconds: float
) -> bool:
    """The rule (module docstring)."""
    if documented:
        return False
    due = documentation_due(visit, grace_seconds)
    return due is not None and due <= now


# --- storage: dispositions ---------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class CallContext:
    """What a disposition needs to know of its call."""

    node: str
    uniqueid: str
    visit: int
    queue: str | None
    campaign_id: int | None
    campaign: str | None
    #: The agent who answered the visit, as the call log says (None: not known yet).
    agent: str | None


def call_context(
    session: Session,
    *,
    node: str,
    uniqueid: str,
    visit: int | None = None,
    agent: str | None = None,
    queue: str | None = None,
    campaign: str | None = None,
) -> CallContext:
    """The visit a disposition is for: ``visit``, else the latest one ``agent`` answered,
    else the latest one; its queue, and the campaign whose attempt the call is. ``queue`` and
    ``campaign`` stand in for what the call log does not know yet (a call just answered,
    the bridge not flushed): given where it knows, they must agree with it."""
    query = select(QueueVisit).where(QueueVisit.node == node, QueueVisit.uniqueid == uniqueid)
    if visit is not None:
        query = query.where(QueueVisit.visit == visit)
    rows = list(session.scalars(query.order_by(QueueVisit.visit.desc())))
    row = next((r for r in rows if agent is not None and r.agent == agent), None)
    if row is None and rows:
        row = rows[0]
    attempt = session.execute(
        select(CampaignAttempt.campaign_id, Campaign.name)
        .join(Campaign, Campaign.id == CampaignAttempt.campaign_id)
        .where(CampaignAttempt.channel_id == uniqueid)
    ).first()
    campaign_id = int(attempt[0]) if attempt else None
    campaign_name = str(attempt[1]) if attempt else None
    if campaign is not None:
        if campaign_name is not None and campaign != campaign_name:
            raise CrmError(f"call {uniqueid} is of campaign {campaign_name}, not {campaign}")
        if campaign_name is None:
            found = session.scalar(select(Campaign.id).where(Campaign.name == campaign))
            if found is None:
                raise CrmError(f"no campaign named {campaign!r}")
            campaign_id, campaign_name = int(found), campaign
    if row is not None:
        if queue is not None and queue != row.queue:
            raise CrmError(
                f"call {uniqueid} visit {row.visit} is of queue {row.queue}, not {queue}"
            )
        return CallContext(
            node, uniqueid, row.visit, row.queue, campaign_id, campaign_name, row.agent
        )
    if visit not in (None, 0):
        raise CrmError(f"call {uniqueid} on {node} has no queue visit {visit}")
    if queue is not None and session.scalar(select(Queue.id).where(Queue.name == queue)) is None:
        raise CrmError(f"no queue named {queue!r}")
    if queue is None and campaign_id is None:
        raise CrmError(
            f"call {uniqueid} on {node} has no queue visit nor campaign in the call log: "
            "give its queue or campaign"
        )
    return CallContext(node, uniqueid, 0, queue, campaign_id, campaign_name, None)


def dispose(
    session: Session,
    *,
    node: str,
    uniqueid: str,
    agent: str,
    code: str,
    now: dt.datetime,
    notes: str = "",
    visit: int | None = None,
    case_number: str | None = None,
    queue: str | None = None,
    campaign: str | None = None,
    any_agent: bool = False,
) -> CallDisposition:
    """Save ``agent``'s disposition of a call (module docstring). Refused, with nothing
    written, for a code its queue and campaign do not have, a call the agent did not answer
    (unless ``any_agent``: a supervisor), or a case that does not exist."""
    code = check_code(code)
    notes = notes.strip()
    if len(notes) > NOTES_MAX:
        raise CrmError(f"notes are longer than {NOTES_MAX} characters")
    ctx = call_context(
        session,
        node=node,
        uniqueid=uniqueid,
        visit=visit,
        agent=agent,
        queue=queue,
        campaign=campaign,
    )
    if not any_agent and ctx.agent is not None and ctx.agent != agent:
        raise CrmError(
            f"call {uniqueid} visit {ctx.visit} was answered by {ctx.agent}, not {agent}"
        )
    codes = allowed_codes(session, queue=ctx.queue, campaign_id=ctx.campaign_id)
    found = codes.get(code)
    if found is None:
        owners = [
            w
            for w in (
                f"queue {ctx.queue}" if ctx.queue else "",
                f"campaign {ctx.campaign}" if ctx.campaign else "",
            )
            if w
        ]
        has, its = ("have", "their") if len(owners) > 1 else ("has", "its")
        known = ", ".join(sorted(codes)) or "none"
        raise CrmError(
            f"{' and '.join(owners)} {has} no disposition code {code!r} ({its} codes: {known})"
        )
    case = case_store.case_of_number(session, case_number)
    values: dict[str, Any] = {
        "node": node,
        "uniqueid": uniqueid,
        "visit": ctx.visit,
        "queue": ctx.queue,
        "campaign_id": ctx.campaign_id,
        "agent": agent,
        "code": code,
        "effect": found.effect,
        "notes": notes,
        "case_id": case.id if case else None,
        "at": now,
    }
    insert = pg_insert(CallDisposition).values(values)
    upsert = insert.on_conflict_do_update(
        index_elements=["node", "uniqueid", "visit"],
        set_={k: insert.excluded[k] for k in values if k not in ("node", "uniqueid", "visit")},
    ).returning(CallDisposition.id)
    row_id = session.execute(upsert).scalar_one()
    if case is not None:
        call_data = {"visit": ctx.visit, "queue": ctx.queue, "agent": agent}
        if ctx.campaign:
            call_data["campaign"] = ctx.campaign
        case_store.link_call(
            session, case, node=node, uniqueid=uniqueid, actor=agent, at=now, data=call_data
        )
        case_store.add_event(
            session,
            case,
            "disposition",
            agent,
            now,
            {
                "node": node,
                "uniqueid": uniqueid,
                "visit": ctx.visit,
                "code": code,
                "effect": found.effect,
                "notes": notes,
            },
        )
    session.flush()
    disposition = session.get(CallDisposition, row_id, populate_existing=True)
    assert disposition is not None
    from callcenter.webhooks import outbox  # the webhooks package knows nothing of the CRM

    view = disposition_view(disposition, case.number if case else None)
    # Keyed by the row and its time: a disposition saved again (corrected) is sent again.
    outbox.enqueue(session, "call.dispositioned", view, key=f"{row_id}:{now.isoformat()}",
                   at=now)  # fmt: skip
    return disposition


def dispositions_of(session: Session, node: str, uniqueid: str) -> list[CallDisposition]:
    query = (
        select(CallDisposition)
        .where(CallDisposition.node == node, CallDisposition.uniqueid == uniqueid)
        .order_by(CallDisposition.visit)
    )
    return list(session.scalars(query))


def disposition_view(d: CallDisposition, case_number: str | None = None) -> dict[str, Any]:
    return {
        "node": d.node,
        "uniqueid": d.uniqueid,
        "visit": d.visit,
        "queue": d.queue,
        "campaign_id": d.campaign_id,
        "agent": d.agent,
        "code": d.code,
        "effect": d.effect,
        "notes": d.notes,
        "case": case_number,
        "at": d.at,
        "undocumented_at": d.undocumented_at,
    }


# --- storage: the "not documented" marks -------------------------------------------------

MARK_SQL = """
INSERT INTO call_dispositions (node, uniqueid, visit, queue, campaign_id, agent, code, effect,
                               notes, case_id, at, undocumented_at)
SELECT v.node, v.uniqueid, v.visit, v.queue, a.campaign_id, v.agent, NULL, NULL,
       '', NULL, :now, :now
  FROM queue_visits v
  LEFT JOIN campaign_attempts a ON a.channel_id = v.uniqueid
 WHERE v.answered_at >= :since
   AND v.ended_at IS NOT NULL
   AND v.ended_at + make_interval(secs => greatest(coalesce(v.wrapup_seconds, 0), 0) + :grace)
       <= :now
   AND EXISTS (SELECT 1 FROM disposition_codes d
                WHERE d.created_at <= v.answered_at
                  AND (d.queue_id = (SELECT q.id FROM queues q WHERE q.name = v.queue)
                       OR d.campaign_id = a.campaign_id))
   AND NOT EXISTS (SELECT 1 FROM call_dispositions c
                    WHERE c.node = v.node AND c.uniqueid = v.uniqueid
                      AND c.visit IN (v.visit, 0))
ON CONFLICT (node, uniqueid, visit) DO NOTHING
RETURNING id
"""


def mark_undocumented(
    session: Session,
    now: dt.datetime,
    *,
    grace_seconds: float = GRACE_SECONDS,
    since: dt.datetime | None = None,
) -> int:
    """Mark every answered visit (answered since ``since``, default :data:`LOOKBACK` ago)
    that the rule finds not documented at ``now``: how many were marked. Idempotent."""
    if grace_seconds < 0:
        raise CrmError("the grace must not be negative")
    ids = (
        session.execute(
            sa.text(MARK_SQL),
            {"now": now, "since": since or now - LOOKBACK, "grace": float(grace_seconds)},
        )
        .scalars()
        .all()
    )
    if ids:
        # call.dispositioned, "not documented" (docs/webhooks.md): in this transaction.
        from callcenter.webhooks import outbox

        rows = session.scalars(select(CallDisposition).where(CallDisposition.id.in_(ids)))
        for d in rows:
            outbox.enqueue(session, "call.dispositioned", disposition_view(d),
                           key=f"{d.id}:{now.isoformat()}", at=now)  # fmt: skip
    return len(ids)
