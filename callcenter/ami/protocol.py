"""Asterisk Manager Interface framing: a pure, incremental parser and an action encoder.

No I/O here: the connection feeds whatever bytes the socket returned, in chunks of any size,
and gets back complete frames. What the wire looks like (Asterisk 22, see
``asterisk-traces/README.md``):

- The first line is the banner, ``Asterisk Call Manager/11.0.0\\r\\n``, with *no* blank line
  after it. Every other frame is ``Key: value\\r\\n`` lines ended by an empty line, i.e. the
  frame ends with ``\\r\\n\\r\\n``. Lines end in CRLF only; a bare LF is data, not a line end.
- Empty values are sent as ``Key: `` with a trailing space; values may contain ``": "``
  (e.g. ``AppData``), so only the first ``": "`` separates key and value.
- Keys may repeat (``ChanVariable``, ``Variable``), so a frame is an ordered list of pairs.
- Text is UTF-8, and a character can be split between two TCP reads: decoding each chunk on its
  own loses it (panoramisk turned "José" into "Jos"). We decode incrementally and replace
  invalid bytes instead of dropping them.
- No Asterisk string holds a NUL (they are C strings), and PostgreSQL text refuses one: a NUL
  in a frame made the call log's whole batch fail again at every retry. It is replaced, as an
  invalid byte is (U+FFFD).
"""

from __future__ import annotations

import codecs
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from itertools import repeat
from operator import contains, methodcaller

__all__ = [
    "DEFAULT_MAX_FRAME_CHARS",
    "ActionValue",
    "AmiParser",
    "Banner",
    "Frame",
    "FrameTooLarge",
    "MalformedMessage",
    "Message",
    "encode_action",
]

#: Largest frame we buffer. Asterisk's biggest frames (a CoreShowChannel with every header, a
#: Status with all ChanVariables) are a few kB; anything near this is a broken or hostile peer.
DEFAULT_MAX_FRAME_CHARS = 1 << 20

_EOM = "\r\n\r\n"
_EOL = "\r\n"


@dataclass(frozen=True, slots=True)
class Banner:
    """The first line of a connection, without its CRLF (``Asterisk Call Manager/11.0.0``)."""

    text: str


class Message:
    """One AMI frame: ordered ``(key, value)`` pairs.

    ``fields`` maps each key to its *first* value (as Asterisk's own ``astman_get_header``
    does); :meth:`getall` returns every value of a repeated key and :attr:`pairs` every line,
    in order. Keys are case-sensitive, exactly as Asterisk sends them.

    Treat instances as immutable. This is a plain slotted class rather than a frozen
    dataclass, and ``pairs`` is built only when asked for, because one is made per frame on
    the hot path: the dict is all the event layer reads.
    """

    __slots__ = ("_pairs", "_text", "fields")

    fields: Mapping[str, str]

    def __init__(self, text: str, fields: Mapping[str, str]) -> None:
        self._text = text
        self._pairs: tuple[tuple[str, str], ...] | None = None
        self.fields = fields

    @classmethod
    def from_pairs(cls, pairs: Iterable[tuple[str, str]]) -> Message:
        items = tuple(pairs)
        message = cls("\r\n".join(f"{k}: {v}" for k, v in items), _first_values(items))
        message._pairs = items
        return message

    @property
    def pairs(self) -> tuple[tuple[str, str], ...]:
        if self._pairs is None:
            self._pairs = _split_pairs(self._text)
        return self._pairs

    @property
    def text(self) -> str:
        """The frame as received, without the blank line that ended it."""
        return self._text

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Message) and other._text == self._text

    def __hash__(self) -> int:
        return hash(self._text)

    def __repr__(self) -> str:
        return f"Message({self.pairs!r})"

    def __getitem__(self, key: str) -> str:
        return self.fields[key]

    def __contains__(self, key: object) -> bool:
        return key in self.fields

    def get(self, key: str, default: str | None = None) -> str | None:
        return self.fields.get(key, default)

    def getall(self, key: str) -> list[str]:
        return [v for k, v in self.pairs if k == key]

    @property
    def event(self) -> str | None:
        """The ``Event`` header: set on events, ``None`` on action responses."""
        return self.fields.get("Event")

    @property
    def response(self) -> str | None:
        """The ``Response`` header (Success, Error, Goodbye, Follows) of an action response."""
        return self.fields.get("Response")

    @property
    def action_id(self) -> str | None:
        return self.fields.get("ActionID")


