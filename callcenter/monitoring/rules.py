"""The pure part of live monitoring: who may monitor, what can be monitored, and the AMI
``Originate`` that does it. No I/O here.

The Originate rings the supervisor's phone (``Channel: PJSIP/<phone>``) and, once answered,
runs ``ChanSpy(<agent's channel>,<options>)`` on it (``Application`` / ``Data``). What ChanSpy
does with each option, from Asterisk 22's ``apps/app_chanspy.c``:

- ``u``: the first argument is "a channel uniqueid or fully specified channel name": ChanSpy
  finds that one channel (``ast_channel_get_by_name``) and spies on it alone, and ends at once
  when it is gone. Without ``u`` the argument is a name *prefix*: ``PJSIP/1001`` also matches
  ``PJSIP/10010-...`` and every other channel of the phone, and a ``*`` or digits keyed by the
  supervisor move the spy to another channel. So the target is the agent's channel of this
  call, by its full name (``PJSIP/1001-0000002a``, from the call log: AgentConnect's
  DestChannel), and ``u``.
- ``q``: no beep and no channel name spoken when the spy starts: nobody on the call hears a
  supervisor join.
- ``E``: exit when the spied-on channel hangs up: the supervisor's call ends with the agent's.
- ``w`` (whisper): the supervisor's voice is written to the spied-on channel only: the agent
  hears it, the caller does not.
- ``B`` (barge): written to the spied-on channel and to its bridge peer: both hear it.
- Not used: ``d`` (keys 4/5/6 switch the mode mid-call: a listen could become a barge that
  nobody logged), ``x``/``X``, ``W``, ``r`` (recording belongs to call recording), ``S`` (with
  ``u`` ChanSpy already stops when the channel is gone), ``b``.

What the supervisor hears in every mode: both directions of the agent's channel, mixed.

Asterisk's own gates on this Originate (``main/manager.c``): the AMI user needs the
``originate`` write class (the rendered manager.conf gives it); ChanSpy is not among the
applications that need ``system``, but an Originate whose ``Data`` contains ``CURL``, ``DB``,
``EVAL``, ``FILE``, ``ODBC``, ``REALTIME`` or ``SHELL`` (case-sensitive, anywhere) is refused
"Originate Access Forbidden" without ``system``: a channel name holding one of them is refused
here first, with the reason (:func:`check_channel`).

ChanSpyStart / ChanSpyStop (``main/manager_channels.c``, class ``call``) carry the spyer's and
the spyee's channel fields prefixed ``Spyer`` / ``Spyee`` (``SpyerChannel``,
``SpyeeChannel``, ``SpyeeUniqueid``...).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal, get_args

from callcenter.db.models_quality import MONITOR_MODES
from callcenter.db.models_wallboard import ROLES
from callcenter.monitoring import MonitorError
from callcenter.wallboard.model import AgentLive

Mode = Literal["listen", "whisper", "barge"]
MODES: tuple[Mode, ...] = get_args(Mode)
assert MODES == MONITOR_MODES, "monitor_sessions' CHECK and the modes here must agree"

Result = Literal["originated", "refused", "failed"]

#: ChanSpy's options per mode (see the module's docstring).
CHANSPY_OPTIONS: Mapping[Mode, str] = {"listen": "qEu", "whisper": "qwEu", "barge": "qBEu"}
#: What the supervisor's phone shows while it rings: the mode, then the agent.
LABELS: Mapping[Mode, str] = {"listen": "Listen", "whisper": "Whisper", "barge": "Barge"}
#: How long the supervisor's phone rings (Originate's Timeout, milliseconds; Asterisk's
#: default, said explicitly).
RING_MS = 30_000
#: The roles that may monitor: a supervisor's or an administrator's own session.
MONITOR_ROLES = ROLES

#: A PJSIP endpoint name as ``PJSIP/<name>`` dials it: no ``/`` (the dial string's
#: separator), ``@``, ``,`` (application arguments) or anything a shell or a config file
#: would read differently. The agents' endpoints are their extensions (digits).
PHONE_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
PHONE_RULE = (
    "a phone is the name of its PJSIP endpoint, e.g. 2001 (not PJSIP/2001): letters, digits, "
    "'.', '_' or '-', at most 64"
)
#: Words manager.c refuses in an Originate's Data without the ``system`` class.
FORBIDDEN_IN_DATA = ("CURL", "DB", "EVAL", "FILE", "ODBC", "REALTIME", "SHELL")


def check_phone(phone: str) -> str:
    """The supervisor's phone (a PJSIP endpoint name), stripped; :class:`MonitorError` says
    why not."""
    phone = phone.strip()
    if not PHONE_RE.match(phone):
        raise MonitorError(f"phone {phone!r} is not an endpoint name: {PHONE_RULE}")
    return phone


def parse_mode(text: str) -> Mode | None:
    """The mode a form names, or None when it names none."""
    for mode in MODES:
        if text == mode:
            return mode
    return None


def who(kind: str, name: str) -> str:
    """How an attempt names who made it: a user by name; anyone else as ``kind:name`` (an
    agent's session ``agent:alice``, a screen's token ``token:lobby``, an API token
    ``api:crm``), so a user named like an agent is never mistaken for one."""
    return (name if kind == "user" else f"{kind}:{name}")[:64]


def principal_problem(kind: str, role: str, *, csrf_ok: bool) -> str | None:
    """Why this principal may not monitor (HTTP 403), or None. Only a person at the board
    monitors: a supervisor's or an administrator's session posting the board's form with its
    CSRF token. Never an agent (their desktop session), a screen's token, or an API token:
    listening in needs a human supervisor, whom the log names."""
    if kind == "agent":
        return "an agent's session may not monitor calls"
    if kind == "token":
        return "a screen's token only watches the board"
    if kind == "api":
        return "an API token may not monitor calls: log in to the board as a supervisor"
    if kind != "user" or role not in MONITOR_ROLES:
        return f"the role {role} may not monitor calls"
    if not csrf_ok:
        return "the form's CSRF token is missing or wrong: reload the page"
    return None


@dataclass(frozen=True, slots=True)
class Refusal:
    """Why an attempt is not made, and the HTTP status that says so."""

    status: int
    reason: str


@dataclass(frozen=True, slots=True)
class Target:
    """What can be monitored: the agent's live record, the caller's uniqueid of the call
    they are on, and the supervisor's phone."""

    agent: AgentLive
    call: str
    phone: str


