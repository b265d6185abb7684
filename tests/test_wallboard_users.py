"""``callcenter users``: supervisors and screen tokens; how they are kept; what checks them."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter.wallboard import accounts
from callcenter.wallboard.auth import RateLimiter, Signer
from tests.conftest import Cli

PASSWORD = "a long enough secret"


def test_users_add_list_remove(run_cli: Cli, clean_db: Engine) -> None:
    out = run_cli.ok("users", "add", "sam", "--password", PASSWORD)
    assert out.output == "user sam added (supervisor)\n"
    run_cli.ok("users", "add", "ada", "--role", "admin", "--password", PASSWORD)
    listed = json.loads(run_cli.ok("users", "list", "--json").output)
    assert [(u["name"], u["role"]) for u in listed] == [("ada", "admin"), ("sam", "supervisor")]
    with clean_db.connect() as conn:
        hashes = conn.scalars(sa.text("SELECT password_hash FROM users")).all()
    assert all(h.startswith("$argon2id$") for h in hashes)
    assert PASSWORD not in str(hashes)
    assert run_cli.ok("users", "remove", "sam").output == "user sam removed\n"
    assert [u["name"] for u in json.loads(run_cli.ok("users", "list", "--json").output)] == ["ada"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["users", "add", "sam", "--password", "short"], "password must have"),
        (["users", "add", "bad name", "--password", PASSWORD], "must start with a letter"),
        (["users", "remove", "nobody"], "no user named nobody"),
        (["users", "token", "revoke", "nothing"], "no active token"),
        (["users", "token", "add", "|bad"], "token label"),
    ],
)
def test_bad_input_is_one_error_line(run_cli: Cli, args: list[str], message: str) -> None:
    result = run_cli(*args)
    assert result.exit_code == 1
    assert result.output.startswith("Error: ")
    assert message in result.output
    assert result.output.count("\n") == 1


def test_user_names_in_any_script(run_cli: Cli, clean_db: Engine) -> None:
    assert run_cli.ok("users", "add", "josé", "--password", PASSWORD).output == (
        "user josé added (supervisor)\n"
    )
    run_cli.ok("users", "add", "さくら@東京", "--role", "admin", "--password", PASSWORD)
    listed = json.loads(run_cli.ok("users", "list", "--json").output)
    assert [(u["name"], u["role"]) for u in listed] == [
        ("josé", "supervisor"),
        ("さくら@東京", "admin"),
    ]
    assert "josé" in run_cli.ok("users", "list").output
    # The same name typed with a combining accent is the same user.
    dup = run_cli("users", "add", "jose\u0301", "--password", PASSWORD)
    assert (dup.exit_code, dup.output) == (1, "Error: user josé already exists\n")
    with Session(clean_db) as s:
        assert accounts.load_directory(s).check_password("josé", PASSWORD) is not None
    run_cli.ok("users", "remove", "jose\u0301")
    assert [u["name"] for u in json.loads(run_cli.ok("users", "list", "--json").output)] == [
        "さくら@東京"
    ]


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("jo|sé", "user name 'jo|sé' contains '|'"),
        ("josé,x", "contains ','"),
        ("josé garcía", "contains a space"),
        ("jo\x07sé", "user name 'jo\\x07sé' contains a control character (U+0007)"),
        ("-josé", "starts with '-'"),
    ],
)
def test_bad_user_names_are_refused_before_the_password_prompt(
    run_cli: Cli, clean_db: Engine, name: str, message: str
) -> None:
    result = run_cli("users", "add", "--", name, input="")  # no password typed
    assert result.exit_code == 1, result.output
    assert result.output.startswith("Error: ")
    assert result.output.count("\n") == 1
    assert message in result.output
    assert "must start with a letter or digit" in result.output
    assert "Password" not in result.output
    with clean_db.connect() as conn:
        assert conn.scalar(sa.text("SELECT count(*) FROM users")) == 0
    removed = run_cli("users", "remove", "--", name)
    assert removed.exit_code == 1
    assert removed.output.count("\n") == 1  # the name is quoted when it is not plain


def test_duplicate_user_and_role_choice(run_cli: Cli) -> None:
    run_cli.ok("users", "add", "sam", "--password", PASSWORD)
    dup = run_cli("users", "add", "sam", "--password", PASSWORD)
    assert (dup.exit_code, dup.output) == (1, "Error: user sam already exists\n")
    assert run_cli("users", "add", "x", "--role", "king", "--password", PASSWORD).exit_code == 2


def test_password_prompt_asks_twice(run_cli: Cli, clean_db: Engine) -> None:
    result = run_cli("users", "add", "sam", input=f"{PASSWORD}\n{PASSWORD}\n")
    assert result.exit_code == 0, result.output
    assert PASSWORD not in result.output  # hidden input is not echoed
    with Session(clean_db) as s:
        assert accounts.load_directory(s).check_password("sam", PASSWORD) is not None


def test_tokens_shown_once_revoked_and_relabelled(run_cli: Cli, clean_db: Engine) -> None:
    created = json.loads(run_cli.ok("users", "token", "add", "lobby tv", "--json").output)
    token = created["token"]
    assert token.startswith("cctv_")
    assert len(token) > 40
    plain = run_cli.ok("users", "token", "add", "office")
    assert plain.stdout.strip().startswith("cctv_")
    listed = run_cli.ok("users", "token", "list", "--json").output
    assert token not in listed  # only its label, never the token again
    with clean_db.connect() as conn:
        stored = conn.scalars(sa.text("SELECT token_hash FROM tv_tokens")).all()
    assert token not in stored
    assert accounts.token_digest(token) in stored
    again = run_cli("users", "token", "add", "lobby tv")
    assert again.exit_code == 1
    assert "revoke it first" in again.output
    run_cli.ok("users", "token", "revoke", "lobby tv")
    run_cli.ok("users", "token", "add", "lobby tv")  # a new screen may take the label
    with Session(clean_db) as s:
        d = accounts.load_directory(s)
    assert d.check_token(token) is None
    assert [
        t["revoked"]
        for t in json.loads(run_cli.ok("users", "token", "list", "--json").output)
        if t["label"] == "lobby tv"
    ] == [True, False]


def test_directory_checks(clean_db: Engine) -> None:
    with Session(clean_db) as s, s.begin():
        accounts.add_user(s, "sam", PASSWORD)
        _, token = accounts.add_token(s, "lobby")
    with Session(clean_db) as s:
        d = accounts.load_directory(s)
    sam = d.check_password("sam", PASSWORD)
    assert sam is not None
    assert (sam.ident, sam.role, sam.can_act) == ("user:sam", "supervisor", True)
    assert d.check_password("sam", "wrong password") is None
    assert d.check_password("nobody", PASSWORD) is None
    assert d.check_password("sam", "x" * 5000) is None
    screen = d.check_token(token)
    assert screen is not None
    assert (screen.role, screen.can_act, screen.name) == ("viewer", False, "lobby")
    assert d.principal(screen.ident) == screen
    assert d.principal("user:nobody") is None
    assert d.principal("token:999") is None


def test_signer() -> None:
    signer = Signer("k")
    value = signer.sign("session", {"sub": "user:sam", "exp": 4102444800})
    assert signer.load("session", value) == {"sub": "user:sam", "exp": 4102444800}
    assert signer.load("login", value) is None  # another purpose
    assert Signer("other").load("session", value) is None
    body, mac = value.split(".")
    assert signer.load("session", body[:-2] + "xx." + mac) is None
    assert signer.load("session", "garbage") is None
    assert signer.load("session", "!!!.???") is None
    expired = signer.sign("session", {"sub": "user:sam", "exp": 1})
    assert signer.load("session", expired) is None
    assert signer.load("session", signer.sign("session", {"sub": "x"})) is None  # no exp
    assert Signer("").load("session", Signer("").sign("session", {"exp": 4102444800})) is None


def test_rate_limiter_window() -> None:
    now = [0.0]
    limiter = RateLimiter(attempts=2, window=10, clock=lambda: now[0])
    limiter.failed("ip:a", "name:x")
    assert limiter.retry_after("ip:a") == 0
    limiter.failed("ip:a")
    assert limiter.retry_after("ip:a", "name:y") == pytest.approx(10)
    assert limiter.retry_after("name:x") == 0
    now[0] = 10.5
    assert limiter.retry_after("ip:a") == 0
