"""SQLAlchemy 2 models of the call log.

Times are ``timestamptz`` in UTC; reports turn them into the site's time zone. Durations are
whole seconds where Asterisk gives whole seconds (its hold and talk times are differences of
epoch seconds) and fractional where we measure them ourselves.

The indexes serve the two questions every report and the wallboard ask on tens of millions of
rows: "today, per queue" and "per agent per day". Both are range scans on a leading
``(queue|agent, time)`` btree that also carries the columns the KPIs read (INCLUDE), so the
queries never touch the heap.
"""

from __future__ import annotations

import datetime as dt
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy import text as sa_text
from sqlalchemy.dialects.postgresql import ARRAY, JSONB
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

UTC = dt.UTC


def utcnow() -> dt.datetime:
    return dt.datetime.now(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING)
    type_annotation_map: ClassVar[dict[Any, Any]] = {
        dt.datetime: DateTime(timezone=True),
        dict[str, Any]: JSONB,
    }


class Agent(Base):
    """A person who answers calls. ``name`` is the app_queue MemberName and the login name."""

    __tablename__ = "agents"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    full_name: Mapped[str] = mapped_column(String(200), default="")
    # The PJSIP endpoint of the agent's phone, also their internal extension.
    extension: Mapped[str] = mapped_column(String(32), unique=True)
    pin_hash: Mapped[str] = mapped_column(String(200))
    # Generated at creation; rendered into pjsip.conf. Never printed by the CLI.
    sip_secret: Mapped[str] = mapped_column(String(64))
    # The agent's desktop password (argon2); None: the agent cannot log in to the web page.
    password_hash: Mapped[str | None] = mapped_column(String(200))
    skills: Mapped[list[str]] = mapped_column(ARRAY(String(64)), default=list)
    enabled: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=func.now(), onupdate=utcnow)

    memberships: Mapped[list[QueueMember]] = relationship(
        back_populates="agent", cascade="all, delete-orphan", passive_deletes=True
    )

    __table_args__ = (
        CheckConstraint(r"name !~ '^$|^[._-]|[\x01-,/:-@[-^`{-\u00a0]'", name="name_format"),
        CheckConstraint("extension ~ '^[0-9]{2,16}$'", name="extension_format"),
    )


class Queue(Base):
    """An app_queue queue; rendered into queues.conf."""

    __tablename__ = "queues"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    display_name: Mapped[str] = mapped_column(String(200), default="")
    strategy: Mapped[str] = mapped_column(String(16), default="rrmemory")
    service_level_seconds: Mapped[int] = mapped_column(Integer, default=20)
    wrapup_seconds: Mapped[int] = mapped_column(Integer, default=10)
    # How long one agent's phone rings (queues.conf timeout) and the pause before the next try.
    ring_seconds: Mapped[int] = mapped_column(Integer, default=15)
    retry_seconds: Mapped[int] = mapped_column(Integer, default=5)
    # Queue()'s own timeout: passed explicitly so that EXITWITHTIMEOUT is logged.
    max_wait_seconds: Mapped[int] = mapped_column(Integer, default=300)
    max_callers: Mapped[int] = mapped_column(Integer, default=0)
    weight: Mapped[int] = mapped_column(Integer, default=0)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    join_empty: Mapped[bool] = mapped_column(Boolean, default=True)
    leave_when_empty: Mapped[bool] = mapped_column(Boolean, default=False)
    announce_position: Mapped[bool] = mapped_column(Boolean, default=True)
    announce_holdtime: Mapped[bool] = mapped_column(Boolean, default=True)
    announce_frequency_seconds: Mapped[int] = mapped_column(Integer, default=60)
    autopause: Mapped[bool] = mapped_column(Boolean, default=True)
    autopause_after: Mapped[int] = mapped_column(Integer, default=2)
    music_class: Mapped[str] = mapped_column(String(64), default="default")
    # The agent's desktop keeps an agent paused after a call of this queue until they save
    # its disposition.
    disposition_required: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=sa_text("false")
    )
    # Which calls are recorded (callcenter.db.models_quality.RECORD_POLICIES) and, for
    # "sampled", the share of them (0..1).
    record_policy: Mapped[str] = mapped_column(String(16), default="none", server_default="none")
    record_share: Mapped[float] = mapped_column(Double, default=0.0, server_default="0")
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=func.now(), onupdate=utcnow)

    members: Mapped[list[QueueMember]] = relationship(
        back_populates="queue", cascade="all, delete-orphan", passive_deletes=True
    )

    __table_args__ = (
        CheckConstraint("name ~ '^[a-z0-9][a-z0-9_-]*$'", name="name_format"),
        CheckConstraint(
            "strategy IN ('ringall','leastrecent','fewestcalls','random','rrmemory',"
            "'rrordered','linear','wrandom')",
            name="strategy_known",
        ),
        CheckConstraint(
            "service_level_seconds > 0 AND wrapup_seconds >= 0 AND ring_seconds > 0 "
            "AND retry_seconds >= 0 AND max_wait_seconds > 0 AND max_callers >= 0",
            name="durations_valid",
        ),
        CheckConstraint(
            "record_policy IN ('none','all','sampled','on_demand') "
            "AND record_share BETWEEN 0 AND 1",
            name="record_policy_known",
        ),
    )