@dataclass(frozen=True, slots=True)
class MalformedMessage:
    """A frame with a line that is not ``Key: value``.

    ``raw`` is the whole frame text (without the final blank line) so nothing is lost;
    ``pairs`` holds the lines that did parse. The stream stays in step: the next frame is
    parsed normally.
    """

    raw: str
    error: str
    pairs: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class FrameTooLarge:
    """The peer sent more than ``limit`` characters without ending the frame.

    The parser drops what it buffered (``prefix`` keeps the first 200 characters for the log)
    and discards everything up to the next blank line, then carries on. A connection that
    produces this is best closed by its owner.
    """

    limit: int
    prefix: str


Frame = Banner | Message | MalformedMessage | FrameTooLarge


class AmiParser:
    """Incremental AMI frame parser. One instance per connection.

    ``feed(data)`` takes any bytes and returns the frames that are now complete, in order;
    the rest waits for more data. It never raises on bad input: malformed frames and
    oversized frames come back as :class:`MalformedMessage` / :class:`FrameTooLarge`.
    """

    __slots__ = ("_banner_done", "_buf", "_decoder", "_discarding", "_max", "_scan")

    def __init__(
        self, *, expect_banner: bool = True, max_frame_chars: int = DEFAULT_MAX_FRAME_CHARS
    ) -> None:
        if max_frame_chars < 8:
            raise ValueError("max_frame_chars is too small to hold a frame")
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._buf = ""
        # Where the next search for the end of a frame starts: everything before it is known
        # to hold no "\r\n\r\n", so small reads do not rescan the buffer.
        self._scan = 0
        self._banner_done = not expect_banner
        self._discarding = False
        self._max = max_frame_chars

    @property
    def buffered(self) -> int:
        """Characters held waiting for the end of a frame."""
        return len(self._buf)

    def feed(self, data: bytes) -> list[Frame]:
        text = self._decoder.decode(data)
        if not text:
            return []
        if "\x00" in text:
            text = text.replace("\x00", "\ufffd")
        buf = self._buf + text
        out: list[Frame] = []
        pos = 0
        scan = self._scan
        if not self._banner_done:
            end = buf.find(_EOL)
            if end < 0:
                return self._keep(out, buf, 0)
            out.append(Banner(buf[:end]))
            self._banner_done = True
            pos = scan = end + 2
        while (end := buf.find(_EOM, scan)) >= 0:
            if self._discarding:
                self._discarding = False
            elif end > pos:
                # end == pos would be an empty frame (a stray blank line): nothing to report.
                out.append(_parse_frame(buf[pos:end]))
            pos = scan = end + 4
        return self._keep(out, buf, pos)

    def _keep(self, out: list[Frame], buf: str, pos: int) -> list[Frame]:
        rest = buf[pos:] if pos else buf
        if len(rest) > self._max:
            if not self._discarding:
                out.append(FrameTooLarge(self._max, rest[:200]))
                self._discarding = True
                self._banner_done = True
            # Keep only what could be the start of the terminator that ends the junk.
            rest = rest[-3:]
        self._buf = rest
        self._scan = max(0, len(rest) - 3)
        return out


_split_line = methodcaller("split", ": ", 1)
_SEP = ": "


