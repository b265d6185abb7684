"""The FastAGI wire protocol: a pure, incremental parser of what Asterisk sends, and an encoder
of the commands we send. No I/O here: the session feeds whatever bytes the socket returned, in
chunks of any size, and gets back complete items.

What the wire looks like (Asterisk 22, ``res/res_agi.c`` and ``tests/fixtures/asterisk-traces``):

- Lines end in LF only, both ways. The connection starts with the environment: ``key: value``
  lines (``agi_network: yes``, ``agi_network_script: <path after host/, with ?query>``,
  ``agi_request``, ``agi_channel``, ... ``agi_arg_1..N``), then one empty line. Values keep
  their spaces, and an empty value is ``key: `` with a trailing space (``agi_accountcode: ``).
  ``agi_network_script`` is left out when the URL names no script (``launch_netscript``).
- Each command gets one reply: ``200 result=N [(data)] [endpos=N]`` (``handle_*``), ``510
  Invalid or unknown command``, ``511 Command Not Permitted on a dead channel or intercept
  routine``, or a multi-line usage: ``520-Invalid command syntax.  Proper usage follows:``, the
  usage text (XML markup left in), ``520 End of proper usage.`` (``agi_handle_command``). A
  command without usage text gets the single line ``520 Invalid command syntax.  Proper usage
  not available.``
- When the channel hangs up Asterisk sends the out-of-band line ``HANGUP`` once (unless the
  channel has ``AGISIGHUP=no``). It comes *between* replies, never inside one: ``run_agi``
  writes it at the top of its loop, and all writes come from that one thread. In the recordings
  it arrived after the app's next command and before that command's reply, so a reader must
  take it aside and keep waiting for the reply. Asterisk sends it once more after the script
  ends (when the socket is usually closed already).
- A command line is read with ``fgets`` into an 8192-byte buffer (``AGI_BUF_LEN``): a longer
  line is cut and its tail read as a second command, so :func:`encode_command` refuses one.
  Arguments are split by ``parse_args``: spaces separate, ``"`` groups, ``\\`` escapes the next
  character (inside quotes too).

A peer that is not Asterisk (a port scanner, a health check, garbage) makes :meth:`AgiParser.feed`
raise :class:`ProtocolError`; the session then ends that connection, and nothing else.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from urllib.parse import parse_qsl, urlsplit

__all__ = [
    "MAX_COMMAND_BYTES",
    "AgiParser",
    "Environment",
    "HangupNotice",
    "ProtocolError",
    "Reply",
    "TruncatedMessage",
    "encode_command",
    "parse_reply",
    "quote_arg",
]

#: Longest line we buffer. The biggest real replies are GET FULL VARIABLE values and usage
#: lines (a few kB); a megabyte without a LF is not Asterisk.
MAX_LINE_BYTES = 64 * 1024
#: Most lines in the environment (about 25 plus one per argument; AGI() takes at most 127).
MAX_ENV_LINES = 256
#: Most lines in one multi-line (520) reply; the longest usage text in res_agi.c has ~40.
MAX_BLOCK_LINES = 1024
#: ``AGI_BUF_LEN`` (8192) less the LF and fgets's NUL.
MAX_COMMAND_BYTES = 8190

_ENV_KEY = re.compile(r"[A-Za-z0-9_]{1,64}")
_REPLY_LINE = re.compile(r"(\d{3})([ -])(.*)", re.DOTALL)
_COMMAND_NAME = re.compile(r"[A-Za-z]+( [A-Za-z]+)*")
_RESULT = re.compile(r"result=(\S*)(.*)", re.DOTALL)
_TOKEN = re.compile(r"\S+")
_KEY = re.compile(r"\w+=")
# \b: a key starts a word. The same pairs as without it (a word not followed by "=" fails from
# any of its letters), but without it findall tried every letter of a long word: quadratic.
_PAIR = re.compile(r"\b(\w+)=(\S*)")
_INT = re.compile(r"-?[0-9]+")


EMPTY: Mapping[str, str] = MappingProxyType({})


class ProtocolError(Exception):
    """The peer sent bytes that are not the AGI protocol; the message says what and where."""


class TruncatedMessage(ProtocolError):
    """The connection ended inside a line, the environment or a multi-line reply."""


@dataclass(frozen=True, slots=True)
class HangupNotice:
    """Asterisk's out-of-band ``HANGUP`` line: the channel hung up. Not a reply."""


