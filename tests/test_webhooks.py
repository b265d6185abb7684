"""Webhooks without delivery: the signature a receiver checks, the backoff, which URLs and
events are accepted, the outbox written in the producer's transaction, the campaign
attempt's event, and the operator's commands."""

from __future__ import annotations

import datetime as dt
import json
import random
import uuid
from pathlib import Path

import pytest
import sqlalchemy as sa
from multidict import CIMultiDict
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter import config
from callcenter.campaigns import scheduling, store
from callcenter.db.models import Queue
from callcenter.db.models_campaigns import CampaignAttempt
from callcenter.db.models_webhooks import EVENT_TYPES, WebhookEvent, WebhookOutbox
from callcenter.webhooks import manage, outbox
from tests.conftest import Cli, count

NOW = dt.datetime(2026, 12, 14, 10, 0, tzinfo=dt.UTC)


def hook(engine: Engine, events: list[str], url: str = "http://127.0.0.1:9/hook") -> int:
    with Session(engine) as s, s.begin():
        return manage.add_webhook(s, url, events)[0].id


# --- pure ----------------------------------------------------------------------------------


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    import hashlib
    import hmac

    body = b'{"id":"x"}'
    sig = outbox.signature("s3cret", 1_800_000_000, body)
    expected = hmac.new(b"s3cret", b"1800000000." + body, hashlib.sha256).hexdigest()
    assert sig == f"sha256={expected}"
    ident = uuid.uuid4()
    head = outbox.headers("s3cret", ident=ident, event_type="case.created", delivery=7,
                          attempt=2, timestamp=1_800_000_000, payload=body)  # fmt: skip
    assert head["X-Callcenter-Signature"] == sig
    assert head["X-Callcenter-Timestamp"] == "1800000000"
    assert head["X-Callcenter-Event"] == "case.created"
    assert head["Idempotency-Key"] == head["X-Callcenter-Event-Id"] == str(ident)
    assert head["X-Callcenter-Delivery"] == "7"
    assert head["X-Callcenter-Attempt"] == "2"
    received = CIMultiDict({k.lower(): v for k, v in head.items()})  # any case on the wire
    assert outbox.verify("s3cret", received, body, now=1_800_000_010)
    assert not outbox.verify("other", received, body, now=1_800_000_010)
    assert not outbox.verify("s3cret", received, body + b" ", now=1_800_000_010)
    assert not outbox.verify("s3cret", received, body, now=1_800_000_000 + 301)  # replayed
    forged = CIMultiDict(received)
    forged["X-Callcenter-Timestamp"] = "1800000005"  # the signature covers the timestamp
    assert not outbox.verify("s3cret", forged, body, now=1_800_000_010)


def test_body_is_the_same_bytes_every_time() -> None:
    ident = uuid.uuid4()
    data = {"b": 1, "a": "ñ", "nested": {"z": None, "y": [1, 2]}}
    one = outbox.body(ident, "call.ended", NOW, data)
    two = outbox.body(ident, "call.ended", NOW, dict(reversed(list(data.items()))))
    assert one == two
    doc = json.loads(one)
    assert doc == {"id": str(ident), "type": "call.ended", "occurred_at": NOW.isoformat(),
                   "data": data}  # fmt: skip


def test_backoff_grows_with_jitter_up_to_the_cap() -> None:
    rng = random.Random(7)
    for attempt in range(1, 40):
        ceiling = min(600.0, 10.0 * 2 ** (attempt - 1))
        waits = [outbox.backoff(attempt, base=10, cap=600, rng=rng) for _ in range(50)]
        assert all(ceiling / 2 <= w <= ceiling for w in waits)
        assert len(set(waits)) > 40  # jitter: events that failed together spread out
    assert outbox.backoff(10_000, base=10, cap=600, rng=rng) <= 600
    assert outbox.retry_after("120", 600) == 120
    assert outbox.retry_after("9999", 600) == 600
    assert outbox.retry_after("Wed, 21 Oct 2015 07:28:00 GMT", 600) is None
    assert outbox.retry_after(None, 600) is None


