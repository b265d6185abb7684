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
    Index,
    Integer,
    SmallInteger,
    String,
    Time,
    UniqueConstraint,
    func,
    text,
)
from sqlalchemy.dialects.postgresql import ARRAY
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.db.models import Base

MODES = ("preview", "progressive", "predictive", "agentless")
MACHINE_ACTIONS = ("hangup", "message")
STATES = ("stopped", "running", "paused")
AGENTLESS_ACTIONS = ("message", "survey")
#: Contacts: ``new`` never tried; ``retry`` waits for ``next_attempt_at``; ``dialling`` has an
#: attempt in progress (never two at once); ``previewing`` is held by an agent's preview;
#: ``done`` is final (reached, or no attempts left); ``dnc`` found on the do-not-call list at
#: dial time.
CONTACT_STATUSES = ("new", "retry", "dialling", "previewing", "done", "dnc")
#: Attempts' phases, in order; ``ended`` once ``outcome`` is known.
ATTEMPT_PHASES = (
    "previewing",  # preview: the contact is on an agent's screen
    "requested",  # preview: the agent asked to dial; the dialer originates on its next tick
    "dialling",  # the row is written, the originate sent (or about to be)
    "ringing",
    "answered",
    "queued",  # a live person in the campaign queue, waiting for an agent
    "connected",
    "message",  # the information message, the machine message or the agentless flow
    "ended",
)
#: Final outcomes of an attempt (the regulator's "disposition").
ATTEMPT_OUTCOMES = (
    "connected",  # a live person reached an agent (within the 2 s)
    "abandoned",  # a live person no agent took in time: the information message was played
    "hung_up",  # a live person hung up within the 2 s grace, before an agent could take them
    "delivered",  # agentless: the message or survey reached a live person
    "machine",  # an answering machine, hung up on
    "machine_message",  # an answering machine that was left the campaign's message
    "busy",
    "no_answer",
    "failed",  # congestion, unreachable, invalid number, trunk down
    "skipped",  # not dialled: do-not-call, outside the calling window, skipped in preview
    "lost",  # the dialer lost sight of the call (restart with the channel gone, no record)
)
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
    #: Whether the dialer works the campaign: ``campaigns start|pause|stop``.
    state: Mapped[str] = mapped_column(String(16), default="stopped", server_default="stopped")
    #: Seconds a customer's phone rings before the attempt is a no answer (at least 15).
    ring_seconds: Mapped[int] = mapped_column(SmallInteger, default=25, server_default="25")
    #: Most calls in flight at once (agentless: the channel limit; others: a ceiling).
    channel_limit: Mapped[int] = mapped_column(SmallInteger, default=30, server_default="30")
    agentless_action: Mapped[str] = mapped_column(
        String(16), default="message", server_default="message"
    )
    #: The sound an agentless campaign plays to a live person (agentless_action message).
    agentless_message: Mapped[str] = mapped_column(String(200), default="", server_default="")
    #: The IVR whose survey an agentless survey campaign runs (agentless_action survey).
    survey_ivr: Mapped[str] = mapped_column(String(64), default="", server_default="")
    #: The information message's sound (it names the seller); the seller's number is said
    #: after it. Empty: the default prompt.
    abandon_message: Mapped[str] = mapped_column(String(200), default="", server_default="")
    #: Which calls are recorded (callcenter.db.models_quality.RECORD_POLICIES); the share
    #: of calls for "sampled".
    record_policy: Mapped[str] = mapped_column(String(16), default="none", server_default="none")
    record_share: Mapped[float] = mapped_column(Double, default=0.0, server_default="0")
    #: First start: the campaign's life, and its 30-day periods, count from here.
    started_at: Mapped[dt.datetime | None] = mapped_column()
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        CheckConstraint(
            "mode IN ('preview','progressive','predictive','agentless')", name="mode_known"
        ),
        CheckConstraint("state IN ('stopped','running','paused')", name="state_known"),
        CheckConstraint("ring_seconds BETWEEN 15 AND 120", name="ring_seconds_range"),
        CheckConstraint("channel_limit BETWEEN 1 AND 1000", name="channel_limit_range"),
        CheckConstraint("agentless_action IN ('message','survey')", name="agentless_action_known"),
        CheckConstraint("mode = 'agentless' OR queue IS NOT NULL", name="queue_for_agents"),
        CheckConstraint("machine_action IN ('hangup','message')", name="machine_action_known"),
        CheckConstraint("abandon_cap > 0 AND abandon_cap <= 0.03", name="abandon_cap_legal"),
        CheckConstraint(
            "abandon_target > 0 AND abandon_target <= abandon_cap", name="abandon_target_below"
        ),
        CheckConstraint("hours_start < hours_end", name="hours_ordered"),
        CheckConstraint(
            "record_policy IN ('none','all','sampled','on_demand') "
            "AND record_share BETWEEN 0 AND 1",
            name="record_policy_known",
        ),
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
    #: Not before this time (a retry's delay); None: as soon as the window allows.
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column()
    #: The outcome of the latest attempt ("" before the first).
    last_outcome: Mapped[str] = mapped_column(String(16), default="", server_default="")
    #: The CRM's customer of this number (callcenter.crm), when there is one.
    customer_id: Mapped[int | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        UniqueConstraint("campaign_id", "phone"),
        Index("ix_contacts_due", "campaign_id", "status", "next_attempt_at"),
        # The claim's order (priority, then due time, then id) among due contacts: an
        # ordered scan that stops after n rows (7-12 ms at a million contacts, not 0.7 s).
        Index(
            "ix_contacts_next",
            "campaign_id",
            text("priority DESC"),
            text("next_attempt_at NULLS FIRST"),
            "id",
            postgresql_where=text("status IN ('new','retry')"),
        ),
        CheckConstraint("attempts >= 0", name="attempts_positive"),
    )


