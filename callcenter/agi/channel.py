"""The channel API that flows use: one object per AGI session, the same over FastAGI and stdio.

Every method sends one AGI command (``res/res_agi.c`` names and arguments, nothing invented)
and waits for its reply with a time-out. The caller hanging up raises :class:`CallerHungUp`,
and only that, whatever the way Asterisk tells it:

- the out-of-band ``HANGUP`` line (FastAGI) or SIGHUP (stdio) seen by the transport;
- a ``511 Command Not Permitted on a dead channel`` reply;
- ``200 result=-1`` from a command that waits on the channel (STREAM FILE, GET DATA,
  WAIT FOR DIGIT, SAY ...). That result also means "failed" (a sound file that does not exist
  gives ``200 result=-1 endpos=0``), so the channel asks ``CHANNEL STATUS``: on a hung-up
  channel Asterisk answers ``HANGUP`` and ``511`` (recorded in ``agi-errors``); on a live one
  a state, and the command's failure is raised as :class:`AgiCommandFailed` instead.

Once hung up, commands Asterisk refuses on a dead channel raise :class:`CallerHungUp` without
being sent; those it allows (``dead`` in res_agi.c's command table: SET/GET VARIABLE, GET FULL
VARIABLE, VERBOSE, NOOP, EXEC, DATABASE ...) still go out, so a flow can record what happened
(``IVR_PATH``) in a ``finally`` block after the caller left.

Errors that end the session rather than the call (the connection closed or timed out, the peer
broke the protocol) are :class:`SessionLost`.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from callcenter.agi.protocol import Environment, Reply, encode_command

log = logging.getLogger(__name__)

#: Commands res_agi.c runs on a dead channel (``dead = 1`` in its command table).
DEAD_OK = frozenset(
    {
        "ASYNCAGI BREAK",
        "DATABASE DEL",
        "DATABASE DELTREE",
        "DATABASE GET",
        "DATABASE PUT",
        "EXEC",
        "GET FULL VARIABLE",
        "GET VARIABLE",
        "NOOP",
        "SET VARIABLE",
        "SPEECH DESTROY",
        "SPEECH UNLOAD GRAMMAR",
        "VERBOSE",
    }
)
DTMF = "0123456789*#"
#: CHANNEL STATUS results (``enum ast_channel_state``): 6 is Up.
STATE_UP = 6


class AgiError(Exception):
    """Base of what the channel raises."""


class CallerHungUp(AgiError):
    """The caller hung up. Flows may catch it to clean up; the session ends normally."""


class SessionLost(AgiError):
    """The AGI connection is gone or out of step (closed, timed out, not AGI)."""


class AgiCommandError(AgiError):
    """Asterisk refused a command: 510 (unknown) or 520 (bad syntax, with the usage text)."""

    def __init__(self, command: str, reply: Reply) -> None:
        first = reply.text.splitlines()[0] if reply.text else ""
        super().__init__(f"{command}: {reply.code} {first}")
        self.command = command
        self.reply = reply


class AgiCommandFailed(AgiError):
    """A command answered ``result=-1`` on a live channel (e.g. a sound file is missing)."""

    def __init__(self, command: str, reply: Reply) -> None:
        super().__init__(f"{command}: failed ({reply.text})")
        self.command = command
        self.reply = reply


class Transport(Protocol):
    """One AGI conversation: FastAGI (:mod:`callcenter.agi.server`) or stdio
    (:mod:`callcenter.agi.stdio`)."""

    @property
    def hung_up(self) -> bool:
        """Asterisk said the channel hung up (HANGUP line or SIGHUP)."""
        ...

    async def command(self, line: bytes, timeout: float) -> Reply:
        """Send one command line and return its reply. Raises :class:`SessionLost`."""
        ...


@dataclass(frozen=True, slots=True)
class Digits:
    """What the caller keyed: ``digits`` without the terminator; ``timed_out`` when the time
    ran out before the maximum or the terminator was reached."""

    digits: str
    timed_out: bool = False


class Channel:
    """The caller's channel, for flows. ``command_timeout`` bounds every wait for a reply;
    commands that themselves wait (``timeout`` arguments) get that time on top."""

    def __init__(
        self, transport: Transport, env: Environment, *, command_timeout: float = 60.0
    ) -> None:
        self.transport = transport
        self.env = env
        self.command_timeout = command_timeout
        self._dead = False

    @property
    def args(self) -> tuple[str, ...]:
        return self.env.args

    @property
    def hung_up(self) -> bool:
        return self._dead or self.transport.hung_up

    # --- the core ------------------------------------------------------------------------

    async def command(self, command: str, *args: str | int, wait: float = 0.0) -> Reply:
        """Send ``command`` and return its 200 reply; raise as the module docstring says."""
        if self.hung_up and command not in DEAD_OK:
            self._dead = True
            raise CallerHungUp(f"{command} not sent: the caller hung up")
        reply = await self.transport.command(
            encode_command(command, *args), self.command_timeout + wait
        )
        if self.transport.hung_up:
            self._dead = True
        if reply.code == 511:
            self._dead = True
            raise CallerHungUp(f"{command}: 511 on a dead channel")
        if reply.code != 200:
            raise AgiCommandError(command, reply)
        return reply

    async def _blocking(self, command: str, *args: str | int, wait: float = 0.0) -> Reply:
        """A command that waits on the channel: ``result=-1`` is a hang-up or a failure."""
        reply = await self.command(command, *args, wait=wait)
        if reply.value != -1 and reply.data != "hangup":
            return reply
        if self.hung_up:
            raise CallerHungUp(f"{command}: the caller hung up")
        # Which one? Ask. A dead channel answers HANGUP + 511, which raises CallerHungUp.
        status = await self.command("CHANNEL STATUS")
        if self.hung_up or status.value == -1:
            self._dead = True
            raise CallerHungUp(f"{command}: the caller hung up")
        raise AgiCommandFailed(command, reply)

    # --- the API -------------------------------------------------------------------------

    async def answer(self) -> None:
        await self._blocking("ANSWER")

    async def stream(self, prompt: str, escape: str = "") -> str:
        """Play ``prompt`` (a sound name without extension); return the escape digit pressed
        or ``""``. A missing file is logged and skipped: one bad prompt must not drop a call
        (IVR definitions are checked for their files at load)."""
        try:
            reply = await self._blocking("STREAM FILE", prompt, escape)
        except AgiCommandFailed:
            log.warning("agi %s: cannot play %r", self.env.uniqueid, prompt)
            return ""
        return _digit(reply)

    async def play(self, prompts: Sequence[str], escape: str = "") -> str:
        """Play ``prompts`` in order, stopping at the first escape digit (returned)."""
        for prompt in prompts:
            digit = await self.stream(prompt, escape)
            if digit:
                return digit
        return ""

    async def get_data(self, prompt: str, timeout: float, max_digits: int) -> Digits:
        """GET DATA: play ``prompt``, then read up to ``max_digits`` digits, ``#`` ending early;
        ``timeout`` seconds for the first and between digits (``ast_app_getdata_full``)."""
        ms = max(1, round(timeout * 1000))
        reply = await self._blocking(
            "GET DATA", prompt, ms, max_digits, wait=timeout * (max_digits + 1)
        )
        return Digits(reply.result, reply.timed_out)

    async def wait_for_digit(self, timeout: float) -> str:
        """One digit within ``timeout`` seconds, or ``""``."""
        reply = await self._blocking("WAIT FOR DIGIT", max(1, round(timeout * 1000)), wait=timeout)
        return _digit(reply)

    async def collect_digits(
        self,
        prompts: Sequence[str],
        *,
        timeout: float,
        max_digits: int,
        terminator: str = "#",
    ) -> Digits:
        """Play ``prompts`` (any digit interrupts) and collect up to ``max_digits`` digits;
        ``terminator`` ends early and is not returned; ``timeout`` seconds for the first digit
        after the prompts and between digits.

        One prompt with ``#`` as terminator is a single GET DATA (one round trip), whose
        terminator Asterisk fixes to ``#``; otherwise STREAM FILE then WAIT FOR DIGIT.
        """
        if len(prompts) == 1 and terminator == "#":
            return await self.get_data(prompts[0], timeout, max_digits)
        keyed = await self.play(prompts, DTMF)
        while True:
            if terminator and keyed.endswith(terminator):
                return Digits(keyed[: -len(terminator)])
            if len(keyed) >= max_digits:
                return Digits(keyed)
            digit = await self.wait_for_digit(timeout)
            if not digit:
                return Digits(keyed, timed_out=True)
            keyed += digit

    async def say_number(self, number: int, escape: str = "") -> str:
        return _digit(await self._blocking("SAY NUMBER", number, escape))

    async def say_digits(self, digits: str, escape: str = "") -> str:
        return _digit(await self._blocking("SAY DIGITS", digits, escape))

    async def get_variable(self, name: str) -> str | None:
        """A channel variable or function (``CALLERID(num)``); None when it is not set."""
        reply = await self.command("GET VARIABLE", name)
        return reply.data if reply.value == 1 else None

    async def set_variable(self, name: str, value: str | int) -> None:
        await self.command("SET VARIABLE", name, str(value))

    async def exec(self, application: str, data: str = "", *, timeout: float = 0.0) -> int:
        """Run a dialplan application; its return value (-2: no such application).
        ``timeout`` is how long it may run beyond the usual command time-out."""
        args = (application, data) if data else (application,)
        reply = await self.command("EXEC", *args, wait=timeout)
        return reply.value if reply.value is not None else -1

    async def verbose(self, message: str, level: int = 1) -> None:
        await self.command("VERBOSE", message, level)

    async def channel_status(self) -> int:
        reply = await self.command("CHANNEL STATUS")
        return reply.value if reply.value is not None else -1

    async def hangup(self) -> None:
        """Hang the caller up. The session goes on (dead) until the flow returns."""
        await self.command("HANGUP")
        self._dead = True


def _digit(reply: Reply) -> str:
    """STREAM FILE, WAIT FOR DIGIT, SAY ...: ``result`` is the ASCII code of the digit, 0 none."""
    value = reply.value
    if value is None or not 0 < value < 128:  # chr() raises past 0x10FFFF; DTMF is ASCII
        return ""
    return chr(value) if chr(value) in DTMF else ""
