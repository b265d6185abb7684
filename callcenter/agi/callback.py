"""Queue callback that keeps the caller's place (the placeholder pattern of asterisk.md).

The caller asks for a callback (the IVR's ``callback`` target, or ``*`` while waiting in a
queue); the ``callback`` script confirms the number (default: their caller ID), stores the
request (``callbacks``, status ``pending``) and the caller hangs up. Their place is then held by
a *placeholder*: a Local channel that :class:`CallbackService` originates over AMI (always
``Async``)::

    Action: Originate
    Channel: Local/hold@queue-callback        ;2 half runs [queue-callback] hold: joins QUEUE
    Context: queue-callback                   ;1 half, once answered, runs connect: Dial()s
    Exten: connect                            the customer, who is bridged to the agent
    Priority: 1
    Timeout: <(queue max wait + 60) * 1000>   the ;1 half waits that long for an agent
    CallerID: "Callback" <number>
    ChannelId: cb-<id>-<epoch>                ;1 uniqueid: how we recognise our placeholder
    OtherChannelId: cb-<id>-<epoch>-q         ;2 uniqueid (the one app_queue reports)
    ActionID: cb-<unique>                     how we recognise its OriginateResponse
    Variable: CALLBACK_ID=<id>, CALLBACK_NUMBER=<number>, CALLBACK_DIAL=<Dial string>,
              QUEUE=<queue>, CALLBACK_QUEUE=<queue>, QUEUE_PRIORITY=<p>, CALLBACK_PRIO=<p>,
              CALLBACK_POSITION=<position left, or empty>

(both spellings of queue and priority, for the dialplan of issue 3). When app_queue connects the
placeholder to an agent, the ;2 half is answered, so the ;1 half is too and its dialplan calls
the customer: the agent hears the customer's phone ring and then talks to them.

The ``cb-`` that begins the ids and the ActionID
(:data:`callcenter.ami.wanted.CALLBACK_PREFIX`) is what the IVR's own AMI user is filtered by
(``wanted.IVR``): it is sent the four events below of the placeholders only, not those of
every call on the PBX.

What the service follows, from AMI events on its own connection:

- ``AgentConnect`` whose Uniqueid is a placeholder's ;2: status ``dialing``, the agent
  (MemberName), one more attempt.
- ``DialEnd`` whose Uniqueid is a placeholder's ;1: ``ANSWER`` -> ``connected``; anything else
  -> back to ``pending`` (queued again after ``agi.callback_retry_seconds``), or ``failed``
  after ``agi.callback_attempts`` dials.
- ``Hangup`` of a placeholder (or ``OriginateResponse: Failure`` for our action): it is gone;
  a ``pending`` callback is queued again at once (its place was lost, its priority is kept), a
  ``dialing`` one that never got a DialEnd counts as a failed dial.

Restart safety: every state is in the database. On start, and every ``scan_interval`` seconds,
the service reads the open callbacks, asks Asterisk which channels exist (``CoreShowChannels``)
and re-originates each callback whose placeholder is gone; one originated less than
``placement_grace`` seconds ago counts as alive (its channel may not be listed yet). A callback
waiting longer than ``agi.callback_expiry_hours`` fails as ``expired``.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from callcenter.agi import callback_store as store
from callcenter.agi.callback_store import CallbackRow
from callcenter.agi.channel import Channel
from callcenter.agi.history import queue_max_wait
from callcenter.agi.ivr import CallbackPrompts
from callcenter.agi.options import AgiOptions
from callcenter.ami.connection import AmiError
from callcenter.ami.link import AmiLink, AmiUnavailable
from callcenter.ami.protocol import Message
from callcenter.ami.wanted import CALLBACK_PREFIX

log = logging.getLogger(__name__)

UTC = dt.UTC
CONTEXT = "queue-callback"
_NUMBER = re.compile(r"\+?[0-9]{3,20}")
#: Used when the queue is not in our database (Asterisk's own default max wait is none).
DEFAULT_MAX_WAIT = 300


@dataclass(frozen=True, slots=True)
class _Placed:
    callback_id: int
    half: str  # "1": the ;1 half (dials the customer), "2": the ;2 half (in the queue)


def placeholder_ids(callback_id: int, at: float) -> tuple[str, str]:
    """``(ChannelId, OtherChannelId)`` of a placeholder: unique per callback and second, and
    beginning with :data:`~callcenter.ami.wanted.CALLBACK_PREFIX`."""
    base = f"{CALLBACK_PREFIX}{callback_id}-{int(at)}"
    return base, f"{base}-q"


def originate_fields(
    row: CallbackRow, max_wait: int | None, now: dt.datetime
) -> dict[str, str | list[str]]:
    """The Originate of ``row``'s placeholder (without ``Action``/``Async``: see the module)."""
    timeout_ms = ((max_wait or DEFAULT_MAX_WAIT) + 60) * 1000
    channel_id, other_id = placeholder_ids(row.id, now.timestamp())
    variables = {
        "CALLBACK_ID": str(row.id),
        "CALLBACK_NUMBER": row.number,
        "CALLBACK_DIAL": row.dial,
        "QUEUE": row.queue,
        "CALLBACK_QUEUE": row.queue,
        "QUEUE_PRIORITY": str(row.priority),
        "CALLBACK_PRIO": str(row.priority),
        "CALLBACK_POSITION": "" if row.position is None else str(row.position),
    }
    return {
        "Channel": f"Local/hold@{CONTEXT}",
        "Context": CONTEXT,
        "Exten": "connect",
        "Priority": "1",
        "Timeout": str(timeout_ms),
        "CallerID": f'"Callback" <{row.number}>',
        "ChannelId": channel_id,
        "OtherChannelId": other_id,
        "Variable": [f"{k}={v}" for k, v in variables.items()],
    }