class QueueMember(Base):
    """An agent's membership of a queue, with app_queue's penalty (lower rings first)."""

    __tablename__ = "queue_members"

    queue_id: Mapped[int] = mapped_column(
        ForeignKey("queues.id", ondelete="CASCADE"), primary_key=True
    )
    agent_id: Mapped[int] = mapped_column(
        ForeignKey("agents.id", ondelete="CASCADE"), primary_key=True
    )
    penalty: Mapped[int] = mapped_column(Integer, default=0)

    queue: Mapped[Queue] = relationship(back_populates="members")
    agent: Mapped[Agent] = relationship(back_populates="memberships")

    __table_args__ = (CheckConstraint("penalty >= 0", name="penalty_positive"),)


class AgentSession(Base):
    """One login of an agent on one Asterisk node, from QueueAdd (or resync) to QueueRemove."""

    __tablename__ = "agent_sessions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    node: Mapped[str] = mapped_column(String(64))
    agent: Mapped[str] = mapped_column(String(64))
    interface: Mapped[str] = mapped_column(String(128))
    login_at: Mapped[dt.datetime]
    logout_at: Mapped[dt.datetime | None]
    logout_reason: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        UniqueConstraint("node", "agent", "login_at"),
        Index("ix_agent_sessions_agent_login", "agent", "login_at"),
    )


class AgentStateChange(Base):
    """A span of one agent state. ``ended_at`` is NULL while the state lasts.

    The bridge derives these from app_queue's member events; this table is a projection of
    Asterisk's queue membership, never a second source of truth.
    """

    __tablename__ = "agent_state_changes"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    node: Mapped[str] = mapped_column(String(64))
    agent: Mapped[str] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str | None] = mapped_column(String(64))
    started_at: Mapped[dt.datetime]
    ended_at: Mapped[dt.datetime | None]

    __table_args__ = (
        UniqueConstraint("node", "agent", "started_at", "state"),
        CheckConstraint(
            "state IN ('logged_out','available','ringing','on_call','wrap_up','paused',"
            "'unavailable')",
            name="state_known",
        ),
        CheckConstraint("ended_at IS NULL OR ended_at >= started_at", name="span_ordered"),
        Index(
            "ix_agent_state_changes_agent_started",
            "agent",
            "started_at",
            postgresql_include=["state", "reason", "ended_at"],
        ),
        Index("ix_agent_state_changes_started", "started_at"),
        # Spans that end inside an interval (or are still open): the report's state query.
        Index(
            "ix_agent_state_changes_ended",
            "ended_at",
            postgresql_include=["agent", "state", "reason", "started_at"],
        ),
    )


