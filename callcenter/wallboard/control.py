"""What a supervisor can do to an agent from the board, through AMI (never by editing our own
state: Asterisk's queue membership is the truth, and the bridge reports what it did).

- pause: ``QueuePause`` with ``Interface``, ``Paused: true`` and ``Reason``, without ``Queue``,
  so app_queue pauses the member in every queue (queue_log PAUSEALL) as the agent's own
  feature code does (:mod:`callcenter.agi.features`).
- unpause: the same with ``Paused: false``.
- log out: ``QueueRemove`` of the interface from each queue the agent is a member of; a
  queue that answers "Not there" is fine (the agent left it meanwhile).
- log in (a configured agent the bridge reports logged in nowhere): one ``QueueAdd`` per
  configured membership, exactly those the agent's own ``*11`` sends
  (:func:`callcenter.agi.features.queue_add_actions`: Queue, Interface and StateInterface
  ``PJSIP/<extension>``, MemberName the agent's name, Penalty from ``queue_members``,
  Paused false); "Already there" is fine. The board shows them logged in when the bridge
  reports the members Asterisk added, not before.

One :class:`~callcenter.ami.link.AmiLink` per node, logged in with ``Events: off`` (the
bridge follows the events; this link only sends actions).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping

from callcenter.agi.features import queue_add_actions
from callcenter.ami.connection import AmiClient
from callcenter.ami.link import AmiLink, AmiUnavailable
from callcenter.config import NodeSettings
from callcenter.wallboard.model import AgentLive
from callcenter.wallboard.roster import RosterAgent

log = logging.getLogger(__name__)

REASON_RE = re.compile(r"^[\w .:/-]{0,64}$")
DEFAULT_REASON = "supervisor"


class ControlError(RuntimeError):
    """The action could not be done; ``status`` is the HTTP status that says why."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def check_reason(reason: str) -> str:
    """A pause reason as app_queue and queue_log keep it: up to 64 word characters, spaces
    and ``.:/-`` (no ``|``: queue_log separates its fields with it; no line end or other
    control character: an AMI header ends at one, and a log line must stay one line).
    ``fullmatch``: ``$`` would let one trailing newline through."""
    reason = reason.strip() or DEFAULT_REASON
    if not REASON_RE.fullmatch(reason):
        raise ControlError(400, "a pause reason is up to 64 letters, digits, spaces or . : / -")
    return reason


def links_for(nodes: tuple[NodeSettings, ...]) -> dict[str, AmiLink]:
    return {n.name: AmiLink(n, AmiClient(n, events="off")) for n in nodes}


class AgentControl:
    def __init__(self, links: Mapping[str, AmiLink], *, timeout: float = 5.0) -> None:
        self.links = links
        self.timeout = timeout

    async def _send(self, node: str, action: dict[str, str], ok: tuple[str, ...] = ()
                    ) -> None:  # fmt: skip
        link = self.links.get(node)
        if link is None:
            raise ControlError(404, f"node {node} is not configured")
        try:
            reply = await link.send(action, timeout=self.timeout, wait=1.0)
        except AmiUnavailable as exc:
            raise ControlError(503, str(exc)) from exc
        except TimeoutError as exc:
            raise ControlError(504, f"node {node} did not answer {action['Action']}") from exc
        if not reply.ok and not any(text in reply.message for text in ok):
            raise ControlError(
                502, f"Asterisk refused {action['Action']}: {reply.message or 'no reason'}"
            )

    async def pause(self, agent: AgentLive, reason: str, by: str) -> None:
        reason = check_reason(reason)
        await self._send(agent.node, {"Action": "QueuePause", "Interface": agent.interface,
                                 "Paused": "true", "Reason": reason})  # fmt: skip
        log.info("wallboard: %s paused %s on %s (%s)", by, agent.agent, agent.node, reason)

    async def unpause(self, agent: AgentLive, by: str) -> None:
        await self._send(agent.node, {"Action": "QueuePause", "Interface": agent.interface,
                                 "Paused": "false"})  # fmt: skip
        log.info("wallboard: %s unpaused %s on %s", by, agent.agent, agent.node)

    async def logout(self, agent: AgentLive, by: str) -> None:
        if not agent.queues:
            raise ControlError(409, f"{agent.agent} is in no queue")
        for queue in agent.queues:
            await self._send(agent.node, {"Action": "QueueRemove", "Queue": queue,
                                     "Interface": agent.interface}, ok=("Not there",))  # fmt: skip
        log.info("wallboard: %s logged %s out of %s on %s", by, agent.agent,
                 ", ".join(agent.queues), agent.node)  # fmt: skip

    async def transfer(self, node: str, channel: str, context: str, exten: str, *,
                       attended: bool, by: str) -> None:  # fmt: skip
        """Transfer the caller the agent's ``channel`` is bridged with: ``BlindTransfer``
        (Asterisk hangs the agent up and sends the caller to ``exten@context``) or ``Atxfer``
        (the agent talks to the target first). Checked on Asterisk 22 (traces xfer-blind-ami,
        xfer-attended): the transferer's channel, not the caller's."""
        action = "Atxfer" if attended else "BlindTransfer"
        await self._send(node, {"Action": action, "Channel": channel, "Context": context,
                                "Exten": exten})  # fmt: skip
        log.info("wallboard: %s transferred %s to %s@%s (%s)", by, channel, exten, context,
                 action)  # fmt: skip

    async def originate(self, node: str, fields: dict[str, str | list[str]]) -> None:
        """An Async Originate (the agent's desktop: click to call; a supervisor's live
        monitoring, :mod:`callcenter.monitoring`). Its reply says only that Asterisk queued
        it; the call's progress shows on the phone it rings."""
        link = self.links.get(node)
        if link is None:
            raise ControlError(404, f"node {node} is not configured")
        try:
            reply = await link.send({"Action": "Originate", **fields, "Async": "true"},
                                    timeout=self.timeout, wait=1.0)  # fmt: skip
        except AmiUnavailable as exc:
            raise ControlError(503, str(exc)) from exc
        except TimeoutError as exc:
            raise ControlError(504, f"node {node} did not answer Originate") from exc
        if not reply.ok:
            raise ControlError(502, f"Asterisk refused Originate: {reply.message or 'no reason'}")

    async def login(self, node: str, agent: RosterAgent, by: str) -> None:
        if not agent.enabled:
            raise ControlError(409, f"{agent.name} is disabled (callcenter agents update)")
        if not agent.queues:
            raise ControlError(409, f"{agent.name} is in no queue (callcenter queues join)")
        for action in queue_add_actions(agent.name, agent.interface, agent.queues):
            await self._send(node, action, ok=("Already there",))
        log.info("wallboard: %s logged %s in to %s on %s", by, agent.name,
                 ", ".join(agent.queues), node)  # fmt: skip
