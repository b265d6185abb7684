"""Agents, queues and who answers which queue: the call center's directory.

Every function works inside the caller's session and raises :class:`DirectoryError` with a
one-line reason on bad input, before anything is flushed, so a failed command writes nothing.
"""

from __future__ import annotations

import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import select
from sqlalchemy.orm import Session, selectinload

from callcenter import names
from callcenter.db.models import Agent, AgentSession, Call, Queue, QueueMember, QueueVisit
from callcenter.domain import QueueStrategy
from callcenter.recordings import policy as recording_policy

QUEUE_NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
EXTENSION_RE = re.compile(r"^[0-9]{2,16}$")
PIN_RE = re.compile(r"^[0-9]{4,12}$")
SKILL_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")

_hasher = PasswordHasher()


class DirectoryError(ValueError):
    """Bad input for the directory: the message is one line, fit to show an operator."""


def hash_pin(pin: str) -> str:
    return _hasher.hash(pin)


def verify_pin(pin_hash: str, pin: str) -> bool:
    try:
        return _hasher.verify(pin_hash, pin)
    except (VerificationError, InvalidHashError):
        return False


def new_sip_secret() -> str:
    """A strong secret for the agent's PJSIP auth section (32 URL-safe characters)."""
    return secrets.token_urlsafe(24)


# --- validation --------------------------------------------------------------------------


def check_agent_name(name: str) -> str:
    """The name in NFC, the form it is stored and sent to Asterisk in (:mod:`callcenter.names`
    says what is allowed and why)."""
    name = names.normalize(name)
    problem = names.agent_name_problem(name)
    if problem:
        raise DirectoryError(f"agent name {name!r} {problem}; {names.AGENT_RULE}")
    return name


def check_queue_name(name: str) -> str:
    if not QUEUE_NAME_RE.match(name):
        raise DirectoryError(
            f"queue name {name!r} must be lower-case letters, digits, '_' or '-' (at most 64)"
        )
    return name


def check_extension(ext: str) -> str:
    if not EXTENSION_RE.match(ext):
        raise DirectoryError(f"extension {ext!r} must be 2 to 16 digits")
    return ext


def check_pin(pin: str) -> str:
    if not PIN_RE.match(pin):
        raise DirectoryError("the PIN must be 4 to 12 digits")
    return pin


def parse_skills(text: str | Iterable[str]) -> list[str]:
    items = text.split(",") if isinstance(text, str) else list(text)
    skills = sorted({s.strip().lower() for s in items if s.strip()})
    for skill in skills:
        if not SKILL_RE.match(skill):
            raise DirectoryError(f"skill {skill!r} must be lower-case letters, digits, '_' or '-'")
    return skills


def check_strategy(strategy: str) -> str:
    try:
        return QueueStrategy(strategy).value
    except ValueError:
        known = ", ".join(s.value for s in QueueStrategy)
        raise DirectoryError(f"strategy {strategy!r} is not one of {known}") from None


def _check_range(label: str, value: int, low: int, high: int) -> int:
    if not low <= value <= high:
        raise DirectoryError(f"{label} = {value} must be between {low} and {high}")
    return value


# --- agents ------------------------------------------------------------------------------


def get_agent(session: Session, name: str) -> Agent:
    name = names.normalize(name)
    agent = session.scalar(
        select(Agent)
        .where(Agent.name == name)
        .options(selectinload(Agent.memberships).selectinload(QueueMember.queue))
    )
    if agent is None:
        raise DirectoryError(f"no agent named {name!r}")
    return agent


def list_agents(session: Session) -> list[Agent]:
    return list(
        session.scalars(
            select(Agent)
            .order_by(Agent.name)
            .options(selectinload(Agent.memberships).selectinload(QueueMember.queue))
        )
    )


def add_agent(
    session: Session,
    *,
    name: str,
    extension: str,
    pin: str,
    full_name: str = "",
    skills: str | Iterable[str] = (),
) -> Agent:
    name = check_agent_name(name)
    check_extension(extension)
    check_pin(pin)
    skill_list = parse_skills(skills)
    if session.scalar(select(Agent.id).where(Agent.name == name)) is not None:
        raise DirectoryError(f"an agent named {name!r} already exists")
    other = session.scalar(select(Agent.name).where(Agent.extension == extension))
    if other is not None:
        raise DirectoryError(f"extension {extension} already belongs to agent {other!r}")
    agent = Agent(
        name=name,
        extension=extension,
        pin_hash=hash_pin(pin),
        sip_secret=new_sip_secret(),
        full_name=full_name.strip(),
        skills=skill_list,
        enabled=True,
    )
    session.add(agent)
    session.flush()
    return agent