@pytest.mark.parametrize(
    ("url", "says"),
    [
        ("ftp://crm.example.com/hook", "http:// or https://"),
        ("file:///etc/passwd", "http:// or https://"),
        ("javascript:alert(1)", "http:// or https://"),
        ("gopher://127.0.0.1:25/", "http:// or https://"),
        ("crm.example.com/hook", "http:// or https://"),
        ("https://user:pass@crm.example.com/hook", "user name or password"),
        ("https://token@crm.example.com/hook", "user name or password"),
        ("https://:pw@crm.example.com/hook", "user name or password"),
        ("http:///hook", "names no host"),
        ("http://169.254.169.254/latest/meta-data/", "link-local"),
        ("http://[fe80::1]/hook", "link-local"),
        ("http://[::ffff:169.254.169.254]/", "link-local"),
        ("http://0.0.0.0/hook", "not a unicast"),
        ("http://224.0.0.1/hook", "not a unicast"),
        ("http://crm.example.com:99999/", "cannot be read"),
        ("http://crm.example.com/a b", "spaces or control"),
        ("http://crm.example.com/\r\nX-Injected: 1", "spaces or control"),
        ("https://crm.example.com/hook#frag", "fragment"),
        ("https://crm.example.com/" + "a" * 2000, "longer than"),
    ],
)
def test_hostile_urls_are_refused(url: str, says: str) -> None:
    with pytest.raises(outbox.WebhookError, match=says):
        outbox.check_url(url)


def test_ordinary_urls_are_accepted() -> None:
    for url in (
        "https://crm.example.com/hooks/cc?x=1",
        "http://10.0.0.5:8080/in",
        "http://127.0.0.1:5000/",
        "http://[::1]:8000/h",
        "https://crm.example.com",
    ):
        assert outbox.check_url(url) == url


def test_events() -> None:
    assert outbox.check_events(["all"]) == list(EVENT_TYPES)
    assert outbox.check_events(["case.changed,call.ended", "call.ended"]) == [
        "call.ended",
        "case.changed",
    ]
    with pytest.raises(outbox.WebhookError, match=r"unknown event 'call\.started'"):
        outbox.check_events(["call.started"])
    with pytest.raises(outbox.WebhookError, match="name the events"):
        outbox.check_events([" , "])


# --- the outbox ----------------------------------------------------------------------------


def test_enqueue_is_part_of_the_callers_transaction(clean_db: Engine) -> None:
    every = hook(clean_db, ["all"])
    cases = hook(clean_db, ["case.created", "case.changed"])
    with Session(clean_db) as s, s.begin():
        ident = outbox.enqueue(s, "case.created", {"case": 1}, key="case:1:1", at=NOW)
        s.rollback()  # the change it reports did not happen: nothing is sent
    assert ident is not None
    assert count(clean_db, "webhook_events") == 0
    assert count(clean_db, "webhook_outbox") == 0

    with Session(clean_db) as s, s.begin():
        ident = outbox.enqueue(s, "case.created", {"case": 1}, key="case:1:1", at=NOW)
        again = outbox.enqueue(s, "case.created", {"case": 1}, key="case:1:1", at=NOW)
        only_every = outbox.enqueue(s, "call.ended", {"call": "1.1"}, key="1.1", at=NOW)
    assert again == ident  # the same event, stored and sent once
    assert ident == outbox.event_id("case.created", "case:1:1")
    with Session(clean_db) as s:
        rows = s.execute(
            sa.select(WebhookEvent.event_id, WebhookOutbox.webhook_id, WebhookOutbox.status,
                      WebhookOutbox.next_attempt_at)
            .join(WebhookOutbox, WebhookOutbox.event_id == WebhookEvent.id)
            .order_by(WebhookEvent.id, WebhookOutbox.webhook_id)
        ).all()  # fmt: skip
    assert rows == [
        (ident, every, "pending", NOW),
        (ident, cases, "pending", NOW),
        (only_every, every, "pending", NOW),
    ]
    # Later (idempotent) enqueues of the same event in another transaction change nothing.
    with Session(clean_db) as s, s.begin():
        assert outbox.enqueue(s, "case.created", {"case": 2}, key="case:1:1") == ident
    assert count(clean_db, "webhook_outbox") == 3


def test_enqueue_without_subscribers_writes_nothing(clean_db: Engine) -> None:
    hook(clean_db, ["call.ended"])
    with Session(clean_db) as s, s.begin():
        assert outbox.enqueue(s, "campaign.attempt", {"a": 1}, key="attempt:1") is None
        with pytest.raises(ValueError, match="unknown webhook event type"):
            outbox.enqueue(s, "call.started", {}, key="x")
    assert count(clean_db, "webhook_events") == 0


def outbox_rows(engine: Engine) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(sa.text(
            "SELECT e.id, e.event_id, e.type, e.key, e.payload, e.created_at, o.id, o.webhook_id,"
            " o.status, o.attempts, o.created_at, o.next_attempt_at, o.last_error"
            " FROM webhook_events e LEFT JOIN webhook_outbox o ON o.event_id = e.id"
            " ORDER BY e.id, o.id"))]  # fmt: skip