def check_target(
    name: str, node: str, live: AgentLive | None, *, node_down: bool, phone: str | None
) -> Target | Refusal:
    """Whether the agent ``name`` on ``node`` can be monitored now from ``phone``.

    ``live`` is the agent's record in the wallboard's live state (from the bridge). They must
    be on a call on a node whose state is known; the supervisor must have a phone, and not the
    agent's own (it is busy with the very call)."""
    if not phone:
        return Refusal(
            409, "you have no phone to listen on: callcenter users update NAME --phone ENDPOINT"
        )
    if node_down:
        return Refusal(409, f"node {node} is down: whether {name} is on a call is unknown")
    if live is None or live.state == "logged_out":
        return Refusal(409, f"{name} is not logged in on node {node}")
    if live.state != "on_call" or not live.call:
        return Refusal(409, f"{name} is not on a call ({live.state})")
    if live.interface == f"PJSIP/{phone}":
        return Refusal(409, f"your phone {phone} is {name}'s own phone")
    return Target(live, live.call, phone)


def check_channel(name: str, channel: str | None) -> str | Refusal:
    """The agent's channel of the call (from the call log), if ChanSpy can be given it."""
    if not channel:
        return Refusal(
            409, f"the call log does not know {name}'s channel yet: try again in a second"
        )
    if any(ch in channel for ch in ",|\r\n") or not channel.isprintable():
        return Refusal(409, f"{name}'s channel {channel!r} cannot be an application argument")
    found = [word for word in FORBIDDEN_IN_DATA if word in channel]
    if found:
        return Refusal(
            409,
            f"{name}'s channel {channel} contains {found[0]}, which Asterisk refuses in an "
            "Originate's data without the AMI class system",
        )
    return channel


def caller_id(mode: Mode, agent: AgentLive) -> str:
    """What the supervisor's phone shows while it rings: ``"Whisper alice" <1001>`` (the
    agent's extension, when their interface is ``PJSIP/<digits>``). Agent names never hold a
    quote (:mod:`callcenter.names`)."""
    number = agent.interface.partition("/")[2]
    label = f'"{LABELS[mode]} {agent.agent}"'
    return f"{label} <{number}>" if number.isdigit() else label


def originate_fields(
    mode: Mode, phone: str, agent: AgentLive, channel: str, *, by: str
) -> dict[str, str | list[str]]:
    """The Originate of one monitoring session, without ``Action`` and ``Async`` (which
    :meth:`~callcenter.wallboard.control.AgentControl.originate` adds: always Async, the reply
    then only says Asterisk queued it). The variables name the session on the supervisor's
    channel (its CDR and ``core show channel``)."""
    return {
        "Channel": f"PJSIP/{phone}",
        "Application": "ChanSpy",
        "Data": f"{channel},{CHANSPY_OPTIONS[mode]}",
        "Timeout": str(RING_MS),
        "CallerID": caller_id(mode, agent),
        "Variable": [
            f"CC_MONITOR_MODE={mode}",
            f"CC_MONITOR_AGENT={agent.agent}",
            f"CC_MONITOR_BY={by}",
        ],
    }
