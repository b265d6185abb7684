"""Names people choose: agents (app_queue's MemberName and their login name) and the
wallboard's users. Unicode letters and digits are welcome (Renée, josé, 東京, Владимир), so a
call center in Spanish, French or Japanese can use its people's names.

The rule, for both:

- the name is normalised to NFC first (``é`` typed as ``e`` + U+0301 and as U+00E9 is one name),
  by :func:`normalize`, wherever a name comes in: the CLI, the wallboard's login form, a URL;
- it starts with a letter or digit of any script (``str.isalnum()``, i.e. regex ``[^\\W_]``);
- then letters, digits, combining marks (Devanagari, Thai and others cannot write a name
  without them, and NFC leaves them as they are) and a little ASCII punctuation: ``. _ -``
  for agents, ``. _ @ -`` for users;
- nothing else: no space of any kind, no control or invisible format character (zero-width
  space, bidi overrides), no invisible filler, and none of the characters that would break
  what Asterisk does with a MemberName (below); at most 64 characters.

What Asterisk does with an agent's name (Asterisk 22, ``apps/app_queue.c``,
``main/logger.c``): the MemberName is free text that app_queue copies byte for byte, so
UTF-8 passes through to AMI events, queue_log and the MEMBERNAME channel variable. But:

- queue_log separates its fields with ``|`` (``time|callid|queue|agent|event|data``);
- persistent members are kept in astdb as ``interface;penalty;paused;membername;...``, one
  member after another separated by ``,`` or ``|``;
- the survey passes ``${MEMBERNAME}`` as an AGI() argument, where ``,`` separates arguments and
  quotes, brackets and backslashes are parsed;
- app_queue keeps the name in ``char membername[80]``, cutting a longer one at 79 bytes, even
  inside a UTF-8 character. QueueStatus, queue_log and astdb then hold another name than ours,
  and Asterisk's JSON refuses the invalid UTF-8 ("Invalid UTF-8 string"), so that member has
  no QueueMember* AMI events at all: the bridge would never see them log in. So an agent name
  is also at most 79 bytes in UTF-8 (:data:`MEMBERNAME_MAX_BYTES`), which 64 characters of
  Japanese (3 bytes each) exceed. (tests/test_asterisk_live.py shows all this on Asterisk.)

The PJSIP endpoint, auth and AOR of an agent's phone are not named after the agent but after
their extension, which is digits only: SIP user names and Asterisk's object names stay ASCII.

The database holds the same rule as a backstop that does not depend on the server's locale
(PostgreSQL's ``[[:alnum:]]`` is ASCII-only in a database whose LC_CTYPE is C): see migration
0004. It refuses what would break files and protocols; this module is the precise gate.
"""

from __future__ import annotations

import unicodedata

#: Longest name, in characters (the columns are varchar(64)).
MAX_CHARS = 64

#: app_queue's ``char membername[80]``: longer MemberNames are cut (apps/app_queue.c).
MEMBERNAME_MAX_BYTES = 79

#: The punctuation allowed after the first character.
AGENT_PUNCTUATION = "._-"
USER_PUNCTUATION = "._@-"

_MARKS = frozenset({"Mn", "Mc"})

#: Letters and marks that show nothing (Unicode's Default_Ignorable_Code_Point among the
#: categories we otherwise allow): "alice" and "alice" + U+FE0F would look the same.
_INVISIBLE = frozenset(
    [
        *(0x034F, 0x115F, 0x1160, 0x17B4, 0x17B5, 0x3164, 0xFFA0),
        *range(0x180B, 0x1810),  # Mongolian variation selectors
        *range(0xFE00, 0xFE10),  # variation selectors
        *range(0xE0100, 0xE01F0),  # variation selectors supplement
    ]
)


def normalize(name: str) -> str:
    """``name`` in Unicode NFC, the one form names are stored, compared and sent in."""
    return unicodedata.normalize("NFC", name)


def describe(ch: str) -> str:
    """One character, for an error message that stays on one line."""
    category = unicodedata.category(ch)
    code = f"U+{ord(ch):04X}"
    if ch == " ":
        return "a space"
    if category.startswith("Z"):
        return f"a space ({code})"
    if category == "Cc":
        return f"a control character ({code})"
    if category == "Cf" or ord(ch) in _INVISIBLE:
        return f"an invisible character ({code})"
    if category.startswith("M"):
        return f"a combining mark ({code})"
    if category.startswith("C"):
        return f"a character that is not text ({code})"
    return repr(ch)


def problem(name: str, punctuation: str, max_bytes: int | None = None) -> str | None:
    """Why ``name`` (already NFC) is not a valid name, as words that follow the name in a
    message ("... contains a space"); None when it is valid."""
    if not name:
        return "is empty"
    if not name[0].isalnum() or ord(name[0]) in _INVISIBLE:
        return f"starts with {describe(name[0])}"
    for ch in name[1:]:
        if ord(ch) in _INVISIBLE:
            return f"contains {describe(ch)}"
        if ch.isalnum() or ch in punctuation or unicodedata.category(ch) in _MARKS:
            continue
        return f"contains {describe(ch)}"
    if len(name) > MAX_CHARS:
        return f"has {len(name)} characters (at most {MAX_CHARS})"
    size = len(name.encode("utf-8"))
    if max_bytes is not None and size > max_bytes:
        return (
            f"takes {size} bytes in UTF-8, more than the {max_bytes} Asterisk keeps of a "
            "queue member name"
        )
    return None


def agent_name_problem(name: str) -> str | None:
    """:func:`problem` for an agent's name (also their app_queue MemberName)."""
    return problem(name, AGENT_PUNCTUATION, MEMBERNAME_MAX_BYTES)


def user_name_problem(name: str) -> str | None:
    """:func:`problem` for a wallboard user's name (never sent to Asterisk)."""
    return problem(name, USER_PUNCTUATION)


#: Said after the problem, so an operator knows what would do.
AGENT_RULE = (
    "an agent name starts with a letter or digit (any script) and holds only letters, "
    "digits, '.', '_' or '-' (at most 64 characters)"
)
USER_RULE = (
    "a user name must start with a letter or digit (any script) and hold only letters, "
    "digits, '.', '_', '@' or '-' (at most 64 characters)"
)
