"""Disposition codes: what an agent may say of how a call ended, per queue and per campaign.

A code belongs to one queue or one campaign; codes are lower-case (``sale``, ``no-interest``,
``info.sent``) and unique within their queue or campaign. Each says what it does to the
contact (``effect``): it ``resolves`` it, needs a ``follow_up``, schedules a ``callback``, or
``none`` of these. A call of a campaign may take the codes of its campaign and of the queue
its agents answer (:func:`allowed_codes`).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, or_, select
from sqlalchemy.orm import Session

from callcenter.crm import CrmError
from callcenter.db.models import Queue
from callcenter.db.models_campaigns import Campaign
from callcenter.db.models_crm import EFFECTS, DispositionCode

CODE_RE = re.compile(r"^[a-z0-9][a-z0-9_.-]{0,31}$")
LABEL_MAX = 200


def check_code(code: str) -> str:
    code = code.strip().lower()
    if not CODE_RE.match(code):
        raise CrmError(
            f"disposition code {code!r} must be letters, digits, '_', '-' or '.' "
            "(at most 32, starting with a letter or digit)"
        )
    return code


def check_effect(effect: str) -> str:
    if effect not in EFFECTS:
        raise CrmError(f"effect {effect!r} is not one of {', '.join(EFFECTS)}")
    return effect


@dataclass(frozen=True, slots=True)
class Owner:
    """Whose codes: a queue's or a campaign's (exactly one)."""

    queue: str | None = None
    campaign: str | None = None

    def __post_init__(self) -> None:
        if (self.queue is None) == (self.campaign is None):
            raise CrmError("a disposition code belongs to a queue or a campaign: give one")

    def describe(self) -> str:
        return f"queue {self.queue}" if self.queue is not None else f"campaign {self.campaign}"


def _owner_ids(session: Session, owner: Owner) -> tuple[int | None, int | None]:
    if owner.queue is not None:
        queue_id = session.scalar(select(Queue.id).where(Queue.name == owner.queue))
        if queue_id is None:
            raise CrmError(f"no queue named {owner.queue!r}")
        return queue_id, None
    campaign_id = session.scalar(select(Campaign.id).where(Campaign.name == owner.campaign))
    if campaign_id is None:
        raise CrmError(f"no campaign named {owner.campaign!r}")
    return None, campaign_id


def _owned(owner_ids: tuple[int | None, int | None]) -> Any:
    queue_id, campaign_id = owner_ids
    if queue_id is not None:
        return DispositionCode.queue_id == queue_id
    return DispositionCode.campaign_id == campaign_id


def add_code(
    session: Session, owner: Owner, code: str, *, label: str = "", effect: str = "none"
) -> DispositionCode:
    code = check_code(code)
    effect = check_effect(effect)
    label = label.strip()
    if len(label) > LABEL_MAX:
        raise CrmError(f"label is longer than {LABEL_MAX} characters")
    ids = _owner_ids(session, owner)
    exists = session.scalar(
        select(DispositionCode.id).where(_owned(ids), DispositionCode.code == code)
    )
    if exists is not None:
        raise CrmError(f"{owner.describe()} has a disposition code {code!r} already")
    row = DispositionCode(
        queue_id=ids[0], campaign_id=ids[1], code=code, label=label or code, effect=effect
    )
    session.add(row)
    session.flush()
    return row


def remove_code(session: Session, owner: Owner, code: str) -> None:
    """Calls already given the code keep it (a disposition copies what it needs)."""
    code = check_code(code)
    ids = _owner_ids(session, owner)
    gone = session.execute(
        delete(DispositionCode)
        .where(_owned(ids), DispositionCode.code == code)
        .returning(DispositionCode.id)
    ).all()
    if not gone:
        raise CrmError(f"{owner.describe()} has no disposition code {code!r}")


@dataclass(frozen=True, slots=True)
class CodeView:
    code: str
    label: str
    effect: str
    queue: str | None
    campaign: str | None

    def as_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "label": self.label,
            "effect": self.effect,
            "queue": self.queue,
            "campaign": self.campaign,
        }


def list_codes(
    session: Session, *, queue: str | None = None, campaign: str | None = None
) -> list[CodeView]:
    """Codes of a queue, of a campaign, of both (a campaign's call), or every code."""
    query = (
        select(DispositionCode, Queue.name, Campaign.name)
        .outerjoin(Queue, Queue.id == DispositionCode.queue_id)
        .outerjoin(Campaign, Campaign.id == DispositionCode.campaign_id)
    )
    if queue is not None and session.scalar(select(Queue.id).where(Queue.name == queue)) is None:
        raise CrmError(f"no queue named {queue!r}")
    if (
        campaign is not None
        and session.scalar(select(Campaign.id).where(Campaign.name == campaign)) is None
    ):
        raise CrmError(f"no campaign named {campaign!r}")
    owners = []
    if queue is not None:
        owners.append(Queue.name == queue)
    if campaign is not None:
        owners.append(Campaign.name == campaign)
    if owners:
        query = query.where(or_(*owners))
    query = query.order_by(Queue.name.nulls_last(), Campaign.name, DispositionCode.code)
    return [
        CodeView(code=d.code, label=d.label, effect=d.effect, queue=q, campaign=c)
        for d, q, c in session.execute(query)
    ]


def allowed_codes(
    session: Session, *, queue: str | None, campaign_id: int | None
) -> dict[str, DispositionCode]:
    """The codes a call of ``queue`` (and of campaign ``campaign_id``) may take, by code;
    the campaign's code wins where both have one."""
    conditions: list[Any] = []
    if queue is not None:
        conditions.append(DispositionCode.queue_id.in_(select(Queue.id).where(Queue.name == queue)))
    if campaign_id is not None:
        conditions.append(DispositionCode.campaign_id == campaign_id)
    if not conditions:
        return {}
    rows: Sequence[DispositionCode] = list(
        session.scalars(
            select(DispositionCode)
            .where(or_(*conditions))
            .order_by(DispositionCode.campaign_id.nulls_first())
        )
    )
    return {d.code: d for d in rows}