def _parse_frame(block: str) -> Message | MalformedMessage:
    lines = block.split(_EOL)
    # Fast path, all in C: with every CRLF turned into ": ", a frame whose every line holds
    # exactly one ": " splits into key, value, key, value... The check is exact: each line
    # holds at least one ": " (``all``), and 2n parts for n lines leave room for no more
    # (a CRLF turned into ": " never joins a ":" or " " of its neighbours into another one).
    parts = block.replace(_EOL, _SEP).split(_SEP)
    if len(parts) == 2 * len(lines) and all(map(contains, lines, repeat(_SEP))):
        pairs = iter(parts)
        fields: dict[str, str] = dict(zip(pairs, pairs, strict=False))
    else:
        # A value holding ": " (AppData...) or a malformed line. dict() accepts the
        # two-item lists that split() returns and raises ValueError on a line without ": ".
        try:
            fields = dict(map(_split_line, lines))
        except ValueError:
            return _parse_slow(block)
    if len(fields) != len(lines):
        # A repeated key: dict() kept the last value, but ``fields`` promises the first.
        fields = dict(map(_split_line, reversed(lines)))
    return Message(block, fields)


def _split_pairs(block: str) -> tuple[tuple[str, str], ...]:
    pairs = []
    for line in block.split(_EOL):
        key, sep, value = line.partition(": ")
        if sep or not line.endswith(":"):
            pairs.append((key, value))
        else:
            pairs.append((line[:-1], ""))
    return tuple(pairs)


def _first_values(pairs: Iterable[tuple[str, str]]) -> dict[str, str]:
    first: dict[str, str] = {}
    for key, value in pairs:
        first.setdefault(key, value)
    return first


def _parse_slow(block: str) -> Message | MalformedMessage:
    pairs: list[tuple[str, str]] = []
    error = ""
    for line in block.split(_EOL):
        key, sep, value = line.partition(": ")
        if not sep:
            # Tolerate "Key:" (no space) as an empty value: Asterisk itself always sends
            # "Key: ", but a header built by hand in some module might not.
            if line.endswith(":") and len(line) > 1:
                key, value = line[:-1], ""
            else:
                error = error or f"line without 'Key: ': {line[:80]!r}"
                continue
        pairs.append((key, value))
    if error:
        return MalformedMessage(block, error, tuple(pairs))
    message = Message(block, _first_values(pairs))
    message._pairs = tuple(pairs)
    return message


ActionValue = str | int | Sequence[str]


def encode_action(action: Mapping[str, ActionValue] | Iterable[tuple[str, str]]) -> bytes:
    """Encode an action as AMI bytes: ``Key: value`` lines with CRLF, then a blank line.

    ``action`` is a mapping (a sequence value repeats the key once per item, e.g.
    ``{"Variable": ["A=1", "B=2"]}`` for Originate) or an iterable of pairs. Booleans become
    ``true``/``false``. A CR or LF in a key or value would let a caller inject headers or whole
    actions, so it raises :class:`ValueError`, as do empty keys and keys with ``:``.
    """
    lines: list[str] = []
    items: Iterable[tuple[str, ActionValue]] = (
        action.items() if isinstance(action, Mapping) else action
    )
    for key, value in items:
        for one in _values(key, value):
            lines.append(f"{_check_key(key)}: {_check_value(key, one)}\r\n")
    if not lines:
        raise ValueError("an action needs at least one header")
    lines.append("\r\n")
    return "".join(lines).encode("utf-8")


def _values(key: str, value: ActionValue) -> Iterator[str]:
    if isinstance(value, bool):
        yield "true" if value else "false"
    elif isinstance(value, int):
        yield str(value)
    elif isinstance(value, str):
        yield value
    else:
        for item in value:
            if not isinstance(item, str):
                raise ValueError(f"{key}: list items must be str, got {type(item).__name__}")
            yield item


def _check_key(key: str) -> str:
    if not key or ":" in key or "\r" in key or "\n" in key or key != key.strip():
        raise ValueError(f"invalid AMI header name {key!r}")
    return key


def _check_value(key: str, value: str) -> str:
    if "\r" in value or "\n" in value:
        raise ValueError(f"{key}: CR/LF in a value would inject AMI headers")
    return value
