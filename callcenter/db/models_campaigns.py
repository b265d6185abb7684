"""Tables of the outbound campaigns (migration 0007): campaigns, their contacts, and the
do-not-call list.

They share :class:`~callcenter.db.models.Base` (its metadata and naming convention); importing
``callcenter.db`` loads this module, so migrations and the models==migrations test see them.
:mod:`callcenter.campaigns.store` validates everything before it reaches these tables; the
checks here are a backstop.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    Double,
    ForeignKey,
    Integer,
    SmallInteger,
    String,
    Time,
    UniqueConstraint,
    func,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.db.models import Base

MODES = ("preview", "progressive", "predictive", "agentless")
MACHINE_ACTIONS = ("hangup", "message")
#: The legal ceiling of the abandon rate (FTC TSR safe harbor, Ofcom): never above 3%.
ABANDON_CAP_MAX = 0.03


class Campaign(Base):
    """An outbound campaign. Calling hours are in each contact's own time zone and always
    inside the legal 08:00-21:00 (:mod:`callcenter.campaigns.windows`); ``days`` are ISO
    weekdays (1 Monday .. 7 Sunday); retry delays are seconds per outcome."""

    __tablename__ = "campaigns"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    mode: Mapped[str] = mapped_column(String(16))
    queue: Mapped[str | None] = mapped_column(String(64))
    trunk: Mapped[str | None] = mapped_column(String(64))
    caller_id: Mapped[str] = mapped_column(String(32), default="")
    hours_start: Mapped[dt.time] = mapped_column(Time, default=dt.time(8, 0))
    hours_end: Mapped[dt.time] = mapped_column(Time, default=dt.time(21, 0))
    days: Mapped[list[int]] = mapped_column(ARRAY(SmallInteger), default=list)
    holidays: Mapped[list[dt.date]] = mapped_column(ARRAY(Date), default=list)
    max_attempts: Mapped[int] = mapped_column(SmallInteger, default=3)
    retry_busy_seconds: Mapped[int] = mapped_column(Integer, default=600)
    retry_no_answer_seconds: Mapped[int] = mapped_column(Integer, default=3600)
    retry_machine_seconds: Mapped[int] = mapped_column(Integer, default=14400)
    retry_abandoned_seconds: Mapped[int] = mapped_column(Integer, default=3600)
    retry_failed_seconds: Mapped[int] = mapped_column(Integer, default=1800)
    amd: Mapped[bool] = mapped_column(Boolean, default=True)
    machine_action: Mapped[str] = mapped_column(String(16), default="hangup")
    machine_message: Mapped[str] = mapped_column(String(200), default="")
    seller_name: Mapped[str] = mapped_column(String(200), default="")
    seller_number: Mapped[str] = mapped_column(String(32), default="")
    abandon_cap: Mapped[float] = mapped_column(Double, default=ABANDON_CAP_MAX)
    abandon_target: Mapped[float] = mapped_column(Double, default=0.025)
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        CheckConstraint(
            "mode IN ('preview','progressive','predictive','agentless')", name="mode_known"
        ),
        CheckConstraint("mode = 'agentless' OR queue IS NOT NULL", name="queue_for_agents"),
        CheckConstraint("machine_action IN ('hangup','message')", name="machine_action_known"),
        CheckConstraint("abandon_cap > 0 AND abandon_cap <= 0.03", name="abandon_cap_legal"),
        CheckConstraint(
            "abandon_target > 0 AND abandon_target <= abandon_cap", name="abandon_target_below"
        ),
        CheckConstraint("hours_start < hours_end", name="hours_ordered"),
        CheckConstraint("max_attempts BETWEEN 1 AND 100", name="max_attempts_range"),
    )


class Contact(Base):
    """A number a campaign calls: E.164, the contact's own time zone, a priority (higher
    first), and the file's other columns as ``fields`` for the agent's screen."""

    __tablename__ = "contacts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    phone: Mapped[str] = mapped_column(String(20))
    name: Mapped[str] = mapped_column(String(200), default="")
    timezone: Mapped[str] = mapped_column(String(64))
    priority: Mapped[int] = mapped_column(SmallInteger, default=0)
    fields: Mapped[dict[str, Any]] = mapped_column(default=dict)
    status: Mapped[str] = mapped_column(String(16), default="new")
    attempts: Mapped[int] = mapped_column(SmallInteger, default=0)
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        UniqueConstraint("campaign_id", "phone"),
        CheckConstraint("attempts >= 0", name="attempts_positive"),
    )


class DoNotCall(Base):
    """A number never to call, keyed by its E.164 form; checked at dial time."""

    __tablename__ = "do_not_call"

    phone: Mapped[str] = mapped_column(String(20), primary_key=True)
    source: Mapped[str] = mapped_column(String(200), default="")
    added_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