HANGUP_NOTICE = HangupNotice()


@dataclass(frozen=True, slots=True)
class Environment:
    """The ``agi_*`` variables Asterisk sends first, as received (values unstripped)."""

    values: Mapping[str, str] = field(default_factory=lambda: MappingProxyType({}))

    def get(self, key: str, default: str = "") -> str:
        return self.values.get(key, default)

    @property
    def request(self) -> str:
        return self.get("agi_request")

    @property
    def script(self) -> str:
        """The script name: ``agi_network_script`` (else the path of ``agi_request``) without
        its query string and surrounding slashes, e.g. ``errors`` for ``errors?case=1``."""
        raw = self.values.get("agi_network_script")
        if raw is None:
            raw = self.request
            if "://" in raw:
                try:
                    raw = urlsplit(raw).path
                except ValueError:  # "agi://[host/x": urlsplit refuses a bad IPv6 host
                    raw = raw.split("://", 1)[1].partition("/")[2]
        return raw.split("?", 1)[0].strip("/")

    @property
    def query(self) -> dict[str, str]:
        """The query string of the script, decoded (``{"case": "1"}`` for ``errors?case=1``)."""
        raw = self.values.get("agi_network_script") or self.request
        _, _, query = raw.partition("?")
        return dict(parse_qsl(query, keep_blank_values=True))

    @property
    def args(self) -> tuple[str, ...]:
        """``agi_arg_1`` .. ``agi_arg_N`` in order (stops at the first gap), spaces kept."""
        out: list[str] = []
        while (value := self.values.get(f"agi_arg_{len(out) + 1}")) is not None:
            out.append(value)
        return tuple(out)

    @property
    def channel(self) -> str:
        return self.get("agi_channel")

    @property
    def uniqueid(self) -> str:
        return self.get("agi_uniqueid")

    @property
    def language(self) -> str:
        return self.get("agi_language", "en") or "en"

    @property
    def callerid(self) -> str:
        """The caller's number, or ``""`` when Asterisk says ``unknown`` (``setup_env``)."""
        value = self.get("agi_callerid").strip()
        return "" if value == "unknown" else value

    @property
    def calleridname(self) -> str:
        value = self.get("agi_calleridname").strip()
        return "" if value == "unknown" else value

    @property
    def dnid(self) -> str:
        value = self.get("agi_dnid").strip()
        return "" if value == "unknown" else value

    @property
    def context(self) -> str:
        return self.get("agi_context")

    @property
    def extension(self) -> str:
        return self.get("agi_extension")


@dataclass(frozen=True, slots=True)
class Reply:
    """One reply. ``result`` is the text after ``result=`` (may be empty: GET DATA's
    ``200 result= (timeout)``), ``data`` what is in parentheses after it (a variable's value,
    ``timeout``, ``hangup``...), ``extra`` the other ``key=value`` pairs (``endpos``).
    ``text`` is everything after the code; for a multi-line reply, all its lines."""

    code: int
    result: str = ""
    data: str | None = None
    extra: Mapping[str, str] = field(default_factory=lambda: EMPTY)
    text: str = ""

    @property
    def ok(self) -> bool:
        return self.code == 200

    @property
    def value(self) -> int | None:
        """``result`` as a number, or None when it is not one."""
        try:
            return int(self.result)
        except ValueError:
            return None

    @property
    def endpos(self) -> int | None:
        raw = self.extra.get("endpos")
        if raw is None or not _INT.fullmatch(raw):
            return None
        try:
            return int(raw)
        except ValueError:  # more digits than int() reads (sys.get_int_max_str_digits)
            return None

    @property
    def timed_out(self) -> bool:
        return self.data == "timeout"


