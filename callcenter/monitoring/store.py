"""``monitor_sessions`` (migration 0012) and the lookups of one monitoring attempt, inside the
caller's session (the caller commits).

- :func:`record`: one row per attempt, whatever its result: ``originated`` (Asterisk queued
  the Originate), ``refused`` (not allowed, or nothing to spy on; ``error`` says why) or
  ``failed`` (Asterisk or the network said no; ``error`` says what).
- :func:`user_phone`: the supervisor's phone (``users.phone``); :func:`agent_channel`: the
  agent's channel of the call the live state names (``calls.agent_channel``, which the bridge
  writes from AgentConnect's DestChannel and clears when the call moves on to another queue
  visit).
- :func:`list_sessions`: the log, newest first.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.orm import Session

from callcenter.db.models import Agent, Call
from callcenter.db.models_quality import MonitorSession
from callcenter.db.models_wallboard import User
from callcenter.monitoring.rules import Mode, Result


@dataclass(frozen=True, slots=True)
class Attempt:
    """One attempt to monitor, as it is logged. ``user_name``: see
    :func:`~callcenter.monitoring.rules.who`."""

    user_name: str
    mode: Mode
    agent: str
    node: str
    result: Result
    agent_channel: str = ""
    phone: str = ""
    error: str = ""


@dataclass(frozen=True, slots=True)
class SessionView:
    id: int
    at: dt.datetime
    user_name: str
    mode: str
    agent: str
    node: str
    agent_channel: str
    phone: str
    result: str
    error: str


def record(session: Session, attempt: Attempt) -> int:
    """Add the attempt's row; its id."""
    row = MonitorSession(
        user_name=attempt.user_name, mode=attempt.mode, agent=attempt.agent[:64],
        node=attempt.node[:64], agent_channel=attempt.agent_channel[:128],
        phone=attempt.phone[:64], result=attempt.result, error=attempt.error,
    )  # fmt: skip
    session.add(row)
    session.flush()
    return row.id


def user_phone(session: Session, user: str) -> str | None:
    return session.scalar(sa.select(User.phone).where(User.name == user)) or None


def agent_channel(session: Session, node: str, call: str, agent: str) -> str | None:
    """The agent's channel of call ``call`` on ``node``, while the call log says that agent
    took it (a call that moved on to another agent names theirs: not this one's)."""
    row = session.execute(
        sa.select(Call.agent, Call.agent_channel).where(Call.node == node, Call.uniqueid == call)
    ).first()
    if row is None or row.agent != agent:
        return None
    return row.agent_channel or None


def endpoint_known(session: Session, phone: str) -> bool:
    """Whether an enabled agent has this extension: then the private Asterisk has an endpoint
    of that name (the rendered pjsip.conf holds the agents' endpoints and nothing else)."""
    found = session.scalar(
        sa.select(Agent.id).where(Agent.extension == phone, Agent.enabled.is_(True))
    )
    return found is not None


def list_sessions(
    session: Session,
    since: dt.datetime,
    until: dt.datetime,
    *,
    user: str | None = None,
    agent: str | None = None,
    result: str | None = None,
    limit: int = 1000,
) -> list[SessionView]:
    """The attempts made in [since, until), newest first."""
    query = sa.select(MonitorSession).where(MonitorSession.at >= since, MonitorSession.at < until)
    if user is not None:
        query = query.where(MonitorSession.user_name == user)
    if agent is not None:
        query = query.where(MonitorSession.agent == agent)
    if result is not None:
        query = query.where(MonitorSession.result == result)
    query = query.order_by(MonitorSession.at.desc(), MonitorSession.id.desc()).limit(limit)
    return [
        SessionView(
            id=r.id,
            at=r.at,
            user_name=r.user_name,
            mode=r.mode,
            agent=r.agent,
            node=r.node,
            agent_channel=r.agent_channel,
            phone=r.phone,
            result=r.result,
            error=r.error,
        )
        for r in session.scalars(query)
    ]