def update_agent(
    session: Session,
    name: str,
    *,
    extension: str | None = None,
    pin: str | None = None,
    full_name: str | None = None,
    skills: str | None = None,
    enabled: bool | None = None,
    new_sip_secret_: bool = False,
) -> Agent:
    agent = get_agent(session, name)
    if extension is not None and extension != agent.extension:
        check_extension(extension)
        other = session.scalar(select(Agent.name).where(Agent.extension == extension))
        if other is not None:
            raise DirectoryError(f"extension {extension} already belongs to agent {other!r}")
        agent.extension = extension
    if pin is not None:
        agent.pin_hash = hash_pin(check_pin(pin))
    if full_name is not None:
        agent.full_name = full_name.strip()
    if skills is not None:
        agent.skills = parse_skills(skills)
    if enabled is not None:
        agent.enabled = enabled
    if new_sip_secret_:
        agent.sip_secret = new_sip_secret()
    session.flush()
    return agent


def remove_agent(session: Session, name: str) -> None:
    session.delete(get_agent(session, name))
    session.flush()


# --- queues ------------------------------------------------------------------------------

#: Queue settings an operator may set, with their bounds (seconds unless said otherwise).
QUEUE_LIMITS: dict[str, tuple[int, int]] = {
    "service_level_seconds": (1, 3600),
    "wrapup_seconds": (0, 3600),
    "ring_seconds": (1, 600),
    "retry_seconds": (0, 600),
    "max_wait_seconds": (1, 86400),
    "max_callers": (0, 100000),
    "weight": (0, 1000),
    "priority": (0, 100),
    "announce_frequency_seconds": (0, 3600),
    "autopause_after": (0, 100),
}
QUEUE_FLAGS = (
    "join_empty",
    "leave_when_empty",
    "announce_position",
    "announce_holdtime",
    "autopause",
    "disposition_required",
)


def _apply_queue_settings(queue: Queue, settings: dict[str, Any]) -> None:
    settings = dict(settings)
    policy, share = settings.pop("record_policy", None), settings.pop("record_share", None)
    if policy is not None or share is not None:
        # Checked together: a sampled policy needs a share (callcenter.recordings.policy).
        current = recording_policy.RecordPolicy.of(queue.record_policy, queue.record_share)
        try:
            checked = recording_policy.check(policy, share, current=current)
        except recording_policy.PolicyError as exc:
            raise DirectoryError(str(exc)) from None
        queue.record_policy, queue.record_share = checked.policy, checked.share
    for key, value in settings.items():
        if value is None:
            continue
        if key == "strategy":
            queue.strategy = check_strategy(value)
        elif key in QUEUE_LIMITS:
            low, high = QUEUE_LIMITS[key]
            setattr(queue, key, _check_range(key, int(value), low, high))
        elif key in QUEUE_FLAGS:
            setattr(queue, key, bool(value))
        elif key in ("display_name", "music_class"):
            setattr(queue, key, str(value).strip())
        else:
            raise DirectoryError(f"unknown queue setting {key!r}")


def get_queue(session: Session, name: str) -> Queue:
    queue = session.scalar(
        select(Queue)
        .where(Queue.name == name)
        .options(selectinload(Queue.members).selectinload(QueueMember.agent))
    )
    if queue is None:
        raise DirectoryError(f"no queue named {name!r}")
    return queue


def list_queues(session: Session) -> list[Queue]:
    return list(
        session.scalars(
            select(Queue)
            .order_by(Queue.name)
            .options(selectinload(Queue.members).selectinload(QueueMember.agent))
        )
    )


