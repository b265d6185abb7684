"""The shell of live monitoring: one attempt, from who asks to the Originate and its row.

:meth:`Monitoring.start` takes who asks and what for (:class:`Ask`) and:

1. refuses (403) anyone but a supervisor's or an administrator's session with its CSRF
   token (:func:`~callcenter.monitoring.rules.principal_problem`);
2. reads the supervisor's phone (``users.phone``, at this moment: a phone changed with the
   CLI counts at once) and takes the agent from the wallboard's live state
   (:class:`~callcenter.wallboard.live.LiveState`, fed by the bridge: the one source of which
   agent is on which call on which node; nothing here keeps a model of its own); refuses
   (409) when there is no phone, the agent is on no call or their node is down;
3. reads the agent's channel of that call from the call log, waiting up to ``channel_wait``
   seconds for the bridge to write it (the live state can arrive over MQTT before the row);
4. sends the Originate through the wallboard's AMI link of the agent's node
   (:meth:`~callcenter.wallboard.control.AgentControl.originate`, always Async: Asterisk's
   ``Success`` says it queued the call; whether the supervisor answers shows on their phone);
5. writes the ``monitor_sessions`` row and a log line, whatever happened.

An attempt the database cannot take (it is down) is still logged, at ERROR, with everything
the row would have held; the supervisor gets the error.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace

import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter.monitoring import rules, store
from callcenter.monitoring.store import Attempt
from callcenter.wallboard.control import AgentControl, ControlError
from callcenter.wallboard.live import LiveState

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Ask:
    """Who asks (``kind``, ``name``, ``role`` of their principal; ``csrf_ok``: the post
    carried the session's CSRF token from our own origin) to monitor whom, how."""

    kind: str
    name: str
    role: str
    csrf_ok: bool
    node: str
    agent: str
    mode: rules.Mode


@dataclass(frozen=True, slots=True)
class Outcome:
    """The attempt as logged, the HTTP status that tells it (200: originated) and whether
    its row was written."""

    attempt: Attempt
    status: int
    recorded: bool

    @property
    def ok(self) -> bool:
        return self.attempt.result == "originated"

    @property
    def message(self) -> str:
        a = self.attempt
        if self.ok:
            return f"{a.mode}: {a.agent} - your phone {a.phone} rings"
        return a.error


class Monitoring:
    def __init__(
        self,
        engine: Engine,
        state: LiveState,
        control: AgentControl,
        node_down: Callable[[str], bool],
        *,
        channel_wait: float = 2.0,
    ) -> None:
        self.engine = engine
        self.state = state
        self.control = control
        self.node_down = node_down
        self.channel_wait = channel_wait

    async def start(self, ask: Ask) -> Outcome:
        by = rules.who(ask.kind, ask.name)
        base = Attempt(by, ask.mode, ask.agent, ask.node, "refused")
        problem = rules.principal_problem(ask.kind, ask.role, csrf_ok=ask.csrf_ok)
        if problem:
            return await self._finish(replace(base, error=problem), 403)
        try:
            phone = await asyncio.to_thread(self._read, store.user_phone, ask.name)
        except sa.exc.SQLAlchemyError as exc:
            return await self._finish(replace(base, result="failed", error=_db(exc)), 503)
        live = self.state.agents.get((ask.node, ask.agent))
        target = rules.check_target(
            ask.agent, ask.node, live, node_down=self.node_down(ask.node), phone=phone
        )
        if isinstance(target, rules.Refusal):
            refused = replace(base, phone=phone or "", error=target.reason)
            return await self._finish(refused, target.status)
        base = replace(base, phone=target.phone)
        try:
            found = await self._channel(ask.node, target.call, ask.agent)
        except sa.exc.SQLAlchemyError as exc:
            return await self._finish(replace(base, result="failed", error=_db(exc)), 503)
        channel = rules.check_channel(ask.agent, found)
        if isinstance(channel, rules.Refusal):
            return await self._finish(replace(base, error=channel.reason), channel.status)
        base = replace(base, agent_channel=channel)
        fields = rules.originate_fields(ask.mode, target.phone, target.agent, channel, by=by)
        try:
            await self.control.originate(ask.node, fields)
        except ControlError as exc:
            return await self._finish(replace(base, result="failed", error=str(exc)), exc.status)
        return await self._finish(replace(base, result="originated"), 200)

    # --- I/O -----------------------------------------------------------------------------

    def _read(self, query: Callable[..., str | None], *args: str) -> str | None:
        with Session(self.engine) as session:
            return query(session, *args)

    async def _channel(self, node: str, call: str, agent: str) -> str | None:
        """The agent's channel from the call log; the bridge writes the call's row a flush
        interval after AgentConnect, so wait up to ``channel_wait`` seconds for it."""
        deadline = time.monotonic() + self.channel_wait
        while True:
            channel = await asyncio.to_thread(self._read, store.agent_channel, node, call, agent)
            if channel or time.monotonic() >= deadline:
                return channel
            await asyncio.sleep(0.2)

    def _write(self, attempt: Attempt) -> None:
        with Session(self.engine) as session, session.begin():
            store.record(session, attempt)

    async def _finish(self, attempt: Attempt, status: int) -> Outcome:
        recorded = True
        try:
            await asyncio.to_thread(self._write, attempt)
        except sa.exc.SQLAlchemyError as exc:
            recorded = False
            log.error("monitoring: cannot log the attempt below in monitor_sessions: %s", _db(exc))
        a = attempt
        where = f"{a.agent} on {a.node}" + (f" ({a.agent_channel})" if a.agent_channel else "")
        phone = f" from phone {a.phone}" if a.phone else ""
        why = f" ({a.error})" if a.error else ""
        level = logging.INFO if status in (200, 409) else logging.WARNING
        if not recorded:
            level = logging.ERROR
        log.log(level, "monitoring: %s %s %s%s: %s%s", a.user_name, a.mode, where, phone,
                a.result, why)  # fmt: skip
        return Outcome(attempt, status, recorded)


def _db(exc: Exception) -> str:
    return "the database is unavailable: " + (str(exc).strip().splitlines() or ["?"])[0]
