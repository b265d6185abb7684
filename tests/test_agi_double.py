"""An Asterisk double for AGI tests: the Asterisk side of a FastAGI connection, byte for byte
as Asterisk 22 speaks it (``res/res_agi.c``, checked against ``tests/fixtures/asterisk-traces``).

:class:`AgiChannelModel` is pure: a caller's channel (answered state, variables, the keys the
caller will press, a hang-up) and res_agi.c's command handlers, returning the exact reply bytes.
:class:`AsteriskDouble` connects it to a FastAGI server: it sends the environment (the bytes of
``inbound-answered/agi-raw-in.txt``, with the script and arguments of the call), reads command
lines (LF only), and answers each as the model says, the out-of-band ``HANGUP`` line included.

The caller's keys, ``dtmf``, are consumed by the commands that read the channel:

- a digit (``0-9*#``) is a key press; ``t`` is the caller keeping silent until the time-out of
  the read that meets it; ``h`` is the caller hanging up during that read.
- STREAM FILE / SAY *: a key among the escape digits ends playback (``result=<ASCII>``); a key
  that is not an escape digit is kept for the next read (pressed after the prompt).
- GET DATA: keys up to the maximum, ``#`` ends early (not returned), ``t`` or no more keys is
  a time-out (``200 result=<keys> (timeout)``), as ``ast_app_getdata_full`` reports them.
- WAIT FOR DIGIT: one key (``result=<ASCII>``), or 0 on ``t`` / no more keys.

The tests at the end prove the model against the recordings: fed the commands the recorder
sent, it gives back exactly the bytes Asterisk sent.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

import pytest

from tests import traces

#: ``inbound-answered/agi-raw-in.txt``'s environment, verbatim (``agi_accountcode: `` keeps its
#: trailing space). :func:`test_env_template_is_the_recording` checks it against the file.
ENV_TEMPLATE = (
    b"agi_network: yes\n"
    b"agi_network_script: ivr\n"
    b"agi_request: agi://127.0.0.1:14573/ivr\n"
    b"agi_channel: PJSIP/trunk-00000000\n"
    b"agi_language: en\n"
    b"agi_type: PJSIP\n"
    b"agi_uniqueid: 1795342827.0\n"
    b"agi_version: GIT-22-69535d4837\n"
    b"agi_callerid: 5551230001\n"
    b"agi_calleridname: Carol Caller\n"
    b"agi_callingpres: 0\n"
    b"agi_callingani2: 0\n"
    b"agi_callington: 0\n"
    b"agi_callingtns: 0\n"
    b"agi_dnid: 100\n"
    b"agi_rdnis: unknown\n"
    b"agi_context: from-trunk\n"
    b"agi_extension: 100\n"
    b"agi_priority: 4\n"
    b"agi_enhanced: 0.0\n"
    b"agi_accountcode: \n"
    b"agi_threadid: 140391015552704\n"
    b"agi_arg_1: arg1\n"
    b"\n"
)

#: The usage replies recorded in ``agi-errors`` (res_agi.c's XML docs, markup left in).
USAGE = {
    "STREAM FILE": (
        "Send the given file, allowing playback to be interrupted by the given digits, if any. "
        "Returns <literal>0</literal> if playback completes without a digit being pressed, or "
        "the ASCII numerical value of the digit if one was pressed, or <literal>-1</literal> on "
        "error or if the channel was disconnected. If musiconhold is playing before calling "
        "stream file it will be automatically stopped and will not be restarted after "
        "completion.\nIt sets the following channel variables upon completion:\n"
        "<variable>PLAYBACKSTATUS</variable>: The status of the playback attempt as a text "
        "string.\n    <value>SUCCESS</value>\n    <value>FAILED</value>"
    ),
    "GET DATA": (
        "Stream the given <replaceable>file</replaceable>, and receive DTMF data.\n"
        "Returns the digits received from the channel at the other end."
    ),
}
R510 = b"510 Invalid or unknown command\n"
R511 = b"511 Command Not Permitted on a dead channel or intercept routine\n"
HANGUP = b"HANGUP\n"
ENDPOS = 11234  # hello-world.gsm's length in samples, as recorded
DEAD_OK = {
    "ASYNCAGI BREAK", "DATABASE DEL", "DATABASE DELTREE", "DATABASE GET", "DATABASE PUT",
    "EXEC", "GET FULL VARIABLE", "GET VARIABLE", "NOOP", "SET VARIABLE", "SPEECH DESTROY",
    "SPEECH UNLOAD GRAMMAR", "VERBOSE",
}  # fmt: skip
#: res_agi.c's command table (the words of each command), longest first for matching.
COMMANDS = sorted(
    [
        "ANSWER",
        "ASYNCAGI BREAK",
        "CHANNEL STATUS",
        "DATABASE DEL",
        "DATABASE DELTREE",
        "DATABASE GET",
        "DATABASE PUT",
        "EXEC",
        "GET DATA",
        "GET FULL VARIABLE",
        "GET OPTION",
        "GET VARIABLE",
        "HANGUP",
        "NOOP",
        "RECEIVE CHAR",
        "RECEIVE TEXT",
        "RECORD FILE",
        "SAY ALPHA",
        "SAY DIGITS",
        "SAY NUMBER",
        "SAY PHONETIC",
        "SAY DATE",
        "SAY TIME",
        "SAY DATETIME",
        "SEND IMAGE",
        "SEND TEXT",
        "SET AUTOHANGUP",
        "SET CALLERID",
        "SET CONTEXT",
        "SET EXTENSION",
        "SET MUSIC",
        "SET PRIORITY",
        "SET VARIABLE",
        "STREAM FILE",
        "CONTROL STREAM FILE",
        "TDD MODE",
        "VERBOSE",
        "WAIT FOR DIGIT",
    ],
    key=lambda c: -len(c.split()),
)


def parse_args(line: str) -> list[str]:
    """res_agi.c's ``parse_args``, line for line: spaces split, ``"`` groups, ``\\`` escapes."""
    argv: list[str] = []
    cur: list[str] | None = None
    quoted = escaped = False
    whitespace = True
    for ch in line:
        if ch == '"' and not escaped:
            quoted = not quoted
            if quoted and whitespace:
                cur = []
                argv.append("")
                whitespace = False
            escaped = False
            continue
        if ch in " \t" and not quoted and not escaped:
            whitespace = True
            continue
        if ch == "\\" and not escaped:
            escaped = True
            continue
        if whitespace:
            cur = []
            argv.append("")
            whitespace = False
        assert cur is not None
        argv[-1] += ch
        escaped = False
    return argv