def test_enqueue_many_writes_what_enqueue_would_one_by_one(clean_db: Engine) -> None:
    """The same rows, ids and order; an event stored before, or twice in the batch, once."""
    hook(clean_db, ["call.ended"])
    hook(clean_db, ["case.created", "call.ended"])
    items: list[tuple[dict[str, object], str, dt.datetime | None]] = [
        ({"call": f"{i}.1", "at": NOW, "n": [i, None]}, f"pbx1:{i}.1",
         NOW + dt.timedelta(seconds=i)) for i in range(5)
    ]  # fmt: skip
    items.append(({"call": "2.1", "again": True}, "pbx1:2.1", NOW))  # the same event
    items.append(({"call": "9.1"}, "x" * 300, NOW))  # key cut to 200
    seen = []
    for batch in (False, True):
        with Session(clean_db) as s, s.begin():
            outbox.enqueue(s, "call.ended", {"before": 1}, key="pbx1:0.1", at=NOW)
            idents: list[uuid.UUID | None] = []
            if batch:
                idents += outbox.enqueue_many(s, "call.ended", items)
            else:
                idents = [outbox.enqueue(s, "call.ended", p, key=k, at=a) for p, k, a in items]
        seen.append((idents, outbox_rows(clean_db)))
        with clean_db.begin() as conn:
            conn.execute(sa.text("TRUNCATE webhook_events RESTART IDENTITY CASCADE"))
            conn.execute(sa.text("ALTER SEQUENCE webhook_outbox_id_seq RESTART"))
    assert seen[0] == seen[1]
    idents, rows = seen[1]
    assert idents == [outbox.event_id("call.ended", k) for _, k, _ in items]
    assert len(rows) == 2 * 6  # six events (one twice in the batch), two webhooks each
    with Session(clean_db) as s, s.begin():
        assert outbox.enqueue_many(s, "campaign.attempt", [({}, "attempt:1", NOW)]) == []
        with pytest.raises(ValueError, match="unknown webhook event type"):
            outbox.enqueue_many(s, "call.started", [])
    assert count(clean_db, "webhook_events") == 0


def test_database_errors_are_sqlalchemys(clean_db: Engine) -> None:
    """The driver's own statements raise what SQLAlchemy's did (the workers' retry loops
    catch SQLAlchemy's errors), and the session's transaction can still be rolled back."""
    hook(clean_db, ["call.ended"])
    with Session(clean_db) as s, s.begin():
        with pytest.raises(sa.exc.IntegrityError):
            outbox.enqueue(s, "call.ended", {}, key="1.1", hooks=[999_999])  # no such webhook
        s.rollback()
    assert count(clean_db, "webhook_events") == 0


def test_a_finished_attempt_is_enqueued_in_the_same_transaction(clean_db: Engine) -> None:
    """What ``scheduling.finish`` does once the lead adds the enqueue line: the event carries
    the attempt as it ended, written with the attempt or not at all."""
    hook(clean_db, ["campaign.attempt"])
    with Session(clean_db) as s, s.begin():
        s.add(Queue(name="sales"))
        s.flush()
        campaign_id = store.add_campaign(s, "spring", trunks=("prov",), queue="sales").id
        s.add(CampaignAttempt(campaign_id=campaign_id, phone="+12125550000", attempt_no=1,
                              mode="predictive", channel_id="cc-1", phase="dialling",
                              created_at=NOW, originated_at=NOW, day=NOW.date()))  # fmt: skip
    end = NOW + dt.timedelta(seconds=40)
    with Session(clean_db) as s, s.begin():
        assert scheduling.finish(s, "cc-1", "busy", at=end, hangup_cause=17)
        attempt = s.scalar(sa.select(CampaignAttempt).where(CampaignAttempt.channel_id == "cc-1"))
        assert attempt is not None
        outbox.enqueue(s, "campaign.attempt", outbox.attempt_event(attempt),
                       key=outbox.attempt_key(attempt))  # fmt: skip
        attempt_id = attempt.id
    with Session(clean_db) as s:
        event = s.scalars(sa.select(WebhookEvent)).one()
    assert event.type == "campaign.attempt"
    assert event.key == f"attempt:{attempt_id}"
    data = event.payload
    assert data["attempt_id"] == attempt_id
    assert data["campaign_id"] == campaign_id
    assert data["outcome"] == "busy"
    assert data["hangup_cause"] == 17
    assert data["phone"] == "+12125550000"
    assert data["ended_at"] == end.isoformat()
    assert data["answered_at"] is None
    json.dumps(data)


# --- the operator's commands ---------------------------------------------------------------


