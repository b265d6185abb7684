"""The AGI scripts and the contract between them and the dialplan.

Asterisk calls ``AGI(agi://{agi.host}:{agi.port}/<script>,<args>)`` (FastAGI, ``callcenter
agi``) or ``AGI(/path/to/callcenter,agi-stdio,<script>,<args>)`` (a process per call, ``callcenter
agi-stdio``); the same flows run either way.

Scripts
=======

``ivr`` — arg 1: the IVR's name, or the DID dialled (looked up in the IVRs' ``dids``); without
  it, ``agi_dnid``/``agi_extension`` are tried, then the IVR named ``default``, then the only
  one. No IVR found: ``FAILURE`` (AGISTATUS=FAILURE: the dialplan sends the caller to
  ``[agi] fallback_queue``, or plays its "try later" without one).
  Answers, walks the IVR (:mod:`callcenter.agi.walk`) and, before returning, sets:

  ================== ===========================================================================
  IVR_NAME           the IVR (the survey and callback scripts read it later)
  IVR_TARGET         ``queue`` | ``extension`` | ``voicemail`` | ``hangup`` | ``callback``
  QUEUE              the queue (targets queue and callback)
  QUEUE_PRIORITY     the caller's app_queue priority, when the IVR sets one (else unset: the
                     dialplan uses the queue's own, QPRIO_<queue>)
  QUEUE_TIMEOUT      the queue's ``max_wait_seconds`` (Queue()'s timeout, so EXITWITHTIMEOUT
                     is logged); unset for a queue not in the database
  IVR_EXTEN          the extension (target extension); also set as IVR_EXTENSION
  IVR_MAILBOX        the mailbox, ``box@context`` (target voicemail)
  IVR_PATH           the way taken, e.g. ``main:welcome[1]>sales`` (see walk.py); the AMI
                     bridge copies it to ``calls.ivr_path`` (CoreConfig.ivr_path_variable =
                     "IVR_PATH")
  IVR_DIGITS         every digit keyed, in order
  IVR_SECONDS        seconds spent in the IVR (one decimal)
  IVR_LANGUAGE       the language chosen (CHANNEL(language) is set too)
  IVR_CLOSED         ``yes`` when the caller came outside business hours
  SURVEY             ``yes`` when the IVR has a survey: the dialplan sends the caller to the
                     ``survey`` script after the agent hangs up
  CALLBACK_OFFER     ``yes`` when the IVR says ``callback_offer = true``: a caller no agent
                     answered (Queue() timed out...) is offered a callback
  CALLER_HISTORY_*   see history.py (CALLS, ANSWERED, LAST_AT, LAST_OUTCOME, LAST_QUEUE,
                     LAST_AGENT)
  PREFERRED_AGENT    a returning caller's last agent (name), when the IVR allows it and that
                     agent is an enabled member of QUEUE; with PREFERRED_AGENT_INTERFACE
                     (``PJSIP/<ext>``) and PREFERRED_AGENT_TIMEOUT (seconds)
  ================== ===========================================================================

  All of these are set even when the caller hangs up in the IVR (SET VARIABLE works on a dead
  channel), with IVR_TARGET=hangup, so the call log has the path. A screen-pop goes out on MQTT
  (:mod:`callcenter.agi.screenpop`) for calls that reach a queue.

  Preferred agent: we ring them first with a ``Dial()`` before ``Queue()``, guarded by their
  state, because app_queue has no per-call member preference (penalties are per member, and
  QUEUE_MAX_PENALTY cannot single out one agent)::

      same => n,Set(PA=${PREFERRED_AGENT_INTERFACE})
      same => n,GotoIf($["${PA}" = ""]?queue)
      same => n,GotoIf($["${QUEUE_MEMBER(${QUEUE},paused,${PA})}" != "0"]?queue)
      same => n,GotoIf($["${DEVICE_STATE(${PA})}" != "NOT_INUSE"]?queue)
      same => n,Dial(${PA},${PREFERRED_AGENT_TIMEOUT})
      same => n,GotoIf($["${DIALSTATUS}" = "ANSWER"]?answered)
      same => n(queue),Queue(...)

``callback`` — arg 1: the queue (else QUEUE), arg 2: the position the caller left
  (``${QUEUEPOSITION}``, may be empty). Offers the caller ID (1: yes, 2: key another number),
  stores the request and has the placeholder originated over AMI (:mod:`callcenter.agi.callback`:
  context ``queue-callback``, extensions ``hold`` and ``connect``). Sets CALLBACK_ID,
  CALLBACK_NUMBER and CALLBACK_PLACED=yes; CALLBACK_NUMBER empty means declined or impossible
  (the caller goes back into the queue). The dialplan must *not* originate the placeholder
  itself: the service owns it, so that a restart can re-create it. CALLBACK_DIAL, if set on the
  channel, overrides how the customer is dialled (default ``agi.callback_dial`` with the
  global OUTBOUND_TRUNK).

``survey`` — arg 1: queue, arg 2: agent (``${MEMBERNAME}``), arg 3: IVR (default IVR_NAME),
  arg 4: the outbound campaign (``${CAMPAIGN_ID}``; none for an inbound call). See survey.py.
  Sets SURVEY_SCORES (``question=score,...``).

``agent-login``, ``agent-logout``, ``agent-pause`` (reason), ``agent-unpause`` — feature codes,
  see features.py. Set AGENT_STATUS.

``demo`` — the IVR of the recorded traces (ANSWER, STREAM FILE hello-world, GET DATA beep 5000 1,
  SET VARIABLE QUEUE sales|support, SET VARIABLE IVR_PATH): a five-command flow for smoke tests
  and the benchmark.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field

from sqlalchemy.engine import Engine

from callcenter.agi import callback_store
from callcenter.agi.callback import CallbackService, ask_number, dial_string
from callcenter.agi.channel import AgiError, CallerHungUp, Channel
from callcenter.agi.features import AgentFeatures
from callcenter.agi.history import (
    History,
    MaxWaits,
    PreferredAgent,
    lookup,
    preferred_agent,
    screenpop_payload,
)
from callcenter.agi.ivr import Ivr, TargetKind, find_ivr
from callcenter.agi.options import AgiOptions
from callcenter.agi.screenpop import ScreenPopPublisher
from callcenter.agi.survey import run_survey
from callcenter.agi.walk import WalkResult, walk
from callcenter.ami.link import AmiLink

log = logging.getLogger(__name__)

Script = Callable[[Channel], Awaitable[None]]
UTC = dt.UTC
#: Longest wait for the database on a caller's time (history); then the call goes on without.
LOOKUP_TIMEOUT = 2.0


class ScriptFailed(AgiError):
    """The script cannot do its job (no such IVR): answered with FAILURE."""


@dataclass
class Services:
    """What the flows need; built once per process by :mod:`callcenter.agi.app`."""

    node: str
    options: AgiOptions
    ivrs: Mapping[str, Ivr]
    engine: Engine
    ami: AmiLink
    callbacks: CallbackService
    screenpop: ScreenPopPublisher | None = None
    clock: Callable[[], dt.datetime] = field(default=lambda: dt.datetime.now(UTC))


def build_scripts(services: Services) -> dict[str, Script]:
    flows = Flows(services)
    scripts: dict[str, Script] = {
        "ivr": flows.ivr,
        "callback": flows.callback,
        "survey": flows.survey,
        "demo": demo,
    }
    scripts.update(AgentFeatures(services.engine, services.ami).scripts())
    return scripts


async def demo(channel: Channel) -> None:
    """The recorded demo IVR: 1 -> sales, anything else -> support (five commands)."""
    await channel.answer()
    await channel.stream("hello-world", "")
    keyed = await channel.get_data("beep", 5.0, 1)
    queue = "sales" if keyed.digits == "1" else "support"
    await channel.set_variable("QUEUE", queue)
    await channel.set_variable("IVR_PATH", f"demo:menu[{keyed.digits or 't'}]>{queue}")


class Flows:
    def __init__(self, services: Services) -> None:
        self.s = services
        self.max_waits = MaxWaits(services.engine)

    # --- ivr ------------------------------------------------------------------------------

    async def ivr(self, channel: Channel) -> None:
        s = self.s
        env = channel.env
        ivr = find_ivr(s.ivrs, *channel.args[:1], env.dnid, env.extension)
        if ivr is None:
            raise ScriptFailed(f"no IVR for {channel.args[:1] or env.dnid!r}")
        now = s.clock()
        history_task = (
            asyncio.create_task(self._history(channel, now), name="agi-history")
            if ivr.history
            else None
        )
        result = WalkResult(ivr=ivr.name)
        try:
            await channel.answer()
            result = await walk(ivr, channel, now=now)
        finally:
            history = await self._settle(history_task, channel)
            await self._finish(channel, ivr, result, history, now)
        if result.hung_up:
            raise CallerHungUp(f"in the IVR at {result.path}")

    async def _history(self, channel: Channel, now: dt.datetime) -> History:
        s = self.s
        return await asyncio.to_thread(
            lookup, s.engine, channel.env.callerid, exclude_uniqueid=channel.env.uniqueid,
            days=s.options.history_days, limit=s.options.history_calls, now=now,
        )  # fmt: skip

    async def _settle(self, task: asyncio.Task[History] | None, channel: Channel) -> History:
        empty = History(channel.env.callerid)
        if task is None:
            return empty
        try:
            async with asyncio.timeout(LOOKUP_TIMEOUT):
                return await task
        except Exception as exc:  # the database being slow or down must not cost the call
            log.warning("agi %s: no caller history: %r", channel.env.uniqueid, exc)
            task.cancel()
            return empty

    async def _finish(
        self, channel: Channel, ivr: Ivr, result: WalkResult, history: History, now: dt.datetime
    ) -> None:
        s = self.s
        target = result.target
        variables: dict[str, str] = {
            "IVR_NAME": ivr.name,
            "IVR_TARGET": target.kind.value,
            "IVR_PATH": result.path,
            "IVR_DIGITS": result.digits,
            "IVR_SECONDS": f"{result.seconds:.1f}",
            "IVR_LANGUAGE": result.language,
            "IVR_CLOSED": "yes" if result.closed else "no",
            "SURVEY": "yes" if ivr.survey is not None else "no",
            "CALLBACK_OFFER": "yes" if ivr.callback_offer else "no",
        }
        preferred: PreferredAgent | None = None
        if target.queue:
            variables["QUEUE"] = target.queue
            if target.priority is not None:
                variables["QUEUE_PRIORITY"] = str(target.priority)
            try:
                max_wait, preferred = await self._queue_facts(ivr, history, target.queue, now)
            except Exception as exc:
                log.warning("agi %s: queue facts unavailable: %r", channel.env.uniqueid, exc)
                max_wait = None
            if max_wait is not None:
                variables["QUEUE_TIMEOUT"] = str(max_wait)
        if target.kind is TargetKind.EXTENSION:
            variables["IVR_EXTEN"] = variables["IVR_EXTENSION"] = target.extension
        if target.kind is TargetKind.VOICEMAIL:
            variables["IVR_MAILBOX"] = target.mailbox
        if ivr.history:
            variables.update(history.variables())
        if preferred is not None:
            variables["PREFERRED_AGENT"] = preferred.name
            variables["PREFERRED_AGENT_INTERFACE"] = preferred.interface
            variables["PREFERRED_AGENT_TIMEOUT"] = str(s.options.preferred_agent_seconds)
        for name, value in variables.items():
            await channel.set_variable(name, value)
        if s.screenpop is not None and ivr.history and target.queue and not result.hung_up:
            s.screenpop.publish(
                s.node,
                channel.env.uniqueid,
                screenpop_payload(
                    node=s.node, uniqueid=channel.env.uniqueid,
                    caller_number=channel.env.callerid, caller_name=channel.env.calleridname,
                    ivr=ivr.name, ivr_path=result.path, target=target.kind.value,
                    queue=target.queue, language=result.language, history=history,
                    preferred=preferred, at=now,
                ),
            )  # fmt: skip

    async def _queue_facts(
        self, ivr: Ivr, history: History, queue: str, now: dt.datetime
    ) -> tuple[int | None, PreferredAgent | None]:
        s = self.s

        def facts() -> tuple[int | None, PreferredAgent | None]:
            max_wait = self.max_waits(queue)
            agent = None
            if ivr.preferred_agent and history.calls:
                agent = preferred_agent(
                    s.engine, history, queue, days=s.options.preferred_agent_days, now=now
                )
            return max_wait, agent

        async with asyncio.timeout(LOOKUP_TIMEOUT):
            return await asyncio.to_thread(facts)

    # --- callback -------------------------------------------------------------------------

    async def callback(self, channel: Channel) -> None:
        s = self.s
        args = channel.args
        queue = (args[0] if args else "") or await channel.get_variable("QUEUE") or ""
        raw_position = (args[1] if len(args) > 1 else "") or await channel.get_variable(
            "QUEUEPOSITION"
        )
        position = int(raw_position) if raw_position and raw_position.isdigit() else None
        ivr = find_ivr(s.ivrs, await channel.get_variable("IVR_NAME") or "")
        if not queue or ivr is None:
            log.warning("agi %s: callback without a queue or IVR", channel.env.uniqueid)
            await channel.set_variable("CALLBACK_NUMBER", "")
            return
        number = await ask_number(channel, ivr.callback, channel.env.callerid)
        dial = ""
        if number:
            dial = await channel.get_variable("CALLBACK_DIAL") or dial_string(
                s.options.callback_dial,
                number,
                await channel.get_variable("OUTBOUND_TRUNK") or "",
            )
            if not dial:
                log.warning("agi: callback impossible: no OUTBOUND_TRUNK and no CALLBACK_DIAL")
        if not dial:
            await channel.set_variable("CALLBACK_NUMBER", "")
            return
        raw_priority = await channel.get_variable("QUEUE_PRIORITY") or await channel.get_variable(
            "QUEUE_PRIO"
        )
        priority = int(raw_priority) if raw_priority and raw_priority.isdigit() else 0
        callback_id = await asyncio.to_thread(
            callback_store.create, s.engine, node=s.node, queue=queue, number=number,
            caller_uniqueid=channel.env.uniqueid, caller_number=channel.env.callerid,
            priority=priority, position=position, dial=dial, now=s.clock(),
        )  # fmt: skip
        await channel.set_variable("CALLBACK_ID", callback_id)
        await channel.set_variable("CALLBACK_NUMBER", number)
        await channel.set_variable("CALLBACK_PLACED", "yes")
        placed = False
        try:
            async with asyncio.timeout(5.0):
                placed = await s.callbacks.place_now(callback_id)
        except Exception as exc:  # the caller is not kept waiting for AMI or the database
            log.warning("agi: callback %d not placed yet: %r", callback_id, exc)
        if not placed:
            s.callbacks.wake()  # the service's scan places it as soon as it can
        await channel.play(ivr.callback.accepted)

    # --- survey ---------------------------------------------------------------------------

    async def survey(self, channel: Channel) -> None:
        s = self.s
        args = channel.args
        queue = (args[0] if args else "") or await channel.get_variable("QUEUE") or None
        agent = (args[1] if len(args) > 1 else "") or await channel.get_variable("MEMBERNAME")
        named = (args[2] if len(args) > 2 else "") or await channel.get_variable("IVR_NAME") or ""
        campaign = (args[3] if len(args) > 3 else "") or None
        ivr = s.ivrs.get(named)
        if ivr is None or ivr.survey is None:
            ivr = next((i for i in s.ivrs.values() if i.survey is not None), None)
        if ivr is None or ivr.survey is None:
            log.info("agi %s: no survey configured", channel.env.uniqueid)
            return
        await channel.answer()
        scores = await run_survey(
            channel, ivr.survey, s.engine, node=s.node, agent=agent or None, queue=queue,
            campaign=campaign, clock=s.clock,
        )  # fmt: skip
        await channel.set_variable("SURVEY_SCORES", ",".join(f"{q}={v}" for q, v in scores.items()))
