"""Unicode names (callcenter/names.py): the rule, and the database's backstop of it (migration
0004), which must take every name the rule takes, whatever the server's locale, and refuse what
would break Asterisk's files."""

from __future__ import annotations

import unicodedata
from collections.abc import Callable

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from callcenter import names
from callcenter.db.models import Agent
from callcenter.db.models_wallboard import User

GOOD = [
    "Renée",
    "josé",
    "東京",
    "さくら",
    "Владимир",
    "Ελένη",
    "محمد",
    "हिन्दी",  # virama and vowel signs: combining marks NFC keeps
    "สมชาย",
    "𠮷野",  # outside the BMP
    "Łódź",
    "Zoë",
    "dr.who",
    "a_b-c.d",
    "0800",
]

BAD = [
    ("", "is empty"),
    ("a b", "contains a space"),
    ("a|b", "contains '|'"),
    ("a,b", "contains ','"),
    ("a;b", "contains ';'"),
    ("a=b", "contains '='"),
    ("a/b", "contains '/'"),
    ('a"b', "contains '\"'"),
    ("a\x07b", "contains a control character (U+0007)"),
    ("a\nb", "contains a control character (U+000A)"),
    ("a\x85b", "contains a control character (U+0085)"),
    ("a\u00a0b", "contains a space (U+00A0)"),
    ("a\u3000b", "contains a space (U+3000)"),
    ("a\u200bb", "contains an invisible character (U+200B)"),
    ("a\u202eb", "contains an invisible character (U+202E)"),  # right-to-left override
    ("alice\ufe0f", "contains an invisible character (U+FE0F)"),
    ("\u3164", "starts with an invisible character (U+3164)"),  # Hangul filler: a letter
    ("-a", "starts with '-'"),
    ("_a", "starts with '_'"),
    (".a", "starts with '.'"),
    ("\u0301a", "starts with a combining mark (U+0301)"),
    ("a😀", "contains '😀'"),
    ("\udce9", "starts with a character that is not text (U+DCE9)"),  # undecodable argv
    ("x" * 65, "has 65 characters (at most 64)"),
]


@pytest.mark.parametrize("name", GOOD)
def test_names_in_any_script(name: str) -> None:
    assert names.agent_name_problem(name) is None
    assert names.user_name_problem(name) is None
    assert names.normalize(name) == name


def test_names_are_compared_in_nfc() -> None:
    decomposed = "Rene\u0301e"
    assert decomposed != "Renée"
    assert names.normalize(decomposed) == "Renée"
    assert names.agent_name_problem(names.normalize(decomposed)) is None


@pytest.mark.parametrize(("name", "message"), BAD)
def test_bad_names_say_why_in_one_line(name: str, message: str) -> None:
    for problem in (names.agent_name_problem(name), names.user_name_problem(name)):
        assert problem == message
        assert "\n" not in f"agent name {name!r} {problem}"


def test_lengths_in_characters_and_asterisks_bytes() -> None:
    assert names.agent_name_problem("x" * 64) is None
    assert names.agent_name_problem("東" * 26) is None  # 78 bytes
    # app_queue keeps 79 bytes of a MemberName: 27 three-byte characters would be cut.
    assert names.agent_name_problem("東" * 27) == (
        "takes 81 bytes in UTF-8, more than the 79 Asterisk keeps of a queue member name"
    )
    assert names.user_name_problem("東" * 64) is None  # never sent to Asterisk
    assert names.user_name_problem("東" * 65) == "has 65 characters (at most 64)"


def test_at_sign_only_in_user_names() -> None:
    assert names.user_name_problem("ana@sales") is None
    assert names.agent_name_problem("ana@sales") == "contains '@'"
    assert names.user_name_problem("@ana") == "starts with '@'"


# --- the database's backstop ------------------------------------------------------------------


def _rule(table: sa.Table) -> str:
    (check,) = [
        c
        for c in table.constraints
        if isinstance(c, sa.CheckConstraint) and str(c.name).endswith("name_format")
    ]
    return str(check.sqltext)


def _accepted(problem: Callable[[str], str | None]) -> list[str]:
    """Two-character names with every assigned code point first and second, that the rule
    takes (private-use and unassigned code points it refuses anyway)."""
    out = []
    for cp in range(1, 0x110000):
        ch = chr(cp)
        if unicodedata.category(ch) in ("Cn", "Co", "Cs"):
            continue
        out += [n for n in (ch + "a", "a" + ch) if problem(n) is None]
    return out


@pytest.mark.parametrize(
    ("table", "problem", "punctuation"),
    [
        (Agent.__table__, names.agent_name_problem, "._-"),
        (User.__table__, names.user_name_problem, "._@-"),
    ],
)
def test_database_takes_every_name_the_rule_takes(
    engine: Engine,
    table: sa.Table,
    problem: Callable[[str], str | None],
    punctuation: str,
) -> None:
    good = _accepted(problem)
    assert len(good) > 200_000
    # What must never reach a file: ASCII but letters, digits and the punctuation, C1
    # controls, the no-break space; and punctuation first.
    bad = [
        "a" + chr(cp)
        for cp in range(1, 0xA1)
        if not (chr(cp).isascii() and (chr(cp).isalnum() or chr(cp) in punctuation))
    ]
    bad += [p + "a" for p in punctuation] + [""]
    names_ = "SELECT name FROM unnest(CAST(:names AS text[])) AS t(name)"
    with engine.connect() as conn:
        refused = conn.scalars(
            sa.text(f"{names_} WHERE NOT ({_rule(table)})"), {"names": good}
        ).all()
        taken = conn.scalars(sa.text(f"{names_} WHERE {_rule(table)}"), {"names": bad}).all()
    assert refused == []
    assert taken == []


@pytest.mark.parametrize("table", [Agent.__table__, User.__table__])
def test_migrated_name_rule_is_the_models(engine: Engine, table: sa.Table) -> None:
    """Alembic's comparison leaves check constraints out: PostgreSQL's own rendering of the
    migrated constraint and of the model's text, on a column of the same type, must agree."""
    name = f"ck_{table.name}_name_format"
    with engine.begin() as conn:
        migrated = conn.scalar(
            sa.text("SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = :n"),
            {"n": name},
        )
        conn.execute(
            sa.text(
                f"CREATE TEMP TABLE model_{table.name} (name varchar(64), "
                f"CONSTRAINT {name} CHECK ({_rule(table)})) ON COMMIT DROP"
            )
        )
        model = conn.scalar(
            sa.text(
                "SELECT pg_get_constraintdef(oid) FROM pg_constraint "
                "WHERE conname = :n AND conrelid = CAST(:t AS regclass)"
            ),
            {"n": name, "t": f"model_{table.name}"},
        )
    assert migrated is not None
    assert migrated == model
