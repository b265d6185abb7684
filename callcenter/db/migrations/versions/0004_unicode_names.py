"""Unicode agent and user names

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-07 01:30:00.000000

Agent names (the app_queue MemberName) and wallboard user names may hold letters and digits of
any script (Renée, josé, 東京). callcenter/names.py is the precise rule, applied before anything
is written: NFC, a letter or digit first, then letters, digits, combining marks and '.', '_',
'-' ('@' too for users), no space or invisible character, at most 64 characters (and 79 UTF-8
bytes for an agent, app_queue's limit).

These constraints are its backstop, and must not depend on the server's locale: PostgreSQL's
[[:alnum:]] and \\w follow the database's LC_CTYPE, under which C (a common choice) is ASCII
only, so "name ~ '^[[:alnum:]]...'" would refuse Renée there and accept it elsewhere. So they
name code points instead, and refuse what would break Asterisk's files and our own:

- an empty name, or one that starts with '.', '_', '-' (or '@');
- any ASCII character but letters, digits and that punctuation: spaces, control characters
  and the separators of queue_log ('|'), astdb's persistent members (';', ',', '|'), dialplan
  application arguments (',', quotes, brackets, backslash) and configuration files;
- C1 control characters and the no-break space (U+0080 to U+00A0).

In the character class below, the ranges are \\x01-',' (everything below '-'), '/', ':'-'@'
(':'-'?' for users, who may use '@'), '['-'^', '`' and '{'-U+00A0: all of ASCII and Latin-1's
controls except [-.0-9A-Z_a-z].
"""

from __future__ import annotations

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

AGENTS_NEW = r"name !~ '^$|^[._-]|[\x01-,/:-@[-^`{-\u00a0]'"
USERS_NEW = r"name !~ '^$|^[._@-]|[\x01-,/:-?[-^`{-\u00a0]'"
AGENTS_OLD = "name ~ '^[A-Za-z0-9][A-Za-z0-9_.-]*$'"
USERS_OLD = "name ~ '^[A-Za-z0-9][A-Za-z0-9_.@-]*$'"


def _replace(table: str, rule: str) -> None:
    name = op.f(f"ck_{table}_name_format")
    op.drop_constraint(name, table, type_="check")
    op.create_check_constraint(name, table, rule)


def upgrade() -> None:
    _replace("agents", AGENTS_NEW)
    _replace("users", USERS_NEW)


def downgrade() -> None:
    # Fails, naming the constraint, while a name that the old rule refuses is still there:
    # rename or remove those agents and users first.
    _replace("agents", AGENTS_OLD)
    _replace("users", USERS_OLD)
