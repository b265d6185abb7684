"""API tokens: shown once, stored as a hash, scoped, expiring, revocable; the wallboard's
bearer check knows them (reads its API) but never lets them log in or act."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter import config, tokens
from callcenter.db.models_webhooks import ApiToken
from callcenter.wallboard.accounts import Directory
from tests.conftest import Cli
from tests.test_wallboard_support import add_user, http, wallboard_settings

NOW = dt.datetime(2026, 12, 14, 10, 0, tzinfo=dt.UTC)


def add(engine: Engine, name: str, scope: str = "read", expires_at: dt.datetime | None = None
        ) -> str:  # fmt: skip
    with Session(engine) as s, s.begin():
        return tokens.add_token(s, name, scope, expires_at=expires_at)[1]


def check(engine: Engine, raw: str, now: dt.datetime = NOW) -> tokens.TokenPrincipal | None:
    with Session(engine) as s, s.begin():
        return tokens.check_token(s, raw, now=now)


def test_cli_add_prints_the_token_once_and_stores_only_its_hash(
    run_cli: Cli, clean_db: Engine
) -> None:
    added = run_cli.ok("tokens", "add", "crm", "--scope", "write", "--expires", "90d")
    raw = added.stdout.strip()
    assert raw.startswith("ccapi_")
    assert len(raw) >= 6 + 43
    assert "cannot be shown again" in added.stderr
    with clean_db.connect() as conn:
        row = conn.execute(sa.select(ApiToken)).one()
        every_value = " ".join(str(v) for v in row)
    assert raw not in every_value
    assert row.token_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw.startswith(row.prefix)
    assert len(row.prefix) == 14
    assert row.scope == "write"
    assert row.expires_at is not None
    assert dt.timedelta(days=89) < row.expires_at - dt.datetime.now(dt.UTC) <= dt.timedelta(days=90)

    listed = run_cli.ok("tokens", "list").output
    assert "crm" in listed
    assert row.prefix in listed
    assert "write" in listed
    assert "active" in listed
    assert raw not in listed
    as_json = json.loads(run_cli.ok("tokens", "list", "--json").output)
    assert as_json[0]["prefix"] == row.prefix
    assert "token" not in as_json[0]
    assert "token_hash" not in as_json[0]
    assert raw not in json.dumps(as_json)

    assert check(clean_db, raw, dt.datetime.now(dt.UTC)) is not None
    assert "revoked" in run_cli.ok("tokens", "revoke", "crm").output
    assert check(clean_db, raw, dt.datetime.now(dt.UTC)) is None
    assert "revoked" in run_cli.ok("tokens", "list").output
    # The name is free again; the revoked token stays revoked.
    again = run_cli.ok("tokens", "add", "crm").stdout.strip()
    assert again != raw
    assert check(clean_db, again, dt.datetime.now(dt.UTC)) is not None
    assert check(clean_db, raw, dt.datetime.now(dt.UTC)) is None


def test_cli_refuses_bad_input_and_writes_nothing(run_cli: Cli, clean_db: Engine) -> None:
    for args, says in [
        (("tokens", "add", "bad/name"), "must start with a letter"),
        (("tokens", "add", "crm", "--expires", "soon"), "cannot read the expiry"),
        (("tokens", "add", "crm", "--expires", "2020-01-01"), "not in the future"),
        (("tokens", "revoke", "nobody"), "no active API token"),
    ]:
        result = run_cli(*args)
        assert result.exit_code == 1, result.output
        assert says in result.output
    assert run_cli("tokens", "add", "crm", "--scope", "admin").exit_code == 2
    run_cli.ok("tokens", "add", "crm")
    twice = run_cli("tokens", "add", "crm")
    assert twice.exit_code == 1
    assert "exists; revoke it first" in twice.output
    with clean_db.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).select_from(ApiToken)) == 1


def test_check_token_rejects_wrong_expired_and_revoked(clean_db: Engine) -> None:
    good = add(clean_db, "good", "write")
    soon = add(clean_db, "soon", expires_at=NOW + dt.timedelta(hours=1))
    gone = add(clean_db, "gone")
    with Session(clean_db) as s, s.begin():
        tokens.revoke_token(s, "gone", now=NOW)

    principal = check(clean_db, good)
    assert principal is not None
    assert (principal.name, principal.scope, principal.role) == ("good", "write", "api-write")
    assert principal.allows("read")
    assert principal.allows("write")
    reader = check(clean_db, soon)
    assert reader is not None
    assert reader.allows("read")
    assert not reader.allows("write")

    assert check(clean_db, soon, NOW + dt.timedelta(hours=1)) is None  # expired
    assert check(clean_db, gone) is None  # revoked
    assert check(clean_db, good[:-1] + ("A" if good[-1] != "A" else "B")) is None  # wrong
    assert check(clean_db, "") is None
    assert check(clean_db, "cctv_" + good[6:]) is None  # not an API token
    assert check(clean_db, good + "x" * 300) is None


def test_last_used_is_recorded_at_most_once_a_minute(clean_db: Engine) -> None:
    raw = add(clean_db, "script")

    def last_used() -> dt.datetime | None:
        with clean_db.connect() as conn:
            return conn.scalar(sa.select(ApiToken.last_used_at))

    assert last_used() is None
    check(clean_db, raw, NOW)
    assert last_used() == NOW
    check(clean_db, raw, NOW + dt.timedelta(seconds=30))
    assert last_used() == NOW
    check(clean_db, raw, NOW + dt.timedelta(seconds=61))
    assert last_used() == NOW + dt.timedelta(seconds=61)
    with Session(clean_db) as s, s.begin():  # never moved back
        tokens.touch(s, {1: NOW})
    assert last_used() == NOW + dt.timedelta(seconds=61)


def test_revoke_by_prefix_and_ambiguity(clean_db: Engine) -> None:
    raw = add(clean_db, "one")
    with Session(clean_db) as s, s.begin():
        view = tokens.revoke_token(s, raw[:14], now=NOW)
    assert view.name == "one"
    assert view.status(NOW) == "revoked"
    with Session(clean_db) as s, s.begin(), pytest.raises(tokens.TokenError):
        tokens.revoke_token(s, raw[:14])


def test_scopes() -> None:
    assert tokens.scope_allows("viewer", "read")
    assert not tokens.scope_allows("viewer", "write")
    assert tokens.scope_allows("api-read", "read")
    assert not tokens.scope_allows("api-read", "write")
    assert tokens.scope_allows("api-write", "write")
    assert tokens.scope_allows("supervisor", "write")
    assert not tokens.scope_allows("nobody", "read")
    with pytest.raises(ValueError, match="unknown scope"):
        tokens.scope_allows("api-write", "delete")


def test_parse_expiry() -> None:
    tz = ZoneInfo("Europe/Madrid")
    assert tokens.parse_expiry("90d", tz, NOW) == NOW + dt.timedelta(days=90)
    assert tokens.parse_expiry("+12h", tz, NOW) == NOW + dt.timedelta(hours=12)
    assert tokens.parse_expiry("2w", tz, NOW) == NOW + dt.timedelta(weeks=2)
    assert tokens.parse_expiry("2027-01-01", tz, NOW) == dt.datetime(
        2026, 12, 31, 23, tzinfo=dt.UTC
    )
    with pytest.raises(tokens.TokenError):
        tokens.parse_expiry("-1d", tz, NOW)


def test_directory_knows_api_tokens_for_bearer_only(clean_db: Engine) -> None:
    raw = add(clean_db, "crm", "write", expires_at=NOW + dt.timedelta(days=1))
    with Session(clean_db) as s:
        from callcenter.wallboard.accounts import load_directory

        directory: Directory = load_directory(s)
    principal = directory.check_bearer(raw, now=NOW.timestamp())
    assert principal is not None
    assert (principal.kind, principal.name, principal.role) == ("api", "crm", "api-write")
    assert not principal.can_act  # never a supervisor's actions
    assert directory.check_token(raw) is None  # the /tv entry: no session from an API token
    assert directory.principal(principal.ident) is None  # nor a session naming one
    assert directory.check_bearer(raw, now=(NOW + dt.timedelta(days=1)).timestamp()) is None


async def test_wallboard_api_takes_api_tokens_and_records_their_use(
    settings: config.Settings, clean_db: Engine
) -> None:
    add_user(clean_db)
    raw = add(clean_db, "crm")
    revoked = add(clean_db, "old")
    with Session(clean_db) as s, s.begin():
        tokens.revoke_token(s, "old")
    async with http(wallboard_settings(settings), clean_db) as (wb, client):
        ok = await client.get("/api/v1/queues", headers={"Authorization": f"Bearer {raw}"})
        assert ok.status == 200
        assert "queues" in await ok.json()
        for bad in (revoked, raw + "x", "ccapi_nothing"):
            refused = await client.get("/api/v1/queues", headers={"Authorization": f"Bearer {bad}"})
            assert refused.status == 401
        # An API token never makes a session: /tv with it is refused like a wrong token.
        tv = await client.get(f"/tv?token={raw}", allow_redirects=False)
        assert tv.status == 401
        # Nor may it act on agents, even with write scope.
        post = await client.post(
            "/api/v1/agents/local/alice/pause",
            headers={"Authorization": f"Bearer {raw}", "X-CSRF-Token": "x"},
        )
        assert post.status == 403
        assert wb.parts.auth.cache.used
        await wb.parts.auth.cache.reload()  # writes last_used_at, then reads again
        assert not wb.parts.auth.cache.used
    with clean_db.connect() as conn:
        used = conn.scalar(sa.select(ApiToken.last_used_at).where(ApiToken.name == "crm"))
    assert used is not None
    assert dt.datetime.now(dt.UTC) - used < dt.timedelta(minutes=1)
