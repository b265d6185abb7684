"""Render inputs from the database: agents (with their SIP secrets), queues, and the
campaigns' recording policies."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.asterisk.render import AgentConf, CampaignConf, QueueConf
from callcenter.db.models import Agent, Queue
from callcenter.db.models_campaigns import Campaign


def agent_conf(agent: Agent) -> AgentConf:
    return AgentConf(
        name=agent.name,
        extension=agent.extension,
        sip_secret=agent.sip_secret,
        full_name=agent.full_name,
        enabled=agent.enabled,
    )


def queue_conf(queue: Queue) -> QueueConf:
    return QueueConf(
        name=queue.name,
        strategy=queue.strategy,
        service_level_seconds=queue.service_level_seconds,
        wrapup_seconds=queue.wrapup_seconds,
        ring_seconds=queue.ring_seconds,
        retry_seconds=queue.retry_seconds,
        max_wait_seconds=queue.max_wait_seconds,
        max_callers=queue.max_callers,
        weight=queue.weight,
        priority=queue.priority,
        join_empty=queue.join_empty,
        leave_when_empty=queue.leave_when_empty,
        announce_position=queue.announce_position,
        announce_holdtime=queue.announce_holdtime,
        announce_frequency_seconds=queue.announce_frequency_seconds,
        autopause=queue.autopause,
        autopause_after=queue.autopause_after,
        music_class=queue.music_class,
        record_policy=queue.record_policy,
        record_share=queue.record_share,
    )


def load(session: Session) -> tuple[list[AgentConf], list[QueueConf]]:
    """Every agent (disabled ones too: render leaves them out) and every queue, by name."""
    agents = [agent_conf(a) for a in session.scalars(select(Agent).order_by(Agent.name))]
    queues = [queue_conf(q) for q in session.scalars(select(Queue).order_by(Queue.name))]
    return agents, queues


def campaigns(session: Session) -> list[CampaignConf]:
    """Every campaign's recording policy, by name (the dialplan's CREC_<campaign> globals)."""
    rows = session.execute(
        select(Campaign.name, Campaign.record_policy, Campaign.record_share).order_by(Campaign.name)
    )
    return [CampaignConf(name, policy, share) for name, policy, share in rows]
