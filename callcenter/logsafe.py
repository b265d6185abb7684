"""Log lines that a client cannot forge, and log lines that a flood cannot multiply.

- :func:`clean`: any value that came from a client (a name typed in a login form, a URL path,
  a pause reason, a header) goes through it before it reaches a log line. Line ends, other
  control characters and the Unicode line and paragraph separators become visible escapes
  (``\\n``, ``\\r``, ``\\x1b``, ``\\u2028``), so a value can never start a line of its own or
  move the terminal's cursor; a backslash is doubled, so an escape the client typed itself
  stays distinguishable from one we made. Long values are cut (a 64 KiB form field is not a
  log line).
- :class:`LogGate`: at most ``burst`` lines of one kind per ``period`` seconds; the next line
  let through says how many were held back. What an attacker can make us log (failed logins,
  refused posts, the database being away on every request) costs the log a bounded number of
  lines whatever the request rate.
"""

from __future__ import annotations

import time
from collections.abc import Callable

#: Characters cut from the end of a value that is longer.
MAX_CHARS = 200
_NAMED = {"\n": "\\n", "\r": "\\r", "\t": "\\t", "\\": "\\\\"}


def _escape(char: str) -> str:
    """A backslash doubled, a control character, line or paragraph separator or other
    character that prints as nothing (bidirectional overrides included) as its code."""
    named = _NAMED.get(char)
    if named is not None:
        return named
    if char.isprintable():
        return char
    code = ord(char)
    if code < 0x100:
        return f"\\x{code:02x}"
    if code < 0x10000:
        return f"\\u{code:04x}"
    return f"\\U{code:08x}"


def clean(value: object, limit: int = MAX_CHARS) -> str:
    """``value`` as one printable line: control characters escaped, at most ``limit``
    characters of it kept (then ``...`` and how many more there were).

    >>> clean("lunch\\nwallboard: sam logged in")
    'lunch\\\\nwallboard: sam logged in'
    >>> clean("a" * 5, limit=3)
    'aaa...(+2)'
    """
    text = value if isinstance(value, str) else str(value)
    cut = len(text) - limit
    if cut > 0:
        text = text[:limit]
    plain = text.isprintable() and "\\" not in text
    escaped = text if plain else "".join(_escape(c) for c in text)
    return f"{escaped}...(+{cut})" if cut > 0 else escaped


class LogGate:
    """At most ``burst`` log lines per kind in any ``period`` seconds (a fixed window per
    kind; memory: one entry per kind, and kinds are ours, never a client's value)."""

    def __init__(self, burst: int = 10, period: float = 60.0,
                 clock: Callable[[], float] = time.monotonic) -> None:  # fmt: skip
        self.burst = burst
        self.period = period
        self.clock = clock
        self._windows: dict[str, tuple[float, int, int]] = {}  # kind -> start, lines, held

    def admit(self, kind: str) -> tuple[bool, int]:
        """Whether a line of ``kind`` may be logged now, and how many of its kind were held
        back since the last one logged (say so in the line)."""
        now = self.clock()
        start, lines, held = self._windows.get(kind, (now, 0, 0))
        if now - start >= self.period:
            start, lines = now, 0
        if lines >= self.burst:
            self._windows[kind] = (start, lines, held + 1)
            return False, 0
        self._windows[kind] = (start, lines + 1, 0)
        return True, held

    @staticmethod
    def note(held: int) -> str:
        """`` (N similar lines held back)`` to append to a line, or nothing."""
        return f" ({held} similar lines held back)" if held else ""