def parse_reply(code: int, text: str) -> Reply:
    """A reply from its code and the text after ``NNN `` (pure; see the module docstring)."""
    if code != 200:
        return Reply(code=code, text=text)
    if text.startswith("result=") and " " not in text:  # "result=N": most replies
        return Reply(code=200, result=text[7:], text=text)
    m = _RESULT.match(text)
    if m is None:
        return Reply(code=code, text=text, extra=MappingProxyType(dict(_PAIR.findall(text))))
    result, after = m.group(1), m.group(2)
    data: str | None = None
    rest = after.lstrip(" ")
    if rest.startswith("(") and (end := _data_end(rest)) > 0:
        data, after = rest[1:end], rest[end + 1 :]
    return Reply(
        code=code,
        result=result,
        data=data,
        extra=MappingProxyType(dict(_PAIR.findall(after))),
        text=text,
    )


def _data_end(rest: str) -> int:
    """Where the data of ``rest`` (``(data) key=value ...``) ends: the index of the last ``)``
    that only ``key=value`` pairs follow, or -1. The data may itself hold parentheses and
    spaces (a variable's value).

    In one pass: the pairs are the whitespace-separated tokens at the end that read
    ``key=...``; the ``)`` ends the rightmost of them, or the token before them, that ends in
    one. (Trying each ``)`` with a regex over what follows it, as this did before, made a
    64 kB reply of `` a=)`` take 25 s: tests/test_fuzz_regressions.py.)
    """
    for m in reversed(list(_TOKEN.finditer(rest))):
        if rest[m.end() - 1] == ")":
            return m.end() - 1
        if not _KEY.match(rest, m.start()):
            break
    return -1


Item = Environment | Reply | HangupNotice


class AgiParser:
    """Incremental parser of the Asterisk side of a FastAGI connection.

    :meth:`feed` takes bytes and returns the complete items they finished: first one
    :class:`Environment`, then :class:`Reply` and :class:`HangupNotice` items in order.
    :meth:`feed_eof` says the connection ended; it raises :class:`TruncatedMessage` when that
    cut an item in half. Anything that is not AGI raises :class:`ProtocolError`, after which the
    parser accepts nothing more. ``expect_environment=False`` starts with replies (stdio, where
    pyst2 has read the environment already).
    """

    def __init__(
        self,
        *,
        expect_environment: bool = True,
        max_line: int = MAX_LINE_BYTES,
        max_env_lines: int = MAX_ENV_LINES,
        max_block_lines: int = MAX_BLOCK_LINES,
    ) -> None:
        self._buf = bytearray()
        self._max_line = max_line
        self._max_env_lines = max_env_lines
        self._max_block_lines = max_block_lines
        # None once the environment is complete
        self._env: dict[str, str] | None = {} if expect_environment else None
        self._block_code: int | None = None
        self._block: list[str] = []
        self._failed: ProtocolError | None = None

    @property
    def in_environment(self) -> bool:
        return self._env is not None

    def feed(self, data: bytes) -> list[Item]:
        if self._failed is not None:
            raise self._failed
        buf = self._buf
        buf += data
        out: list[Item] = []
        try:
            last = buf.rfind(b"\n")
            if last < 0:
                if len(buf) > self._max_line:
                    raise ProtocolError(f"more than {self._max_line} bytes without a line end")
                return out
            # Decode every complete line at once: a UTF-8 character never spans a LF, and one
            # decode and split per read is much cheaper than one per line (the environment
            # is some 25 lines, usually in one read).
            text = buf[:last].decode("utf-8", errors="replace")
            del buf[: last + 1]
            if len(buf) > self._max_line:
                raise ProtocolError(f"more than {self._max_line} bytes without a line end")
            lines = text.split("\n")
            if last > self._max_line and any(len(x) > self._max_line for x in lines):
                raise ProtocolError(f"a line of more than {self._max_line} bytes")
            start = 0
            if self._env is not None:
                start = self._env_lines(lines, out)
            for line in lines[start:] if start else lines:
                item = self._line(line)
                if item is not None:
                    out.append(item)
        except ProtocolError as exc:
            self._failed = exc
            self._buf.clear()
            raise
        return out

    def feed_eof(self) -> None:
        """The peer closed. Raises :class:`TruncatedMessage` if that cut an item in half."""
        if self._failed is not None:
            return
        if self._buf:
            raise TruncatedMessage(f"connection closed inside a line ({len(self._buf)} bytes)")
        if self._env is not None and self._env:
            raise TruncatedMessage("connection closed inside the environment")
        if self._block_code is not None:
            raise TruncatedMessage(f"connection closed inside a {self._block_code} reply")

    def _line(self, line: str) -> Item | None:
        # Asterisk sends LF only; a CR would only come from a non-Asterisk peer or a proxy
        # that rewrote line ends, and is harmless to drop.
        if line.endswith("\r"):
            line = line[:-1]
        if self._block_code is not None:
            return self._block_line(line)
        if line.startswith("200 result="):  # the common case, without the regex
            return parse_reply(200, line[4:])
        if line == "HANGUP":
            return HANGUP_NOTICE
        m = _REPLY_LINE.fullmatch(line)
        if m is None:
            raise ProtocolError(f"not an AGI reply: {line[:80]!r}")
        code, sep, text = int(m.group(1)), m.group(2), m.group(3)
        if sep == "-":
            self._block_code = code
            self._block = [text]
            return None
        return parse_reply(code, text)

    def _env_lines(self, lines: list[str], out: list[Item]) -> int:
        """Take the environment lines at the start of ``lines`` (in one tight loop: the
        environment is most of what a short session parses); how many were taken."""
        env = self._env
        assert env is not None
        for i, line in enumerate(lines):
            if line.endswith("\r"):
                line = line[:-1]
            if not line:
                out.append(Environment(MappingProxyType(env)))
                self._env = None
                return i + 1
            key, sep, value = line.partition(":")
            if not sep or not _ENV_KEY.fullmatch(key):
                raise ProtocolError(f"not an AGI environment line: {line[:80]!r}")
            # setup_env writes "%s: %s": one space follows the colon; the rest is the value.
            env[key] = value[1:] if value[:1] == " " else value
            if len(env) > self._max_env_lines:
                raise ProtocolError(f"more than {self._max_env_lines} environment lines")
        return len(lines)

    def _block_line(self, line: str) -> Reply | None:
        code = self._block_code
        assert code is not None
        if line.startswith(f"{code} "):
            self._block.append(line[4:])
            text = "\n".join(self._block)
            self._block_code, self._block = None, []
            return Reply(code=code, text=text)
        if len(self._block) >= self._max_block_lines:
            raise ProtocolError(f"a {code} reply of more than {self._max_block_lines} lines")
        self._block.append(line)
        return None