def _usage(command: str) -> bytes:
    text = USAGE.get(command, f"Usage: {command.lower()} ...")
    return (
        b"520-Invalid command syntax.  Proper usage follows:\n"
        + text.encode()
        + b"\n520 End of proper usage.\n"
    )


@dataclass
class AgiChannelModel:
    """A caller's channel as res_agi.c's handlers see it (see the module docstring)."""

    dtmf: str = ""
    variables: dict[str, str] = field(default_factory=dict)
    sounds: set[str] | None = None  # None: every sound exists
    agisighup: bool = True
    state: int = 6  # Up: the dialplan answered before AGI()
    hung_up: bool = False
    hangup_sent: bool = False
    commands: list[str] = field(default_factory=list)
    executed: list[tuple[str, str]] = field(default_factory=list)

    def _exists(self, sound: str) -> bool:
        return self.sounds is None or sound in self.sounds

    def _key(self, escape: str | None) -> str | None:
        """The next key for a read (None: time-out); ``escape`` limits what ends playback."""
        if not self.dtmf:
            return None
        head = self.dtmf[0]
        if head == "h":
            self.dtmf = self.dtmf[1:]
            self.hung_up = True
            return "h"
        if head == "t":
            if escape is None:  # a read that waits: the silence is its time-out
                self.dtmf = self.dtmf[1:]
            return None
        if escape is not None and head not in escape:
            return None  # pressed after the prompt: kept for the next read
        self.dtmf = self.dtmf[1:]
        return head

    def handle(self, line: str) -> bytes:
        """The bytes Asterisk writes for one command line (without its LF)."""
        self.commands.append(line)
        out = b""
        if line[:7].lower() == "failure":
            return b""
        if self.hung_up and not self.hangup_sent and self.agisighup:
            out += HANGUP  # run_agi: the line goes out before the next command is read
            self.hangup_sent = True
        argv = parse_args(line)
        upper = [a.upper() for a in argv]
        name = next((c for c in COMMANDS if upper[: len(c.split())] == c.split()), None)
        if name is None:
            return out + R510
        if self.hung_up and name not in DEAD_OK:
            return out + R511
        reply = self._run(name, argv)
        return out + (reply if reply is not None else _usage(name))

    def _run(self, name: str, argv: list[str]) -> bytes | None:
        argc = len(argv)
        if name == "ANSWER":
            self.state = 6
            return b"200 result=0\n"
        if name == "NOOP":
            return b"200 result=0\n"
        if name == "VERBOSE":
            return b"200 result=1\n" if argc >= 2 else None
        if name == "CHANNEL STATUS":
            if argc not in (2, 3):
                return None
            return f"200 result={self.state}\n".encode()
        if name == "SET VARIABLE":
            if argc != 4:
                return None
            self.variables[argv[2]] = argv[3]
            return b"200 result=1\n"
        if name == "GET VARIABLE":
            if argc != 3:
                return None
            value = self.variables.get(argv[2])
            return b"200 result=0\n" if value is None else f"200 result=1 ({value})\n".encode()
        if name == "EXEC":
            if argc < 2:
                return None
            self.executed.append((argv[1], argv[2] if argc > 2 else ""))
            return b"200 result=0\n"
        if name == "HANGUP":
            if argc > 2:
                return None
            self.hung_up = True
            return b"200 result=1\n"
        if name == "STREAM FILE":
            if argc not in (4, 5):
                return None
            if not self._exists(argv[2]):
                return b"200 result=-1 endpos=0\n"
            key = self._key(argv[3])
            if key == "h":
                return f"200 result=-1 endpos={ENDPOS // 2}\n".encode()
            if key is not None:
                return f"200 result={ord(key)} endpos={ENDPOS // 2}\n".encode()
            return f"200 result=0 endpos={ENDPOS}\n".encode()
        if name in ("SAY NUMBER", "SAY DIGITS"):
            if argc not in ((4, 5) if name == "SAY NUMBER" else (4,)):
                return None
            if not argv[2].lstrip("-").isdigit():
                return None
            key = self._key(argv[3])
            if key == "h":
                return b"200 result=-1\n"
            return f"200 result={ord(key) if key else 0}\n".encode()
        if name == "WAIT FOR DIGIT":
            if argc != 4 or not argv[3].lstrip("-").isdigit():
                return None
            key = self._key(None)
            if key == "h":
                return b"200 result=-1\n"
            return f"200 result={ord(key) if key else 0}\n".encode()
        if name == "GET DATA":
            if argc < 3:
                return None
            if not self._exists(argv[2]):
                return b"200 result=-1\n"
            maximum = int(argv[4]) if argc >= 5 else 1024
            keyed = ""
            while len(keyed) < maximum:
                key = self._key(None)
                if key == "h":
                    return b"200 result=-1\n"
                if key is None:
                    return f"200 result={keyed} (timeout)\n".encode()
                if key == "#":
                    break
                keyed += key
            return f"200 result={keyed}\n".encode()
        return b"200 result=0\n"  # other commands: accepted, nothing modelled


