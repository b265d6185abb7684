"""Agent feature codes: log in with a PIN, log out, pause with a reason, unpause.

All of them act through AMI (QueueAdd, QueueRemove, QueuePause) so that Asterisk's queue state
stays the one truth and the bridge sees each change as the usual member events.

Who is the agent: the phone that called. Its endpoint is the resource of the channel name
(``PJSIP/<endpoint>-<seq>``): Asterisk sets it from the endpoint that authenticated, whereas the
caller ID is whatever the phone sends. Only when the channel is not PJSIP (a Local channel in
tests) is ``agi_callerid`` used. Agents' endpoints are their extensions (issue 3's pjsip.conf),
so the endpoint names the agent.

Arguments: the dialplan may pass the endpoint as arg 1 (``${CHANNEL(endpoint)}``) and the pause
reason after it, or the reason alone (``agent-pause,<reason>``); an argument equal to the
endpoint is skipped, the first other one is the reason.

- ``agent-login``: GET DATA ``agent-pass`` (up to 12 digits, ``#`` ends), verified with
  :func:`callcenter.directory.verify_pin`; three tries. Then one QueueAdd per queue of the agent
  (``queue_members``): Queue, Interface=PJSIP/<ext>, MemberName=<agent name>,
  StateInterface=PJSIP/<ext>, Penalty, Paused=false. "Already there" counts as done.
  ``agent-loginok`` or ``agent-incorrect`` is played. Each wrong PIN is logged at WARNING
  with the agent, their extension and the calling channel (never what was keyed), and so is
  the refusal after the last try.
- ``agent-logout``: QueueRemove from every queue the member is in (QueueStatus with
  ``Member``) and from every queue of the agent in the directory; "Not there" counts as done.
  ``agent-loggedoff``.
- ``agent-pause [reason]``: QueuePause Interface, Paused=true, Reason; no Queue, so every queue
  (queue_log: PAUSEALL then one PAUSE per queue). ``beep``.
- ``agent-unpause``: QueuePause Paused=false, every queue. ``beep``.

``AGENT_STATUS`` is set for the dialplan: ``ok``, ``badpin``, ``unknown`` (no agent has this
endpoint), ``disabled``, ``noami`` (AMI is down: nothing changed).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, selectinload

from callcenter.agi.channel import Channel
from callcenter.ami.link import AmiLink, AmiUnavailable
from callcenter.db.models import Agent, QueueMember
from callcenter.directory import verify_pin

log = logging.getLogger(__name__)

_PJSIP = re.compile(r"PJSIP/(.+)-[0-9a-f]{8}")
_REASON = re.compile(r"[A-Za-z0-9_.-]{1,64}")
PIN_TRIES = 3
PIN_MAX_DIGITS = 12
PIN_TIMEOUT = 6.0

#: What an agent dials from their phone (the ``[agents]`` context of dialplans/agents.conf.j2),
#: as ``callcenter agents phone`` lists them.
FEATURE_CODES: tuple[tuple[str, str], ...] = (
    ("*11", "log in: the phone asks for the agent's PIN, then # (three tries)"),
    ("*12", "log out of every queue"),
    ("*13", "pause in every queue"),
    ("*13<code>", "pause with a reason code, e.g. *132"),
    ("*14", "unpause"),
    ("*97", "the agent's own voicemail"),
)


@dataclass(frozen=True, slots=True)
class AgentInfo:
    name: str
    extension: str
    pin_hash: str
    enabled: bool
    queues: dict[str, int] = field(default_factory=dict)  # queue -> penalty

    @property
    def interface(self) -> str:
        return f"PJSIP/{self.extension}"


def queue_add_actions(name: str, interface: str, queues: Mapping[str, int]) -> list[dict[str, str]]:
    """The QueueAdd per queue (name -> penalty) that logs an agent in: ``*11``'s, and the
    wallboard's Log in (:mod:`callcenter.wallboard.control`)."""
    return [
        {
            "Action": "QueueAdd",
            "Queue": queue,
            "Interface": interface,
            "Penalty": str(penalty),
            "Paused": "false",
            "MemberName": name,
            "StateInterface": interface,
        }
        for queue, penalty in sorted(queues.items())
    ]


def endpoint_of(channel: Channel) -> str:
    """The calling phone's endpoint: from ``PJSIP/<endpoint>-<seq>``, else the caller ID."""
    m = _PJSIP.fullmatch(channel.env.channel)
    return m.group(1) if m else channel.env.callerid


def reason_of(channel: Channel, endpoint: str) -> str:
    for arg in channel.args:
        arg = arg.strip()
        if arg and arg != endpoint:
            return arg if _REASON.fullmatch(arg) else ""
    return ""


def find_agent(engine: Engine, extension: str) -> AgentInfo | None:
    """The agent whose extension is ``extension``, with their queues. Blocking."""
    with Session(engine) as session:
        agent = session.scalar(
            sa.select(Agent)
            .where(Agent.extension == extension)
            .options(selectinload(Agent.memberships).selectinload(QueueMember.queue))
        )
        if agent is None:
            return None
        return AgentInfo(
            name=agent.name,
            extension=agent.extension,
            pin_hash=agent.pin_hash,
            enabled=agent.enabled,
            queues={m.queue.name: m.penalty for m in agent.memberships},
        )


