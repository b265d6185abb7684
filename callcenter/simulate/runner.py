"""The AMI side of ``callcenter simulate``: thin, every decision comes from :mod:`.model`.

Contract with ``dialplans/simulate.conf.j2`` (rendered with ``RenderOptions(simulation=True)``):

- A caller is ``Originate Channel=Local/<number>@sim-caller/n Context=<trunk context>
  Exten=<DID>`` with ``CallerID=<number>`` and ``SIM_PRE``/``SIM_DIGITS``/``SIM_MAX``. Its ``;1``
  half runs the real inbound dialplan (IVR over FastAGI, then Queue()); its ``;2`` half keys
  the digits with SendDTMF.
- Patience is kept here, not in the dialplan: only AMI tells whether an agent answered
  (AgentConnect). A caller still waiting ``patience`` seconds after QueueCallerJoin is hung up
  (AMI Hangup of the ``;1`` half: queue_log ABANDON, exactly like a caller's BYE).
- A simulated agent is ``QueueAdd Interface=Local/<ext>@sim-agent/n MemberName=<name>``; its
  ring and talk times are the globals ``SIM_RING_<ext>``/``SIM_TALK_<ext>`` (AMI Setvar without
  a Channel), drawn anew after each of its calls (AgentComplete, AgentRingNoAnswer), because
  the member channel reads them when it starts and AgentCalled can arrive after that.
- Pauses: after a call, with the model's chance, ``QueuePause`` (no Queue: every queue, with
  the reason), and the unpause after the drawn time.

Asterisk quirks: QueueCallerAbandon is sent for a Queue() time-out too (there is no separate
event): a caller is counted abandoned only when *we* hung it up, timed out otherwise. An
originate that fails (OriginateResponse Failure) never reaches a queue.

:meth:`Simulation.run` returns on ``stop`` (SIGINT/SIGTERM in the CLI), at ``max_calls``, or
after ``duration``: it stops originating, waits up to ``drain`` seconds for the callers it
placed to end (so that its counters are final; 0 for Ctrl-C), cancels pending pauses and logs
its agents out (QueueRemove); callers still in the system then finish on their own.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from callcenter.ami.connection import (
    AmiClient,
    AmiError,
    AmiSession,
    Connected,
    Received,
    StreamItem,
)
from callcenter.ami.protocol import Message
from callcenter.config import NodeSettings
from callcenter.simulate.model import Caller, Model, SimAgent

log = logging.getLogger(__name__)

_SIM_CALLER_CHANNEL = re.compile(r"^Local/([0-9]+)@sim-caller-[0-9a-f]+;[12]$")

#: A simulated caller stays on the line at most this long (seconds), whatever happens.
CALLER_MAX_SECONDS = 1800
#: Seconds to wait for the AMI login before giving up.
CONNECT_TIMEOUT = 20.0
#: Seconds each clean-up action may take on the way out.
ACTION_TIMEOUT = 5.0


class SimulationError(RuntimeError):
    """The simulation cannot run (AMI unreachable, a queue refused the agents): one line."""


@dataclass(slots=True)
class Progress:
    """Counters for the progress line. ``waiting`` are callers in a queue right now."""

    placed: int = 0
    failed: int = 0
    queued: int = 0
    answered: int = 0
    abandoned: int = 0
    timed_out: int = 0
    waiting: int = 0
    paused: int = 0
    started: float = field(default_factory=time.monotonic)

    def line(self) -> str:
        elapsed = int(time.monotonic() - self.started)
        return (
            f"{elapsed // 60:02d}:{elapsed % 60:02d}  placed {self.placed}  "
            f"answered {self.answered}  abandoned {self.abandoned}  "
            f"timed out {self.timed_out}  waiting {self.waiting}  paused agents {self.paused}"
            + (f"  failed {self.failed}" if self.failed else "")
        )


class Simulation:
    """Drives callers and agents on one node until stopped."""

    def __init__(
        self,
        node: NodeSettings,
        model: Model,
        *,
        did: str,
        queues: Sequence[str],
        agents: Sequence[SimAgent],
        context: str = "from-trunk",
        max_calls: int | None = None,
        duration: float | None = None,
        drain: float = 0.0,
        on_progress: Callable[[Progress], None] | None = None,
    ) -> None:
        self.node = node
        self.model = model
        self.did = did
        self.queues = list(queues)
        self.agents = list(agents)
        self.context = context
        self.max_calls = max_calls
        self.duration = duration
        self.drain = drain
        self.on_progress = on_progress
        self.progress = Progress()
        self._session: AmiSession | None = None
        self._ready = asyncio.Event()
        self._changed = asyncio.Event()  # set after each event: the drain re-checks
        self._by_number: dict[str, Caller] = {}
        self._waiting: dict[str, asyncio.Task[None]] = {}  # caller ;1 channel -> patience
        self._gave_up: set[str] = set()
        self._by_name = {a.name: a for a in self.agents}
        self._pauses: set[asyncio.Task[None]] = set()
        self._paused: set[str] = set()

    # --- AMI stream ----------------------------------------------------------------------

    async def _handle(self, item: StreamItem) -> None:
        if isinstance(item, Connected):
            self._session = item.session
            self._ready.set()
        elif isinstance(item, Received) and isinstance(item.frame, Message):
            await self._event(item.frame)
        else:
            self._ready.clear()
            self._session = None

    async def _event(self, ev: Message) -> None:
        name = ev.event
        chan = ev.get("Channel") or ""
        if name == "QueueCallerJoin":
            caller = self._by_number.get(ev.get("CallerIDNum") or "")
            if caller is not None and chan not in self._waiting:
                self.progress.queued += 1
                self._waiting[chan] = asyncio.create_task(self._patience(chan, caller.patience))
        elif name == "AgentConnect":
            task = self._waiting.pop(chan, None)
            if task is not None:
                task.cancel()
                self.progress.answered += 1
        elif name == "QueueCallerAbandon":
            task = self._waiting.pop(chan, None)
            if task is not None:
                task.cancel()
                if chan in self._gave_up:
                    self.progress.abandoned += 1
                else:
                    self.progress.timed_out += 1
            self._gave_up.discard(chan)
        elif name in ("AgentComplete", "AgentRingNoAnswer", "AgentDump"):
            agent = self._by_name.get(ev.get("MemberName") or "")
            if agent is not None:
                await self._draw_agent(agent)
                if name == "AgentComplete":
                    pause = self.model.pause_after_call()
                    if pause is not None and agent.name not in self._paused:
                        task = asyncio.create_task(self._pause(agent, pause.reason, pause.seconds))
                        self._pauses.add(task)
                        task.add_done_callback(self._pauses.discard)
        elif name == "Hangup":
            # By the channel's name: connected-line updates rewrite a Local half's CallerID.
            m = _SIM_CALLER_CHANNEL.match(chan)
            if m is not None:
                self._by_number.pop(m.group(1), None)
        elif name == "OriginateResponse" and ev.get("Response") == "Failure":
            self.progress.failed += 1
        self.progress.waiting = len(self._waiting)
        self._changed.set()

    # --- actions -------------------------------------------------------------------------

    async def _send(self, action: dict[str, str]) -> bool:
        session = self._session
        if session is None:
            return False
        try:
            reply = await session.send(action, timeout=ACTION_TIMEOUT)
        except (AmiError, TimeoutError) as exc:
            log.warning("simulate: %s failed: %r", action.get("Action"), exc)
            return False
        if not reply.ok:
            log.info("simulate: %s: %s", action.get("Action"), reply.message)
        return reply.ok

    async def _patience(self, channel: str, seconds: float) -> None:
        await asyncio.sleep(seconds)
        self._gave_up.add(channel)
        await self._send({"Action": "Hangup", "Channel": channel})

    async def _draw_agent(self, agent: SimAgent) -> None:
        call = self.model.agent_call()
        for var, value in (("SIM_RING", call.ring), ("SIM_TALK", call.talk)):
            await self._send(
                {"Action": "Setvar", "Variable": f"{var}_{agent.extension}", "Value": f"{value:g}"}
            )

    async def _pause(self, agent: SimAgent, reason: str, seconds: float) -> None:
        base = {"Action": "QueuePause", "Interface": agent.interface}
        self._paused.add(agent.name)
        self.progress.paused = len(self._paused)
        try:
            await self._send({**base, "Paused": "true", "Reason": reason})
            await asyncio.sleep(seconds)
            await self._send({**base, "Paused": "false"})
        finally:
            self._paused.discard(agent.name)
            self.progress.paused = len(self._paused)

    async def _login(self) -> None:
        for agent in self.agents:
            await self._draw_agent(agent)
            for queue in self.queues:
                await self._send({
                    "Action": "QueueAdd", "Queue": queue, "Interface": agent.interface,
                    "MemberName": agent.name, "Penalty": "0", "Paused": "false",
                })  # fmt: skip

    async def _logout(self) -> None:
        for agent in self.agents:
            for queue in self.queues:
                await self._send(
                    {"Action": "QueueRemove", "Queue": queue, "Interface": agent.interface}
                )

    async def _place(self, caller: Caller) -> None:
        session = self._session
        if session is None:
            self.progress.failed += 1
            return
        self._by_number[caller.number] = caller
        self.progress.placed += 1
        fields = {
            "Channel": f"Local/{caller.number}@sim-caller/n",
            "Context": self.context,
            "Exten": self.did,
            "Priority": "1",
            "CallerID": f'"Sim Caller {caller.seq}" <{caller.number}>',
            "Variable": (
                f"SIM_PRE={caller.pre:g},SIM_DIGITS={caller.digits},SIM_MAX={CALLER_MAX_SECONDS}"
            ),
        }
        try:
            reply = await session.originate(fields, timeout=ACTION_TIMEOUT)
        except (AmiError, TimeoutError) as exc:
            log.warning("simulate: originate failed: %r", exc)
            reply = None
        if reply is None or not reply.ok:
            self.progress.failed += 1
            self._by_number.pop(caller.number, None)

    # --- the run -------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> Progress:
        client = AmiClient(self.node)
        task = asyncio.create_task(client.run(self._handle), name="simulate-ami")
        ticker: asyncio.Task[None] | None = None
        try:
            try:
                async with asyncio.timeout(CONNECT_TIMEOUT):
                    await self._ready.wait()
            except TimeoutError:
                raise SimulationError(
                    f"cannot log in to AMI at {self.node.host}:{self.node.port} "
                    f"(node {self.node.name}) within {CONNECT_TIMEOUT:g}s: is Asterisk running?"
                ) from None
            await self._login()
            ticker = asyncio.create_task(self._tick(stop), name="simulate-progress")
            deadline = None if self.duration is None else time.monotonic() + self.duration
            while not stop.is_set():
                if self.max_calls is not None and self.progress.placed >= self.max_calls:
                    break
                gap = self.model.next_gap()
                if deadline is not None:
                    gap = min(gap, max(deadline - time.monotonic(), 0.0))
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(gap):
                        await stop.wait()
                if stop.is_set() or (deadline is not None and time.monotonic() >= deadline):
                    break
                await self._place(self.model.caller())
            if self.drain > 0:
                # Let the callers placed finish (agents still in), so the counters are final.
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(self.drain):
                        while self._by_number or self._waiting:
                            self._changed.clear()
                            await self._changed.wait()
            return self.progress
        finally:
            for pause in list(self._pauses):
                pause.cancel()
            for patience in self._waiting.values():
                patience.cancel()
            with contextlib.suppress(Exception):
                async with asyncio.timeout(ACTION_TIMEOUT * 2):
                    # Unpause (a cancelled pause leaves the member paused), then log out.
                    for agent in self.agents:
                        if agent.name in self._paused:
                            await self._send(
                                {
                                    "Action": "QueuePause",
                                    "Interface": agent.interface,
                                    "Paused": "false",
                                }
                            )
                    await self._logout()
            if ticker is not None:
                ticker.cancel()
            task.cancel()
            await asyncio.gather(task, *(t for t in [ticker] if t), return_exceptions=True)
            if self.on_progress is not None:
                self.on_progress(self.progress)

    async def _tick(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            if self.on_progress is not None:
                self.on_progress(self.progress)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(1.0):
                    await stop.wait()