def environment(
    script: str = "ivr",
    args: Iterable[str] = ("arg1",),
    *,
    channel: str | None = None,
    uniqueid: str | None = None,
    callerid: str | None = None,
    extra: Mapping[str, str] | None = None,
) -> bytes:
    """The recorded environment with this call's script, arguments and channel."""
    lines = []
    for raw in ENV_TEMPLATE.decode().split("\n"):
        key, _, value = raw.partition(": ")
        if key.startswith("agi_arg_") or not raw:
            continue
        if key == "agi_network_script":
            value = script
        elif key == "agi_request":
            value = f"agi://127.0.0.1:14573/{script}"
        elif key == "agi_channel" and channel is not None:
            value = channel
        elif key == "agi_uniqueid" and uniqueid is not None:
            value = uniqueid
        elif key == "agi_callerid" and callerid is not None:
            value = callerid
        elif extra and key in extra:
            value = extra[key]
        lines.append(f"{key}: {value}")
    lines += [f"agi_arg_{i}: {a}" for i, a in enumerate(args, 1)]
    return ("\n".join(lines) + "\n\n").encode()


@dataclass
class CallRecord:
    model: AgiChannelModel
    sent: bytes = b""  # what the double (Asterisk) sent
    received: bytes = b""  # what the server sent
    failure: bool = False
    closed_by_server: bool = False

    @property
    def commands(self) -> list[str]:
        return self.model.commands

    @property
    def variables(self) -> dict[str, str]:
        return self.model.variables


