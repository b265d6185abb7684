"""Tables the IVR writes: queue callbacks and post-call survey answers (migration 0002).

They live in their own module so ``models.py`` (the call log) stays with its owner; they share
its :class:`~callcenter.db.models.Base`, hence its metadata and naming convention. Anything
that needs the full metadata (Alembic's ``env.py``, the migration test) must import this module.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    CheckConstraint,
    Index,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.db.models import Base, utcnow

#: Life cycle of a callback: ``pending`` (waiting for its turn, placeholder in the queue or about
#: to be), ``dialing`` (an agent took the placeholder, the customer is being called),
#: ``connected`` (customer answered and was bridged), ``failed`` (attempts exhausted),
#: ``cancelled`` (by an operator or by the caller).
CALLBACK_STATUSES = ("pending", "dialing", "connected", "failed", "cancelled")
#: The statuses :class:`~callcenter.agi.callback.CallbackService` still works on.
CALLBACK_OPEN = ("pending", "dialing")


class Callback(Base):
    """A caller who left a number and hung up while keeping their place in ``queue``.

    The place is kept by a placeholder Local channel waiting in the queue with ``priority``
    (see ``callcenter.agi.callback``); ``placeholder`` is that channel's name, so a restart can
    tell whether it is still there. One request per caller leg: ``(node, caller_uniqueid)`` is
    unique, so a retried AGI script does not queue the caller twice.
    """

    __tablename__ = "callbacks"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    node: Mapped[str] = mapped_column(String(64))
    queue: Mapped[str] = mapped_column(String(64))
    # The number to call back: what the caller keyed in, or their caller ID.
    number: Mapped[str] = mapped_column(String(64))
    caller_uniqueid: Mapped[str] = mapped_column(String(64))
    caller_number: Mapped[str] = mapped_column(String(64), default="")
    requested_at: Mapped[dt.datetime]
    # app_queue priority of the placeholder (the caller's priority when they left).
    priority: Mapped[int] = mapped_column(SmallInteger, default=0)
    # The caller's position in the queue when they asked (QUEUEPOSITION), for reports.
    position: Mapped[int | None] = mapped_column(SmallInteger)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(SmallInteger, default=0)
    last_attempt_at: Mapped[dt.datetime | None]
    # How the customer is dialled (the Dial() string), resolved when the caller asked.
    dial: Mapped[str] = mapped_column(String(200), default="")
    # The ChannelId (uniqueid) we gave the placeholder's ";1" half, and when we originated it;
    # its ";2" half (waiting in the queue) is the same id with "-q".
    placeholder: Mapped[str | None] = mapped_column(String(128))
    placed_at: Mapped[dt.datetime | None]
    agent: Mapped[str | None] = mapped_column(String(64))
    completed_at: Mapped[dt.datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=func.now(), onupdate=utcnow)

    __table_args__ = (
        CheckConstraint(
            "status IN ('pending','dialing','connected','failed','cancelled')",
            name="status_known",
        ),
        CheckConstraint("attempts >= 0", name="attempts_positive"),
        UniqueConstraint("node", "caller_uniqueid"),
        # The service's start-up scan: open callbacks in request order.
        Index("ix_callbacks_status_requested", "status", "requested_at"),
    )


class SurveyAnswer(Base):
    """One answer to one survey question (1-5, or 0-10 for an NPS question), with the agent
    who took the call, its queue and, for an outbound call, its campaign."""

    __tablename__ = "survey_answers"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    node: Mapped[str] = mapped_column(String(64))
    # The caller's channel uniqueid: the key of the ``calls`` row on that node.
    uniqueid: Mapped[str] = mapped_column(String(64))
    question: Mapped[str] = mapped_column(String(64))
    score: Mapped[int] = mapped_column(SmallInteger)
    # The question's scale: 5 (CSAT, 1-5) or 10 (NPS, "how likely to recommend", 0-10).
    scale: Mapped[int] = mapped_column(SmallInteger, default=5, server_default="5")
    agent: Mapped[str | None] = mapped_column(String(64))
    queue: Mapped[str | None] = mapped_column(String(64))
    # The outbound campaign whose call this was (its survey, or an agent's call of it).
    campaign: Mapped[str | None] = mapped_column(String(64))
    answered_at: Mapped[dt.datetime]

    __table_args__ = (
        CheckConstraint(
            "(scale = 5 AND score BETWEEN 1 AND 5) OR (scale = 10 AND score BETWEEN 0 AND 10)",
            name="score_range",
        ),
        # A re-run survey script overwrites an answer rather than counting it twice.
        UniqueConstraint("node", "uniqueid", "question"),
        Index("ix_survey_answers_agent_answered", "agent", "answered_at"),
        # Satisfaction per queue, per campaign and per week (callcenter report, wallboard).
        Index("ix_survey_answers_queue_answered", "queue", "answered_at"),
        Index("ix_survey_answers_campaign_answered", "campaign", "answered_at"),
        Index("ix_survey_answers_answered", "answered_at"),
    )