def test_cli_add_list_remove(run_cli: Cli, clean_db: Engine) -> None:
    added = run_cli.ok("webhooks", "add", "https://crm.example.com/in", "--events",
                       "case.created,case.changed", "--events", "call.ended",
                       "--description", "the CRM")  # fmt: skip
    secret = added.stdout.strip()
    assert secret.startswith("whsec_")
    assert len(secret) > 40
    assert "shown this once" in added.stderr
    listed = run_cli.ok("webhooks", "list").output
    assert "https://crm.example.com/in" in listed
    assert "call.ended, case.created, case.changed" in listed
    assert secret not in listed
    as_json = json.loads(run_cli.ok("webhooks", "list", "--json").output)
    assert as_json[0]["events"] == ["call.ended", "case.created", "case.changed"]
    assert "secret" not in as_json[0]
    ident = as_json[0]["id"]

    with Session(clean_db) as s, s.begin():
        outbox.enqueue(s, "call.ended", {"call": "1.1"}, key="1.1")
    deliveries = json.loads(run_cli.ok("webhooks", "deliveries", "--json").output)
    assert [(d["type"], d["status"], d["attempts"]) for d in deliveries] == [
        ("call.ended", "pending", 0)
    ]
    assert run_cli.ok("webhooks", "log", str(deliveries[0]["id"])).output.count("0 tries") == 1
    assert "removed" in run_cli.ok("webhooks", "remove", str(ident)).output
    assert count(clean_db, "webhooks") == 0
    assert count(clean_db, "webhook_outbox") == 0
    assert count(clean_db, "webhook_events") == 0
    gone = run_cli("webhooks", "remove", str(ident))
    assert gone.exit_code == 1
    assert f"no webhook {ident}" in gone.output


@pytest.mark.parametrize(
    "url",
    [
        "ftp://crm.example.com/in",
        "https://admin:hunter2@crm.example.com/in",
        "file:///etc/passwd",
        "http://169.254.169.254/latest/meta-data/",
    ],
)
def test_cli_refuses_a_hostile_url_and_writes_nothing(run_cli: Cli, clean_db: Engine,
                                                       url: str) -> None:  # fmt: skip
    result = run_cli("webhooks", "add", url, "--events", "all")
    assert result.exit_code == 1
    assert result.output.startswith("Error: ")
    assert "hunter2" not in result.output  # a refused URL's password is not echoed
    assert count(clean_db, "webhooks") == 0


def test_cli_refuses_unknown_events(run_cli: Cli, clean_db: Engine) -> None:
    result = run_cli("webhooks", "add", "https://crm.example.com/in", "--events", "call.rang")
    assert result.exit_code == 1
    assert "unknown event 'call.rang'" in result.output
    assert run_cli("webhooks", "add", "https://crm.example.com/in").exit_code == 2
    assert count(clean_db, "webhooks") == 0


def test_retry_requeues_dead_deliveries(run_cli: Cli, clean_db: Engine) -> None:
    ident = hook(clean_db, ["call.ended"])
    long_ago = dt.datetime.now(dt.UTC) - dt.timedelta(days=5)
    with Session(clean_db) as s, s.begin():
        outbox.enqueue(s, "call.ended", {"call": "1.1"}, key="1.1", at=long_ago)
        s.execute(sa.update(WebhookOutbox).values(status="dead", last_error="gave up: HTTP 500"))
    dead = json.loads(run_cli.ok("webhooks", "deliveries", "--status", "dead", "--json").output)
    assert len(dead) == 1
    assert "1 deliveries" in run_cli.ok("webhooks", "retry", str(ident)).output
    with Session(clean_db) as s:
        row = s.scalars(sa.select(WebhookOutbox)).one()
    assert row.status == "pending"
    assert row.created_at > long_ago  # a full maximum age again, from now


# --- settings ------------------------------------------------------------------------------


def test_webhooks_settings(tmp_path: Path) -> None:
    no_file = {"CALLCENTER_CONFIG": ""}
    path = tmp_path / "cc.toml"
    path.write_text(config.EXAMPLE)
    assert config.load(path, environ=no_file).webhooks == config.WebhooksSettings()
    env = {**no_file, "CALLCENTER_WEBHOOKS__BACKOFF_CAP": "120", "CALLCENTER_WEBHOOKS__BATCH": "7"}
    s = config.load(environ=env)
    assert (s.webhooks.backoff_cap, s.webhooks.batch) == (120.0, 7)
    for toml, says in [
        ("[webhooks]\ntimeout = 0\n", "webhooks.timeout = 0.0 must be greater than 0"),
        ("[webhooks]\nbackoff_base = 60\nbackoff_cap = 30\n", "at least backoff_base"),
        ("[webhooks]\nmax_age_hours = 100\nkeep_days = 1\n", "must cover max_age_hours"),
        ("[webhooks]\nretries = 3\n", "unknown setting 'webhooks.retries'"),
    ]:
        path.write_text(toml)
        with pytest.raises(config.ConfigError, match=says):
            config.load(path, environ=no_file)