class AsteriskDouble:
    """Places one AGI call on a FastAGI server (127.0.0.1) and answers as Asterisk would."""

    def __init__(
        self,
        port: int,
        *,
        script: str = "ivr",
        args: Iterable[str] = ("arg1",),
        dtmf: str = "",
        channel: str = "PJSIP/trunk-00000000",
        uniqueid: str = "1795342827.0",
        callerid: str = "5551230001",
        variables: Mapping[str, str] | None = None,
        sounds: set[str] | None = None,
        agisighup: bool = True,
    ) -> None:
        self.port = port
        self.env = environment(script, args, channel=channel, uniqueid=uniqueid, callerid=callerid)
        base = {"CHANNEL": channel, "UNIQUEID": uniqueid}
        self.model = AgiChannelModel(
            dtmf=dtmf, variables={**base, **(variables or {})}, sounds=sounds, agisighup=agisighup
        )

    async def call(self, timeout: float = 10.0) -> CallRecord:
        record = CallRecord(self.model)
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        try:
            async with asyncio.timeout(timeout):
                writer.write(self.env)
                record.sent += self.env
                while True:
                    line = await reader.readline()
                    if not line:
                        record.closed_by_server = True
                        break
                    record.received += line
                    assert line.endswith(b"\n"), f"command without LF: {line!r}"
                    text = line[:-1].decode()
                    assert "\r" not in text, f"CR in a command: {text!r}"
                    out = self.model.handle(text)
                    if text[:7].lower() == "failure":
                        record.failure = True
                        break
                    writer.write(out)
                    record.sent += out
                    await writer.drain()
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()
        return record


# --- the double checked against the recordings -----------------------------------------------


def _recorded(scenario: str) -> tuple[bytes, list[str], bytes]:
    folder = traces.traces_dir() / scenario
    raw_in = (folder / "agi-raw-in.txt").read_bytes()
    env_end = raw_in.index(b"\n\n") + 2
    commands = (folder / "agi-raw-out.txt").read_text().splitlines()
    return raw_in[:env_end], commands, raw_in[env_end:]


def test_env_template_is_the_recording() -> None:
    env, _, _ = _recorded("inbound-answered")
    assert env == ENV_TEMPLATE
    assert environment("ivr", ["arg1"]) == ENV_TEMPLATE


@pytest.mark.parametrize(
    ("scenario", "dtmf"),
    [("inbound-answered", "1"), ("local-channels", "1"), ("agi-errors", "h")],
)
def test_model_replies_as_recorded(scenario: str, dtmf: str) -> None:
    """Fed the commands the recorder sent, the model answers exactly what Asterisk did (the
    520 usages, the 510, WAIT FOR DIGIT's -1 on hang-up, HANGUP before the next reply, 511s,
    and the commands that still work on a dead channel)."""
    env, commands, replies = _recorded(scenario)
    channel = env.decode().split("agi_channel: ")[1].split("\n")[0]
    model = AgiChannelModel(dtmf=dtmf, variables={"CHANNEL": channel})
    assert b"".join(model.handle(c) for c in commands) == replies


def test_burst_sessions_reply_as_recorded() -> None:
    folder = traces.traces_dir() / "burst" / "agi-sessions"
    sessions = sorted(folder.glob("*-raw-in.txt"))
    assert len(sessions) == 20
    for raw_in_path in sessions:
        raw_in = raw_in_path.read_bytes()
        env_end = raw_in.index(b"\n\n") + 2
        out = raw_in_path.with_name(raw_in_path.name.replace("-in", "-out")).read_text()
        model = AgiChannelModel(dtmf="1")
        assert b"".join(model.handle(c) for c in out.splitlines()) == raw_in[env_end:]


def test_parse_args_matches_res_agi() -> None:
    assert parse_args('STREAM FILE beep ""') == ["STREAM", "FILE", "beep", ""]
    assert parse_args('VERBOSE "after hangup" 1') == ["VERBOSE", "after hangup", "1"]
    assert parse_args(r'SET VARIABLE X "a \"b\" c\\d"') == ["SET", "VARIABLE", "X", 'a "b" c\\d']
    assert parse_args("GET  DATA\tbeep") == ["GET", "DATA", "beep"]