#: What the queue KPIs read, carried in the report indexes so they are index-only scans.
KPI_COLUMNS = [
    "outcome",
    "answered_at",
    "wait_seconds",
    "talk_seconds",
    "hold_seconds",
    "wrapup_seconds",
]


class Call(Base):
    """One row per call leg that entered the call center, keyed by (node, uniqueid).

    Re-applying an event or a resync updates this row in place (upsert on the key), so a
    replayed event never counts twice.
    """

    __tablename__ = "calls"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    node: Mapped[str] = mapped_column(String(64))
    uniqueid: Mapped[str] = mapped_column(String(64))
    linkedid: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(16), default="inbound")
    caller_number: Mapped[str] = mapped_column(String(64), default="")
    caller_name: Mapped[str] = mapped_column(String(200), default="")
    did: Mapped[str] = mapped_column(String(64), default="")
    channel: Mapped[str] = mapped_column(String(128), default="")
    ivr_path: Mapped[str] = mapped_column(Text, default="")
    ivr_seconds: Mapped[float | None] = mapped_column(Double)
    queue: Mapped[str | None] = mapped_column(String(64))
    agent: Mapped[str | None] = mapped_column(String(64))
    agent_channel: Mapped[str | None] = mapped_column(String(128))
    started_at: Mapped[dt.datetime]
    queued_at: Mapped[dt.datetime | None]
    answered_at: Mapped[dt.datetime | None]
    ended_at: Mapped[dt.datetime | None]
    wait_seconds: Mapped[float | None] = mapped_column(Double)
    talk_seconds: Mapped[float | None] = mapped_column(Double)
    hold_seconds: Mapped[float | None] = mapped_column(Double)
    wrapup_seconds: Mapped[float | None] = mapped_column(Double)
    ring_attempts: Mapped[int] = mapped_column(SmallInteger, default=0)
    original_position: Mapped[int | None] = mapped_column(SmallInteger)
    outcome: Mapped[str | None] = mapped_column(String(16))
    exit_key: Mapped[str | None] = mapped_column(String(4))
    hangup_cause: Mapped[int | None] = mapped_column(SmallInteger)
    survey_score: Mapped[int | None] = mapped_column(SmallInteger)
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=func.now(), onupdate=utcnow)

    __table_args__ = (
        UniqueConstraint("node", "uniqueid"),
        CheckConstraint(
            "outcome IS NULL OR outcome IN ('answered','abandoned','timed_out','exit_key',"
            "'exit_empty','transferred','ivr_hangup','callback','lost')",
            name="outcome_known",
        ),
        CheckConstraint("direction IN ('inbound','outbound','internal')", name="direction_known"),
        CheckConstraint(
            "survey_score IS NULL OR survey_score BETWEEN 1 AND 5", name="survey_score_range"
        ),
        # "today, per queue": offered/answered/abandoned/SL/ASA/AHT without touching the heap.
        Index("ix_calls_queue_queued", "queue", "queued_at", postgresql_include=KPI_COLUMNS),
        # "today, all queues": a range on time alone, also index-only.
        Index("ix_calls_queued", "queued_at", postgresql_include=["queue", *KPI_COLUMNS]),
        # "per agent per day".
        Index(
            "ix_calls_agent_answered",
            "agent",
            "answered_at",
            postgresql_include=["talk_seconds", "hold_seconds", "wrapup_seconds", "queue"],
        ),
        # "all agents, per day": calls by answer time alone, also index-only.
        Index(
            "ix_calls_answered",
            "answered_at",
            postgresql_include=["agent", "talk_seconds", "hold_seconds", "wrapup_seconds"],
        ),
        Index("ix_calls_started", "started_at"),
        Index("ix_calls_caller_started", "caller_number", "started_at"),
        Index("ix_calls_linkedid", "linkedid"),
        # The open calls of a node, which the bridge closes when it starts.
        Index("ix_calls_open", "node", postgresql_where=sa_text("outcome IS NULL")),
    )