_PLAIN_ARG = re.compile(r'[^\s"\\\0]+')


def quote_arg(arg: str) -> str:
    """One argument as ``parse_args`` reads it back: bare when it is a plain word, else in
    double quotes with ``"`` and ``\\`` escaped. CR, LF and NUL would end or cut the command
    line (a command injection), so they raise :class:`ValueError`."""
    if _PLAIN_ARG.fullmatch(arg):
        return arg
    if "\r" in arg or "\n" in arg or "\0" in arg:
        raise ValueError(f"an AGI argument may not hold CR, LF or NUL: {arg[:40]!r}")
    return '"' + arg.replace("\\", "\\\\").replace('"', '\\"') + '"'


@functools.lru_cache(maxsize=256)
def _check_command(command: str) -> str:
    if not _COMMAND_NAME.fullmatch(command):
        raise ValueError(f"not an AGI command name: {command!r}")
    return command


def encode_command(command: str, *args: str | int) -> bytes:
    """``command`` (words such as ``STREAM FILE``) and its arguments as one AGI line.

    Raises :class:`ValueError` for a malformed command name, an argument with CR/LF/NUL, or a
    line longer than Asterisk's command buffer (it would be cut in two commands).
    """
    parts = [_check_command(command)]
    for a in args:
        parts.append(str(a) if isinstance(a, int) else quote_arg(a))
    line = " ".join(parts).encode("utf-8") + b"\n"
    if len(line) > MAX_COMMAND_BYTES:
        raise ValueError(f"AGI command of {len(line)} bytes is longer than Asterisk reads")
    return line