class CallbackService:
    """Places and follows the placeholders of open callbacks; restart-safe (see module)."""

    def __init__(
        self,
        engine: Engine,
        ami: AmiLink,
        node: str,
        options: AgiOptions,
        *,
        clock: Callable[[], float] = time.time,
        scan_interval: float = 5.0,
        placement_grace: float = 30.0,
    ) -> None:
        self.engine = engine
        self.ami = ami
        self.node = node
        self.options = options
        self.clock = clock
        self.scan_interval = scan_interval
        self.placement_grace = placement_grace
        self._placed: dict[str, _Placed] = {}  # channel uniqueid -> which placeholder
        self._actions: dict[str, int] = {}  # Originate ActionID -> callback id
        self._events: asyncio.Queue[Message] = asyncio.Queue()
        self._wake = asyncio.Event()
        self._lock = asyncio.Lock()
        self.originated = 0
        ami.add_listener(self._on_event)
        ami.on_connect(lambda _session: self._wake.set())

    def _now(self) -> dt.datetime:
        return dt.datetime.fromtimestamp(self.clock(), UTC)

    def wake(self) -> None:
        """Look at the open callbacks now (a new request, AMI back)."""
        self._wake.set()

    # --- events -------------------------------------------------------------------------

    def _on_event(self, message: Message) -> None:
        if message.event in ("AgentConnect", "DialEnd", "Hangup", "OriginateResponse"):
            uid = message.get("Uniqueid") or ""
            if uid in self._placed or (message.action_id or "") in self._actions:
                self._events.put_nowait(message)

    async def _handle(self, message: Message) -> None:
        now = self._now()
        uid = message.get("Uniqueid") or ""
        placed = self._placed.get(uid)
        if message.event == "OriginateResponse":
            callback_id = self._actions.pop(message.action_id or "", None)
            if callback_id is not None and message.get("Response") != "Success":
                log.info("agi: callback %d: placeholder not placed (reason %s)",
                         callback_id, message.get("Reason"))  # fmt: skip
                await self._gone(callback_id, now)
            return
        if placed is None:
            return
        cid = placed.callback_id
        if message.event == "AgentConnect" and placed.half == "2":
            row = await asyncio.to_thread(store.get, self.engine, cid)
            attempts = (row.attempts if row else 0) + 1
            await asyncio.to_thread(
                store.update, self.engine, cid, status="dialing", attempts=attempts,
                agent=message.get("MemberName") or None, last_attempt_at=now,
            )  # fmt: skip
            log.info("agi: callback %d: agent %s took it, dialling", cid, message.get("MemberName"))
        elif message.event == "DialEnd" and placed.half == "1":
            await self._dial_end(cid, message.get("DialStatus") or "", now)
        elif message.event == "Hangup":
            for key in [k for k, v in self._placed.items() if v.callback_id == cid]:
                del self._placed[key]
            await self._gone(cid, now)

    async def _dial_end(self, cid: int, status: str, now: dt.datetime) -> None:
        if status == "ANSWER":
            await asyncio.to_thread(
                store.update, self.engine, cid, status="connected", completed_at=now
            )
            log.info("agi: callback %d: connected", cid)
            return
        row = await asyncio.to_thread(store.get, self.engine, cid)
        if row is None or row.status != "dialing":
            return
        if row.attempts >= self.options.callback_attempts:
            await asyncio.to_thread(
                store.update, self.engine, cid, status="failed", completed_at=now,
                error=f"customer not reached ({status}) after {row.attempts} attempts",
            )  # fmt: skip
            log.info("agi: callback %d: failed after %d attempts", cid, row.attempts)
        else:
            await asyncio.to_thread(
                store.update, self.engine, cid, status="pending", placeholder=None,
                error=f"dial {row.attempts}: {status}",
            )  # fmt: skip

    async def _gone(self, cid: int, now: dt.datetime) -> None:
        """The placeholder disappeared: a pending callback is placed again at the next scan."""
        row = await asyncio.to_thread(store.get, self.engine, cid)
        if row is None or row.status not in ("pending", "dialing"):
            return
        if row.status == "dialing":
            # Hung up while dialling without a DialEnd we saw: a failed dial.
            await self._dial_end(cid, "HANGUP", now)
            return
        await asyncio.to_thread(store.update, self.engine, cid, placeholder=None, placed_at=None)
        self._wake.set()

    # --- placing ------------------------------------------------------------------------

    async def _live_channels(self) -> set[str]:
        reply = await self.ami.send({"Action": "CoreShowChannels"}, as_list=True, wait=0.0)
        return {e.get("Uniqueid") or "" for e in reply.events if e.event == "CoreShowChannel"}

    async def scan(self) -> int:
        """One pass over the open callbacks; how many placeholders were originated."""
        async with self._lock:
            rows = await asyncio.to_thread(store.open_callbacks, self.engine, self.node)
            if not self.ami.connected:
                return 0
            await self._hang_up_abandoned()
            if not rows:
                return 0
            live = await self._live_channels()
            now = self._now()
            placed = 0
            for row in rows:
                if await self._expired(row, now):
                    continue
                if row.placeholder:
                    self._track(row.id, row.placeholder)
                    young = (
                        row.placed_at
                        and (now - row.placed_at).total_seconds() < self.placement_grace
                    )
                    if row.placeholder in live or f"{row.placeholder}-q" in live or young:
                        continue
                if row.status == "dialing":
                    await self._dial_end(row.id, "LOST", now)
                    continue
                last = row.last_attempt_at
                if last and (now - last).total_seconds() < self.options.callback_retry_seconds:
                    continue
                if await self._originate(row, now):
                    placed += 1
            return placed

    async def _hang_up_abandoned(self) -> None:
        """Hang up the placeholders of cancelled or failed callbacks (AMI Hangup takes a
        uniqueid as well as a name: ``ast_channel_get_by_name``)."""
        for cid, placeholder in await asyncio.to_thread(
            store.abandoned_placeholders, self.engine, self.node
        ):
            for channel in (f"{placeholder}-q", placeholder):
                reply = await self.ami.send({"Action": "Hangup", "Channel": channel}, wait=0.0)
                if not reply.ok:
                    log.debug("agi: callback %d: Hangup %s: %s", cid, channel, reply.message)
            await asyncio.to_thread(
                store.update, self.engine, cid, only_open=False, placeholder=None
            )
            log.info("agi: callback %d: placeholder %s hung up", cid, placeholder)

    async def _expired(self, row: CallbackRow, now: dt.datetime) -> bool:
        age = (now - row.requested_at).total_seconds()
        if row.status != "pending" or age < self.options.callback_expiry_hours * 3600:
            return False
        await asyncio.to_thread(
            store.update, self.engine, row.id, status="failed", completed_at=now, error="expired"
        )
        await self._hang_up_abandoned()
        log.info("agi: callback %d expired after %.0f s", row.id, age)
        return True

    def _track(self, callback_id: int, channel_id: str) -> None:
        self._placed[channel_id] = _Placed(callback_id, "1")
        self._placed[f"{channel_id}-q"] = _Placed(callback_id, "2")

    async def place_now(self, callback_id: int) -> bool:
        """Originate the placeholder of a new request at once (AMI permitting)."""
        async with self._lock:
            row = await asyncio.to_thread(store.get, self.engine, callback_id)
            if row is None or row.status != "pending" or row.placeholder:
                return False
            # A stdio process has only just started its AMI link: give it a moment.
            return await self._originate(row, self._now(), wait=2.0)

    async def _originate(self, row: CallbackRow, now: dt.datetime, wait: float = 0.0) -> bool:
        max_wait = await asyncio.to_thread(queue_max_wait, self.engine, row.queue)
        fields = originate_fields(row, max_wait, now)
        self._track(row.id, str(fields["ChannelId"]))
        try:
            session = await self.ami.wait_session(wait)
            reply = await session.originate(fields, action_id_prefix=CALLBACK_PREFIX)
        except (AmiUnavailable, AmiError, TimeoutError, ConnectionError) as exc:
            log.warning("agi: callback %d: cannot originate the placeholder: %s", row.id, exc)
            return False
        if not reply.ok:
            log.warning("agi: callback %d: Originate refused: %s", row.id, reply.message)
            return False
        self._actions[reply.response.action_id or ""] = row.id
        channel_id = str(fields["ChannelId"])
        await asyncio.to_thread(
            store.update, self.engine, row.id, placeholder=channel_id, placed_at=now
        )
        self.originated += 1
        log.info("agi: callback %d: placeholder %s queued in %s (priority %d)",
                 row.id, channel_id, row.queue, row.priority)  # fmt: skip
        return True

    # --- the loop -----------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Scan at start, on every wake-up and every ``scan_interval``; follow events."""
        events = asyncio.create_task(self._follow(), name="callback-events")
        last_error = ""
        try:
            while not stop.is_set():
                try:
                    await self.scan()
                    last_error = ""
                except (AmiUnavailable, TimeoutError, sa.exc.SQLAlchemyError) as exc:
                    # Said once per kind of trouble, not every scan while it lasts.
                    error = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                    if error != last_error:
                        log.warning("agi: callback scan postponed: %s", error)
                    last_error = error
                except Exception:
                    log.exception("agi: callback scan failed")
                self._wake.clear()
                waits = [
                    asyncio.ensure_future(self._wake.wait()),
                    asyncio.ensure_future(stop.wait()),
                ]
                try:
                    await asyncio.wait(waits, timeout=self.scan_interval,
                                       return_when=asyncio.FIRST_COMPLETED)  # fmt: skip
                finally:
                    for w in waits:
                        w.cancel()
                    await asyncio.gather(*waits, return_exceptions=True)
        finally:
            events.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await events

    async def _follow(self) -> None:
        while True:
            message = await self._events.get()
            try:
                await self._handle(message)
            except Exception:
                log.exception("agi: callback event %s failed", message.event)


# --- the ``callback`` script ------------------------------------------------------------------


def dial_string(template: str, number: str, trunk: str) -> str:
    """The Dial() string for ``number``; ``""`` when the template needs a trunk and none is
    configured."""
    if "{trunk}" in template and not trunk:
        return ""
    return template.format(number=number, trunk=trunk)


async def ask_number(channel: Channel, prompts: CallbackPrompts, number: str) -> str:
    """Confirm ``number`` (1) or key another one; ``""`` when none was confirmed."""
    for _ in range(3):
        if _NUMBER.fullmatch(number):
            digit = await channel.play(prompts.offer, "12")
            digit = digit or await channel.say_digits(number.lstrip("+"), "12")
            digit = digit or await channel.play(prompts.confirm, "12")
            digit = digit or await channel.wait_for_digit(5.0)
            if digit == "1":
                return number
            if digit != "2":
                continue
        keyed = await channel.collect_digits(prompts.enter, timeout=6.0, max_digits=20)
        if _NUMBER.fullmatch(keyed.digits):
            number = keyed.digits
            continue  # read it back for confirmation
        await channel.play(prompts.invalid_prompts)
    return ""