def _check_pin(pin_hash: str, pin: str) -> bool:
    return verify_pin(pin_hash, pin)


class AgentFeatures:
    """The four scripts, bound to the database and the AMI link."""

    def __init__(self, engine: Engine, ami: AmiLink, *, ami_wait: float = 2.0) -> None:
        self.engine = engine
        self.ami = ami
        self.ami_wait = ami_wait

    def scripts(self) -> dict[str, Callable[[Channel], Awaitable[None]]]:
        return {
            "agent-login": self.login,
            "agent-logout": self.logout,
            "agent-pause": self.pause,
            "agent-unpause": self.unpause,
        }

    async def _agent(self, channel: Channel) -> AgentInfo | None:
        endpoint = endpoint_of(channel)
        agent = await asyncio.to_thread(find_agent, self.engine, endpoint) if endpoint else None
        if agent is None:
            log.warning("agi: feature code from %s: no agent has endpoint %r",
                        channel.env.channel, endpoint)  # fmt: skip
            await channel.set_variable("AGENT_STATUS", "unknown")
            await channel.stream("agent-incorrect")
            return None
        if not agent.enabled:
            await channel.set_variable("AGENT_STATUS", "disabled")
            await channel.stream("agent-incorrect")
            return None
        return agent

    async def _send(
        self, channel: Channel, actions: list[dict[str, str]], ok: tuple[str, ...]
    ) -> bool:
        """Send ``actions`` in order; an error reply whose message holds one of ``ok`` counts
        as done. False (and AGENT_STATUS=noami) when AMI is down."""
        try:
            for action in actions:
                reply = await self.ami.send(action, wait=self.ami_wait)
                if not reply.ok and not any(text in reply.message for text in ok):
                    log.warning("agi: %s refused: %s", action.get("Action"), reply.message)
        except (AmiUnavailable, TimeoutError) as exc:
            log.warning("agi: feature code not done: %s", exc)
            await channel.set_variable("AGENT_STATUS", "noami")
            await channel.stream("beeperr")
            return False
        return True

    async def login(self, channel: Channel) -> None:
        await channel.answer()
        agent = await self._agent(channel)
        if agent is None:
            return
        where = f"{channel.env.channel} (caller ID {channel.env.callerid or '-'})"
        for attempt in range(1, PIN_TRIES + 1):
            keyed = await channel.get_data("agent-pass", PIN_TIMEOUT, PIN_MAX_DIGITS)
            # argon2 takes tens of milliseconds of CPU: not on the event loop.
            good = bool(keyed.digits) and await asyncio.to_thread(
                _check_pin, agent.pin_hash, keyed.digits
            )
            if good:
                break
            # A security event: who and from where, never what was keyed.
            if keyed.digits:
                log.warning("agi: wrong PIN for agent %s (extension %s) from %s, try %d of %d",
                            agent.name, agent.extension, where, attempt, PIN_TRIES)  # fmt: skip
            else:
                log.info("agi: no PIN keyed for agent %s (extension %s) from %s, try %d of %d",
                         agent.name, agent.extension, where, attempt, PIN_TRIES)  # fmt: skip
            await channel.stream("agent-incorrect")
        else:
            log.warning("agi: login of agent %s (extension %s) from %s refused after %d tries",
                        agent.name, agent.extension, where, PIN_TRIES)  # fmt: skip
            await channel.set_variable("AGENT_STATUS", "badpin")
            return
        actions = queue_add_actions(agent.name, agent.interface, agent.queues)
        if await self._send(channel, actions, ("Already there",)):
            await channel.set_variable("AGENT_STATUS", "ok")
            await channel.stream("agent-loginok")

    async def logout(self, channel: Channel) -> None:
        await channel.answer()
        agent = await self._agent(channel)
        if agent is None:
            return
        queues = set(agent.queues)
        try:
            status = await self.ami.send(
                {"Action": "QueueStatus", "Member": agent.interface},
                as_list=True,
                wait=self.ami_wait,
            )
            queues |= {
                e.get("Queue") or ""
                for e in status.events
                if e.event == "QueueMember" and e.get("Location") == agent.interface
            }
        except (AmiUnavailable, TimeoutError):
            pass  # _send below reports it
        actions = [
            {"Action": "QueueRemove", "Queue": q, "Interface": agent.interface}
            for q in sorted(queues - {""})
        ]
        if await self._send(channel, actions, ("Not there",)):
            await channel.set_variable("AGENT_STATUS", "ok")
            await channel.stream("agent-loggedoff")

    async def pause(self, channel: Channel) -> None:
        await self._pause(channel, paused=True)

    async def unpause(self, channel: Channel) -> None:
        await self._pause(channel, paused=False)

    async def _pause(self, channel: Channel, *, paused: bool) -> None:
        await channel.answer()
        agent = await self._agent(channel)
        if agent is None:
            return
        action = {"Action": "QueuePause", "Interface": agent.interface,
                  "Paused": "true" if paused else "false"}  # fmt: skip
        reason = reason_of(channel, endpoint_of(channel)) if paused else ""
        if reason:
            action["Reason"] = reason
        if await self._send(channel, [action], ()):
            await channel.set_variable("AGENT_STATUS", "ok")
            await channel.stream("beep")