class QueueVisit(Base):
    """One row per queue visit: each time a call entered a queue (queue_log ENTERQUEUE).

    A call transferred (SIP REFER, AMI BlindTransfer or Atxfer) or redirected into another
    queue has a visit in each, numbered 1, 2... in the order the bridge saw them; each is
    offered in its own queue, as queue_log and app_queue count them. Queue figures (offered,
    answered, SL, ASA, AHT...) and agents' answered calls are counted here; ``calls`` keeps
    one row per call, whose queue columns describe its last visit. ``outcome`` stays NULL
    until the visit is over; a transferred visit says where in ``transfer_target``
    (``exten@context`` for a blind transfer, the target channel for an attended one).
    ``ended_at`` is when the visit left its queue or its agent.
    """

    __tablename__ = "queue_visits"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    node: Mapped[str] = mapped_column(String(64))
    uniqueid: Mapped[str] = mapped_column(String(64))
    visit: Mapped[int] = mapped_column(SmallInteger)
    linkedid: Mapped[str] = mapped_column(String(64))
    direction: Mapped[str] = mapped_column(String(16), default="inbound")
    caller_number: Mapped[str] = mapped_column(String(64), default="")
    caller_name: Mapped[str] = mapped_column(String(200), default="")
    queue: Mapped[str] = mapped_column(String(64))
    agent: Mapped[str | None] = mapped_column(String(64))
    agent_channel: Mapped[str | None] = mapped_column(String(128))
    queued_at: Mapped[dt.datetime | None]
    answered_at: Mapped[dt.datetime | None]
    ended_at: Mapped[dt.datetime | None]
    wait_seconds: Mapped[float | None] = mapped_column(Double)
    talk_seconds: Mapped[float | None] = mapped_column(Double)
    hold_seconds: Mapped[float | None] = mapped_column(Double)
    wrapup_seconds: Mapped[float | None] = mapped_column(Double)
    ring_attempts: Mapped[int] = mapped_column(SmallInteger, default=0)
    original_position: Mapped[int | None] = mapped_column(SmallInteger)
    outcome: Mapped[str | None] = mapped_column(String(16))
    exit_key: Mapped[str | None] = mapped_column(String(4))
    transfer_target: Mapped[str | None] = mapped_column(String(200))
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=func.now(), onupdate=utcnow)

    __table_args__ = (
        UniqueConstraint("node", "uniqueid", "visit"),
        CheckConstraint(
            "outcome IS NULL OR outcome IN ('answered','abandoned','timed_out','exit_key',"
            "'exit_empty','transferred','ivr_hangup','callback','lost')",
            name="outcome_known",
        ),
        CheckConstraint("visit >= 1", name="visit_positive"),
        # The report's two questions, index-only as on calls (see the module docstring).
        Index("ix_queue_visits_queue_queued", "queue", "queued_at", postgresql_include=KPI_COLUMNS),
        Index("ix_queue_visits_queued", "queued_at", postgresql_include=["queue", *KPI_COLUMNS]),
        Index(
            "ix_queue_visits_agent_answered",
            "agent",
            "answered_at",
            postgresql_include=["talk_seconds", "hold_seconds", "wrapup_seconds", "queue"],
        ),
        Index(
            "ix_queue_visits_answered",
            "answered_at",
            postgresql_include=["agent", "talk_seconds", "hold_seconds", "wrapup_seconds"],
        ),
    )