def add_queue(session: Session, name: str, **settings: Any) -> Queue:
    check_queue_name(name)
    if session.scalar(select(Queue.id).where(Queue.name == name)) is not None:
        raise DirectoryError(f"a queue named {name!r} already exists")
    queue = Queue(name=name)
    # Column defaults only fill in at flush; set them now so validation sees whole objects.
    for column in Queue.__table__.columns:
        default = column.default
        if default is not None and getattr(default, "is_scalar", False):
            setattr(queue, column.key, default.arg)
    _apply_queue_settings(queue, settings)
    session.add(queue)
    session.flush()
    return queue


def update_queue(session: Session, name: str, **settings: Any) -> Queue:
    queue = get_queue(session, name)
    _apply_queue_settings(queue, settings)
    session.flush()
    return queue


def remove_queue(session: Session, name: str) -> None:
    session.delete(get_queue(session, name))
    session.flush()


def join_queue(session: Session, queue_name: str, agent_name: str, penalty: int = 0) -> QueueMember:
    """Make an agent a member of a queue (or change their penalty: lower rings first)."""
    queue = get_queue(session, queue_name)
    agent = get_agent(session, agent_name)
    _check_range("penalty", penalty, 0, 1000)
    member = session.get(QueueMember, (queue.id, agent.id))
    if member is None:
        member = QueueMember(queue=queue, agent=agent, penalty=penalty)
        session.add(member)
    else:
        member.penalty = penalty
    session.flush()
    return member


def leave_queue(session: Session, queue_name: str, agent_name: str) -> None:
    queue = get_queue(session, queue_name)
    agent = get_agent(session, agent_name)
    member = session.get(QueueMember, (queue.id, agent.id))
    if member is None:
        raise DirectoryError(f"agent {agent_name!r} is not a member of queue {queue_name!r}")
    session.delete(member)
    session.flush()


# --- names the call log knows ------------------------------------------------------------


def check_known_queue(session: Session, name: str) -> str:
    """``name`` if it is a queue of the directory or of the call log (a queue since removed,
    or one of an external node, still has calls); else :class:`DirectoryError`, so that
    ``calls list --queue`` and ``report --queue`` with a typo fail as ``queues show`` does."""
    for probe in (
        select(Queue.id).where(Queue.name == name),
        select(QueueVisit.id).where(QueueVisit.queue == name),
        select(Call.id).where(Call.queue == name),
    ):
        if session.scalar(probe.limit(1)) is not None:
            return name
    raise DirectoryError(f"no queue named {name!r} in the directory or the call log")


def check_known_agent(session: Session, name: str) -> str:
    """``name`` (in NFC) if it is an agent of the directory or of the call log; else
    :class:`DirectoryError` (see :func:`check_known_queue`)."""
    name = names.normalize(name)
    for probe in (
        select(Agent.id).where(Agent.name == name),
        select(QueueVisit.id).where(QueueVisit.agent == name),
        select(Call.id).where(Call.agent == name),
        select(AgentSession.id).where(AgentSession.agent == name),
    ):
        if session.scalar(probe.limit(1)) is not None:
            return name
    raise DirectoryError(f"no agent named {name!r} in the directory or the call log")


# --- views for output --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentView:
    name: str
    full_name: str
    extension: str
    skills: list[str]
    enabled: bool
    queues: dict[str, int]

    @classmethod
    def of(cls, agent: Agent) -> AgentView:
        return cls(
            name=agent.name,
            full_name=agent.full_name,
            extension=agent.extension,
            skills=list(agent.skills),
            enabled=agent.enabled,
            queues={m.queue.name: m.penalty for m in sorted(agent.memberships, key=_by_queue)},
        )


def _by_queue(member: QueueMember) -> str:
    return member.queue.name


QUEUE_FIELDS = (
    "display_name",
    "strategy",
    "service_level_seconds",
    "wrapup_seconds",
    "ring_seconds",
    "retry_seconds",
    "max_wait_seconds",
    "max_callers",
    "weight",
    "priority",
    *QUEUE_FLAGS,
    "announce_frequency_seconds",
    "autopause_after",
    "music_class",
    "record_policy",
    "record_share",
)


def queue_view(queue: Queue) -> dict[str, Any]:
    view: dict[str, Any] = {"name": queue.name}
    view.update({key: getattr(queue, key) for key in QUEUE_FIELDS})
    view["members"] = {
        m.agent.name: m.penalty for m in sorted(queue.members, key=lambda m: m.agent.name)
    }
    return view