class DoNotCall(Base):
    """A number never to call, keyed by its E.164 form; checked at dial time."""

    __tablename__ = "do_not_call"

    phone: Mapped[str] = mapped_column(String(20), primary_key=True)
    source: Mapped[str] = mapped_column(String(200), default="")
    added_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())


class CampaignAttempt(Base):
    """One dial (or one decision not to dial): the proof kept for a regulator.

    Written before the originate (``phase`` dialling, ``channel_id`` the ChannelId given to
    Asterisk, so every event of the call is found and a restart neither loses nor repeats
    it), then completed from AMI events. ``day`` is the site-local date of the dial and
    ``period`` the campaign's 30-day period (1 from its first start). The 2-second rule is
    read off ``human_at`` (AMD's HUMAN verdict, which comes ``after_greeting_silence`` =
    0.8 s after the greeting ends; the answer without AMD) and ``agent_at``.
    """

    __tablename__ = "campaign_attempts"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    campaign_id: Mapped[int] = mapped_column(ForeignKey("campaigns.id", ondelete="CASCADE"))
    contact_id: Mapped[int | None] = mapped_column(ForeignKey("contacts.id", ondelete="SET NULL"))
    phone: Mapped[str] = mapped_column(String(20))
    attempt_no: Mapped[int] = mapped_column(SmallInteger)
    mode: Mapped[str] = mapped_column(String(16))
    #: How the pacer chose to dial it: progressive | predictive | preview | agentless.
    paced: Mapped[str] = mapped_column(String(16), default="", server_default="")
    dialer: Mapped[str] = mapped_column(String(128), default="", server_default="")
    node: Mapped[str] = mapped_column(String(64), default="", server_default="")
    channel_id: Mapped[str | None] = mapped_column(String(64), unique=True)
    caller_id: Mapped[str] = mapped_column(String(32), default="", server_default="")
    phase: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[dt.datetime] = mapped_column()
    originated_at: Mapped[dt.datetime | None] = mapped_column()
    answered_at: Mapped[dt.datetime | None] = mapped_column()
    amd_status: Mapped[str] = mapped_column(String(16), default="", server_default="")
    amd_cause: Mapped[str] = mapped_column(String(64), default="", server_default="")
    human_at: Mapped[dt.datetime | None] = mapped_column()
    queued_at: Mapped[dt.datetime | None] = mapped_column()
    agent: Mapped[str | None] = mapped_column(String(80))
    agent_at: Mapped[dt.datetime | None] = mapped_column()
    message: Mapped[str] = mapped_column(String(200), default="", server_default="")
    message_started_at: Mapped[dt.datetime | None] = mapped_column()
    message_ended_at: Mapped[dt.datetime | None] = mapped_column()
    ended_at: Mapped[dt.datetime | None] = mapped_column()
    hangup_cause: Mapped[int | None] = mapped_column(SmallInteger)
    #: The originated leg's DialEnd status (BUSY, NOANSWER, ANSWER...) and the failed
    #: OriginateResponse's Reason: kept as they come, so a dialer restarted before the
    #: channel's Hangup still knows a busy line from a failure.
    dial_status: Mapped[str] = mapped_column(String(16), default="", server_default="")
    originate_reason: Mapped[int | None] = mapped_column(SmallInteger)
    outcome: Mapped[str | None] = mapped_column(String(16))
    #: Why it was skipped, or what else the record must say (one line).
    reason: Mapped[str] = mapped_column(String(200), default="", server_default="")
    day: Mapped[dt.date] = mapped_column(Date)
    period: Mapped[int] = mapped_column(SmallInteger, default=1, server_default="1")

    __table_args__ = (
        Index("ix_campaign_attempts_campaign_day", "campaign_id", "day"),
        # The screen-pop's history of a number finds the dialer's calls to it.
        Index("ix_campaign_attempts_phone", "phone", "id"),
        Index(
            "ix_campaign_attempts_open",
            "campaign_id",
            postgresql_where=text("outcome IS NULL"),
        ),
        CheckConstraint(
            "outcome IS NULL OR outcome IN ('connected','abandoned','hung_up','delivered',"
            "'machine','machine_message','busy','no_answer','failed','skipped','lost')",
            name="outcome_known",
        ),
    )


class CampaignLease(Base):
    """Which dialer process works a campaign: one at a time. A holder renews before
    ``expires_at``; another may take the campaign only after it has passed."""

    __tablename__ = "campaign_leases"

    campaign_id: Mapped[int] = mapped_column(
        ForeignKey("campaigns.id", ondelete="CASCADE"), primary_key=True
    )
    holder: Mapped[str] = mapped_column(String(128))
    acquired_at: Mapped[dt.datetime] = mapped_column()
    expires_at: Mapped[dt.datetime] = mapped_column()