class AgentPause(Base):
    """One pause of an agent in one queue, as app_queue logs it (queue_log PAUSE ->
    UNPAUSE): independent of the agent's overall state, so a pause in one queue only, or one
    that began during a call, counts from its PAUSE. ``ended_at`` is NULL while it lasts; at
    most one pause of an agent in a queue is open."""

    __tablename__ = "agent_pauses"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    node: Mapped[str] = mapped_column(String(64))
    agent: Mapped[str] = mapped_column(String(64))
    queue: Mapped[str] = mapped_column(String(64))
    reason: Mapped[str] = mapped_column(String(200), default="")
    started_at: Mapped[dt.datetime]
    ended_at: Mapped[dt.datetime | None]

    __table_args__ = (
        UniqueConstraint("node", "agent", "queue", "started_at"),
        CheckConstraint("ended_at IS NULL OR ended_at >= started_at", name="span_ordered"),
        Index(
            "ix_agent_pauses_open",
            "node",
            "agent",
            "queue",
            unique=True,
            postgresql_where=sa_text("ended_at IS NULL"),
        ),
        Index(
            "ix_agent_pauses_agent_started",
            "agent",
            "started_at",
            postgresql_include=["queue", "reason", "ended_at"],
        ),
        Index(
            "ix_agent_pauses_ended",
            "ended_at",
            postgresql_include=["agent", "queue", "reason", "started_at"],
        ),
    )


class CallEvent(Base):
    """Append-only audit log: every AMI frame the bridge received, exactly as it came
    (``raw``, the frame text without its final blank line), with the columns audits search
    by. Frames it could not parse are kept the same way, ``error`` saying why.

    The exact text is what an auditor and a replay need; JSON is derived on read by the
    ``call_event_fields`` view (``ami_fields(raw)``), not paid for on every write.
    ``dedup_key`` names one received frame (connection and place in it), so re-spooling the
    same batch is a no-op while two identical frames Asterisk really sent are both kept.
    """

    __tablename__ = "call_events"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    node: Mapped[str] = mapped_column(String(64))
    received_at: Mapped[dt.datetime]
    event: Mapped[str] = mapped_column(String(64))
    uniqueid: Mapped[str | None] = mapped_column(String(64))
    linkedid: Mapped[str | None] = mapped_column(String(64))
    raw: Mapped[str] = mapped_column(Text)
    error: Mapped[str | None] = mapped_column(Text)
    dedup_key: Mapped[str] = mapped_column(String(128))

    __table_args__ = (
        UniqueConstraint("node", "dedup_key"),
        Index("ix_call_events_linkedid", "linkedid"),
        Index("ix_call_events_received", "received_at", postgresql_using="brin"),
    )


class QueueLogEntry(Base):
    """Asterisk's queue_log in its own realtime column layout (extconfig.conf
    ``queue_log => odbc|pgsql,...``), so Asterisk can write it directly; ``node`` is ours and
    nullable, so Asterisk's INSERT (which names only its own columns) still works.

    ``time`` is written by Asterisk as text ``YYYY-MM-DD HH:MM:SS.ffffff``; with logger.conf
    ``queue_log_realtime_use_gmt = yes`` it is UTC, which is how we store it.
    """

    __tablename__ = "queue_log"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    time: Mapped[dt.datetime] = mapped_column(DateTime(timezone=False))
    callid: Mapped[str] = mapped_column(String(80), default="")
    queuename: Mapped[str] = mapped_column(String(256), default="")
    agent: Mapped[str] = mapped_column(String(80), default="")
    event: Mapped[str] = mapped_column(String(32), default="")
    data1: Mapped[str] = mapped_column(String(100), default="")
    data2: Mapped[str] = mapped_column(String(100), default="")
    data3: Mapped[str] = mapped_column(String(100), default="")
    data4: Mapped[str] = mapped_column(String(100), default="")
    data5: Mapped[str] = mapped_column(String(100), default="")
    node: Mapped[str | None] = mapped_column(String(64))

    __table_args__ = (
        Index("ix_queue_log_time", "time"),
        Index("ix_queue_log_callid", "callid"),
        Index("ix_queue_log_queue_time", "queuename", "time"),
    )
