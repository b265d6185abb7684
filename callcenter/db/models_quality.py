"""Tables of quality of service (migration 0012): call recordings and who listened to them,
supervisors' live monitoring, and QA scorecards.

- ``recordings``: one row per MixMonitor file, keyed by the call (``node``, ``uniqueid`` of
  the caller's channel, as ``calls``) and its queue visit. The bridge creates the row when
  Asterisk reports the recording started and completes it (duration, size, SHA-256) once the
  file is closed. ``muted_ms`` adds up the time the recording was muted (AMI
  MixMonitorMute), so a listener knows why a stretch is silent. ``path`` is relative to the
  recordings directory (``[recording] dir``); a purged recording keeps its row (who was
  recorded, who listened) with ``state`` purged and no file.
- ``recording_listens``: every play or download, by whom and when; never deleted with the file.
- ``monitor_sessions``: every listen, whisper or barge a supervisor started or was refused.
- ``qa_forms`` / ``qa_questions``: a scorecard per queue (or for every queue); questions are
  yes/no or 0..N points, weighted; a critical question answered 0 zeroes the evaluation.
- ``qa_evaluations`` / ``qa_answers``: one scored call, its score in percent (0-100) as
  computed when it was saved, and each answer.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import (
    BigInteger,
    Boolean,
    CheckConstraint,
    Double,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Text,
    UniqueConstraint,
    func,
)
from sqlalchemy import text as sa_text
from sqlalchemy.orm import Mapped, mapped_column

from callcenter.db.models import Base, utcnow

#: When a queue's or a campaign's calls are recorded: never, every call, a random share of
#: calls (``record_share``), or only when an agent or a supervisor asks during the call.
RECORD_POLICIES = ("none", "all", "sampled", "on_demand")
#: Why a recording exists: the policy (all), the policy's sample, or someone's request.
RECORD_REASONS = ("policy", "sampled", "on_demand")
RECORDING_STATES = ("recording", "done", "missing", "purged")
MONITOR_MODES = ("listen", "whisper", "barge")
QA_KINDS = ("yes_no", "scale")


class Recording(Base):
    __tablename__ = "recordings"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    node: Mapped[str] = mapped_column(String(64))
    # The caller's (or the dialled customer's) channel: the key of its ``calls`` row.
    uniqueid: Mapped[str] = mapped_column(String(64))
    linkedid: Mapped[str] = mapped_column(String(64), default="")
    visit: Mapped[int | None] = mapped_column(SmallInteger)
    queue: Mapped[str | None] = mapped_column(String(64))
    campaign: Mapped[str | None] = mapped_column(String(64))
    agent: Mapped[str | None] = mapped_column(String(64))
    # The channel MixMonitor runs on (the agent's leg of the call).
    channel: Mapped[str] = mapped_column(String(128), default="")
    path: Mapped[str] = mapped_column(String(400), unique=True)
    reason: Mapped[str] = mapped_column(String(16), default="policy")
    requested_by: Mapped[str | None] = mapped_column(String(64))
    state: Mapped[str] = mapped_column(String(16), default="recording")
    started_at: Mapped[dt.datetime]
    ended_at: Mapped[dt.datetime | None]
    duration_ms: Mapped[int | None] = mapped_column(Integer)
    size_bytes: Mapped[int | None] = mapped_column(BigInteger)
    sha256: Mapped[str | None] = mapped_column(String(64))
    muted_ms: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    mutes: Mapped[int] = mapped_column(Integer, default=0, server_default="0")
    # Set while muted: the mute's start, so its length is added when it ends.
    muted_since: Mapped[dt.datetime | None]
    legal_hold: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=sa_text("false")
    )
    hold_reason: Mapped[str] = mapped_column(Text, default="", server_default="")
    purged_at: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())
    updated_at: Mapped[dt.datetime] = mapped_column(server_default=func.now(), onupdate=utcnow)

    __table_args__ = (
        CheckConstraint("reason IN ('policy','sampled','on_demand')", name="reason_known"),
        CheckConstraint("state IN ('recording','done','missing','purged')", name="state_known"),
        CheckConstraint("duration_ms IS NULL OR duration_ms >= 0", name="duration_positive"),
        CheckConstraint("muted_ms >= 0 AND mutes >= 0", name="mutes_positive"),
        # The list, newest first, and its filters; the call's recordings.
        Index("ix_recordings_started", "started_at", "id"),
        Index("ix_recordings_agent_started", "agent", "started_at"),
        Index("ix_recordings_queue_started", "queue", "started_at"),
        Index("ix_recordings_node_uniqueid", "node", "uniqueid"),
    )


class RecordingListen(Base):
    __tablename__ = "recording_listens"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    recording_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("recordings.id", ondelete="CASCADE")
    )
    user_name: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(16), default="play")
    remote: Mapped[str] = mapped_column(String(64), default="")
    at: Mapped[dt.datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        CheckConstraint("action IN ('play','download')", name="action_known"),
        Index("ix_recording_listens_recording_at", "recording_id", "at"),
    )


class MonitorSession(Base):
    __tablename__ = "monitor_sessions"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    user_name: Mapped[str] = mapped_column(String(64))
    mode: Mapped[str] = mapped_column(String(16))
    agent: Mapped[str] = mapped_column(String(64))
    node: Mapped[str] = mapped_column(String(64), default="")
    # The agent's channel ChanSpy was pointed at, and the supervisor's phone that was rung.
    agent_channel: Mapped[str] = mapped_column(String(128), default="")
    phone: Mapped[str] = mapped_column(String(64), default="")
    # originated: Asterisk accepted the Originate; refused: not allowed or nothing to spy
    # on; failed: Asterisk or the network said no.
    result: Mapped[str] = mapped_column(String(16))
    error: Mapped[str] = mapped_column(Text, default="", server_default="")
    at: Mapped[dt.datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        CheckConstraint("mode IN ('listen','whisper','barge')", name="mode_known"),
        CheckConstraint("result IN ('originated','refused','failed')", name="result_known"),
        Index("ix_monitor_sessions_at", "at"),
    )


class QaForm(Base):
    __tablename__ = "qa_forms"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    # The queue whose calls it scores; NULL: any queue without a form of its own.
    queue: Mapped[str | None] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True, server_default=sa_text("true"))
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())


class QaQuestion(Base):
    __tablename__ = "qa_questions"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    form_id: Mapped[int] = mapped_column(Integer, ForeignKey("qa_forms.id", ondelete="CASCADE"))
    position: Mapped[int] = mapped_column(SmallInteger)
    text: Mapped[str] = mapped_column(String(500))
    kind: Mapped[str] = mapped_column(String(16), default="yes_no")
    # yes/no: 1; scale: the top of 0..N.
    max_points: Mapped[int] = mapped_column(SmallInteger, default=1)
    weight: Mapped[float] = mapped_column(Double, default=1.0)
    critical: Mapped[bool] = mapped_column(Boolean, default=False, server_default=sa_text("false"))

    __table_args__ = (
        UniqueConstraint("form_id", "position"),
        CheckConstraint("kind IN ('yes_no','scale')", name="kind_known"),
        CheckConstraint(
            "max_points BETWEEN 1 AND 100 AND (kind = 'scale' OR max_points = 1)",
            name="max_points_range",
        ),
        CheckConstraint("weight > 0", name="weight_positive"),
    )


class QaEvaluation(Base):
    __tablename__ = "qa_evaluations"

    id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    form_id: Mapped[int] = mapped_column(Integer, ForeignKey("qa_forms.id", ondelete="RESTRICT"))
    recording_id: Mapped[int | None] = mapped_column(
        BigInteger, ForeignKey("recordings.id", ondelete="SET NULL")
    )
    node: Mapped[str] = mapped_column(String(64), default="")
    uniqueid: Mapped[str] = mapped_column(String(64), default="")
    agent: Mapped[str] = mapped_column(String(64))
    queue: Mapped[str | None] = mapped_column(String(64))
    evaluator: Mapped[str] = mapped_column(String(64))
    score: Mapped[float] = mapped_column(Double)
    critical_failed: Mapped[bool] = mapped_column(
        Boolean, default=False, server_default=sa_text("false")
    )
    comment: Mapped[str] = mapped_column(Text, default="", server_default="")
    created_at: Mapped[dt.datetime] = mapped_column(server_default=func.now())

    __table_args__ = (
        CheckConstraint("score BETWEEN 0 AND 100", name="score_range"),
        Index("ix_qa_evaluations_agent_created", "agent", "created_at"),
        Index("ix_qa_evaluations_queue_created", "queue", "created_at"),
        Index("ix_qa_evaluations_recording", "recording_id"),
    )


class QaAnswer(Base):
    __tablename__ = "qa_answers"

    evaluation_id: Mapped[int] = mapped_column(
        BigInteger, ForeignKey("qa_evaluations.id", ondelete="CASCADE"), primary_key=True
    )
    question_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("qa_questions.id", ondelete="RESTRICT"), primary_key=True
    )
    points: Mapped[int] = mapped_column(SmallInteger)

    __table_args__ = (CheckConstraint("points >= 0", name="points_positive"),)
