"""``campaigns report`` on hand-made attempt records: every figure is computed again here,
independently, from the rows the test wrote; and the regulator's CSV round trip."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
import random
import uuid
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, sessionmaker

from callcenter.campaigns import report, store
from callcenter.db.models import Agent, AgentStateChange, Call, Queue, QueueMember
from callcenter.db.models_campaigns import Campaign, CampaignAttempt, Contact
from tests.conftest import Cli

UTC = dt.UTC
TODAY = dt.date(2026, 4, 15)
NOW = dt.datetime(2026, 4, 15, 9, tzinfo=UTC)
STARTED = dt.datetime(2026, 2, 1, 12, tzinfo=UTC)
LIVE = {"connected", "abandoned", "hung_up", "delivered"}
OUTCOMES = [
    "connected",
    "abandoned",
    "hung_up",
    "busy",
    "no_answer",
    "machine",
    "failed",
    "skipped",
]
WEIGHTS = [20, 2, 2, 10, 30, 15, 5, 3]
DAYS = [
    dt.date(2026, 2, 10),
    dt.date(2026, 3, 1),
    dt.date(2026, 3, 17),  # the first day of the 30 days ending TODAY
    dt.date(2026, 3, 20),
    dt.date(2026, 4, 1),
    dt.date(2026, 4, 14),
    TODAY,
]


@pytest.fixture
def s(clean_db: Engine) -> Iterator[Session]:
    with sessionmaker(clean_db, expire_on_commit=False).begin() as session:
        yield session


def hand_made(s: Session) -> tuple[Campaign, list[dict[str, Any]], dict[str, float]]:
    """A campaign with attempts over two months; returns the rows and the call-log talk."""
    s.add(Queue(name="sales"))
    s.flush()
    campaign = store.add_campaign(s, "spring", queue="sales", abandon_target=2)
    campaign.started_at = STARTED
    rng = random.Random(13)
    rows: list[dict[str, Any]] = []
    talk: dict[str, float] = {}
    for day in DAYS:
        n = 60 if day != DAYS[0] else 25
        for i in range(n):
            outcome: str | None = rng.choices(OUTCOMES, WEIGHTS)[0]
            if day == DAYS[0] and i < 5:
                outcome = "abandoned"  # a bad day: the worst window holds it
            if day == TODAY and i == 0:
                outcome = None  # still ringing
            created = dt.datetime.combine(day, dt.time(9), tzinfo=UTC) + dt.timedelta(minutes=i)
            row: dict[str, Any] = {
                "campaign_id": campaign.id,
                "phone": f"+1212555{len(rows):04d}",
                "attempt_no": 1,
                "mode": "progressive",
                "paced": "progressive",
                "channel_id": str(uuid.uuid4()) if outcome != "skipped" else None,
                "phase": "ended" if outcome else "dialling",
                "outcome": outcome,
                "created_at": created,
                "originated_at": created + dt.timedelta(seconds=0.1),
                "ended_at": created + dt.timedelta(seconds=60) if outcome else None,
                "day": day,
                "period": 1 + (day - STARTED.date()).days // 30,
                "reason": "do-not-call list" if outcome == "skipped" else "",
            }
            # Half the hang-ups came during AMD: never known to be a person, not live.
            if outcome in LIVE and not (outcome == "hung_up" and rng.random() < 0.5):
                row["human_at"] = created + dt.timedelta(seconds=rng.uniform(4, 15))
            if outcome == "connected":
                row["agent"] = rng.choice(["ann", "bob"])
                row["agent_at"] = row["human_at"] + dt.timedelta(seconds=rng.uniform(0.1, 2.6))
                if rng.random() < 0.8:  # the rest: no call-log row yet
                    talk[row["channel_id"]] = float(rng.randint(20, 400))
            rows.append(row)
    s.execute(sa.insert(CampaignAttempt), rows)
    for channel, seconds in talk.items():
        s.add(
            Call(
                node="local",
                uniqueid=channel,
                linkedid=channel,
                direction="outbound",
                started_at=NOW,
                talk_seconds=seconds,
            )
        )
    for status, n in (("new", 3), ("retry", 2), ("done", 4), ("dnc", 1), ("dialling", 1)):
        for _ in range(n):
            s.add(
                Contact(
                    campaign_id=campaign.id,
                    phone=f"+1415555{uuid.uuid4().int % 10000:04d}",
                    timezone="UTC",
                    status=status,
                )
            )
    s.flush()
    return campaign, rows, talk


def agents_and_states(s: Session) -> None:
    """Ann and Bob on the campaign's queue; Zed is not. Hours as in the expectations."""
    queue = s.scalar(sa.select(Queue).where(Queue.name == "sales"))
    assert queue is not None
    for i, name in enumerate(("ann", "bob", "zed")):
        agent = Agent(name=name, extension=f"10{i}", pin_hash="x", sip_secret="y")
        s.add(agent)
        s.flush()
        if name != "zed":
            s.add(QueueMember(queue_id=queue.id, agent_id=agent.id))

    def span(agent: str, state: str, start: dt.datetime, hours: float | None) -> None:
        end = None if hours is None else start + dt.timedelta(hours=hours)
        s.add(
            AgentStateChange(node="local", agent=agent, state=state, started_at=start, ended_at=end)
        )

    at = dt.datetime(2026, 4, 10, 9, tzinfo=UTC)
    span("ann", "available", at, 1)
    span("ann", "on_call", at + dt.timedelta(hours=1), 1)
    span("ann", "logged_out", at + dt.timedelta(hours=2), 1)  # not logged in
    span("ann", "paused", at + dt.timedelta(hours=3), 0.5)
    span("bob", "available", dt.datetime(2026, 4, 14, 9, tzinfo=UTC), None)  # open: to NOW
    span("zed", "available", at, 5)  # not on the campaign's queue
    span("ann", "available", dt.datetime(2026, 2, 10, 9, tzinfo=UTC), 1)  # life only
    span("ann", "available", dt.datetime(2026, 1, 20, 9, tzinfo=UTC), 1)  # before the start
    s.flush()


def percentile(xs: list[float], p: float) -> float:
    xs = sorted(xs)
    pos = p * (len(xs) - 1)
    low = int(pos)
    high = min(low + 1, len(xs) - 1)
    return xs[low] + (xs[high] - xs[low]) * (pos - low)


def expected(rows: list[dict[str, Any]], talk: dict[str, float], since: dt.date) -> dict[str, Any]:
    mine = [r for r in rows if since <= r["day"] <= TODAY]
    ended = [r for r in mine if r["outcome"] is not None]
    dialled = [r for r in ended if r["outcome"] != "skipped"]
    live = [r for r in ended if r["outcome"] in LIVE and r.get("human_at")]
    abandoned = [r for r in ended if r["outcome"] == "abandoned"]
    a2a = [
        (r["agent_at"] - r["human_at"]).total_seconds()
        for r in mine
        if r.get("agent_at") and r.get("human_at")
    ]
    return {
        "attempts": len(mine),
        "dialled": len(dialled),
        "in_progress": len(mine) - len(ended),
        "skipped": sum(r["outcome"] == "skipped" for r in mine),
        "live_answers": len(live),
        "connected": sum(r["outcome"] == "connected" for r in mine),
        "abandoned": len(abandoned),
        "contact_rate": len(live) / len(dialled),
        "abandon_rate": len(abandoned) / len(live),
        "abandon_budget": round(0.03 * len(live) - len(abandoned), 3),
        "outcomes": dict(Counter(r["outcome"] or "in_progress" for r in mine)),
        "a2a": (
            len(a2a),
            percentile(a2a, 0.5),
            percentile(a2a, 0.95),
            max(a2a),
            sum(x > 2 for x in a2a),
        ),
        "talk": sum(talk.get(r["channel_id"], 0.0) for r in mine if r["outcome"] == "connected"),
    }


def worst_by_brute_force(rows: list[dict[str, Any]]) -> tuple[float, dt.date, int, int]:
    best: tuple[float, dt.date, int, int] | None = None
    end = DAYS[0]
    while end <= TODAY:
        inside = [r for r in rows if end - dt.timedelta(days=29) <= r["day"] <= end]
        live = sum(r["outcome"] in LIVE and bool(r.get("human_at")) for r in inside)
        ab = sum(r["outcome"] == "abandoned" for r in inside)
        if live and (best is None or ab / live > best[0]):
            best = (ab / live, end, live, ab)
        end += dt.timedelta(days=1)
    assert best is not None
    return best


def test_report_figures(s: Session) -> None:
    campaign, rows, talk = hand_made(s)
    agents_and_states(s)
    view = report.campaign_report(s, campaign, today=TODAY, site_tz="UTC", now=NOW)
    assert (view["campaign"], view["contacts_left"]) == ("spring", 5)
    assert view["contacts"] == {"dialling": 1, "dnc": 1, "done": 4, "new": 3, "retry": 2}
    assert (view["abandon_cap"], view["abandon_target"]) == (0.03, 0.02)
    # Logged-in hours of the queue's agents: 30 days (from 2026-03-17 to NOW) and life (from
    # the start): Ann 1 + 1 + 0.5 (not logged out), Bob 24 (open until NOW); life adds Ann's
    # hour on 2026-02-10.
    hours = {"last_30_days": 26.5, "life": 27.5}
    # The life counts from the first start's day.
    for key, since in (("last_30_days", dt.date(2026, 3, 17)), ("life", STARTED.date())):
        got, want = view[key], expected(rows, talk, since)
        assert got["since"] == since
        for name in (
            "attempts",
            "dialled",
            "in_progress",
            "skipped",
            "live_answers",
            "connected",
            "abandoned",
            "outcomes",
            "abandon_budget",
        ):
            assert got[name] == want[name], (key, name)
        assert got["contact_rate"] == pytest.approx(want["contact_rate"])
        assert got["abandon_rate"] == pytest.approx(want["abandon_rate"])
        a2a = got["answer_to_agent"]
        n, p50, p95, top, over = want["a2a"]
        assert (a2a["count"], a2a["over_2s"]) == (n, over)
        assert a2a["p50"] == pytest.approx(p50, abs=1e-6)
        assert a2a["p95"] == pytest.approx(p95, abs=1e-6)
        assert a2a["max"] == pytest.approx(top, abs=1e-6)
        assert got["talk_seconds"] == pytest.approx(want["talk"])
        assert got["agent_hours"] == pytest.approx(hours[key])
        assert got["talk_minutes_per_agent_hour"] == pytest.approx(want["talk"] / 60 / hours[key])
    rate, end, live, ab = worst_by_brute_force(rows)
    worst = view["worst_30_days"]
    assert worst["abandon_rate"] == pytest.approx(rate)
    assert (worst["until"], worst["live_answers"], worst["abandoned"]) == (end, live, ab)
    assert worst["since"] == max(end - dt.timedelta(days=29), STARTED.date())
    assert worst["abandon_rate"] >= view["life"]["abandon_rate"]


def test_report_of_an_empty_and_an_agentless_campaign(s: Session) -> None:
    robo = store.add_campaign(
        s, "robo", mode="agentless", seller_name="Acme", seller_number="+12125550199"
    )
    view = report.campaign_report(s, robo, today=TODAY, site_tz="UTC", now=NOW)
    life = view["life"]
    assert (life["attempts"], life["contact_rate"], life["abandon_rate"]) == (0, None, None)
    assert life["answer_to_agent"] == {
        "count": 0,
        "p50": None,
        "p95": None,
        "max": None,
        "over_2s": 0,
    }
    assert life["talk_minutes_per_agent_hour"] is None
    assert life["since"] == view["last_30_days"]["since"] == TODAY  # never started
    assert view["worst_30_days"] is None
    assert view["contacts_left"] == 0


def test_worst_window_is_pure() -> None:
    d = dt.date(2026, 1, 1)
    days = [(d, 10, 1), (d + dt.timedelta(days=40), 10, 2)]
    worst = report.worst_window(days, d + dt.timedelta(days=80))
    # The second day alone is 20%; the first day's window never holds both.
    assert worst == {
        "since": d + dt.timedelta(days=11),
        "until": d + dt.timedelta(days=40),
        "live_answers": 10,
        "abandoned": 2,
        "abandon_rate": 0.2,
    }
    clipped = report.worst_window(days, d + dt.timedelta(days=80), life_since=d)
    assert clipped is not None
    assert clipped["since"] == d + dt.timedelta(days=11)
    early = report.worst_window(days[:1], d + dt.timedelta(days=5), life_since=d)
    assert early is not None
    assert (early["since"], early["until"]) == (d, d)
    assert report.worst_window([], d) is None
    assert report.worst_window([(d, 0, 0)], d) is None


def read_csv(text: str) -> list[dict[str, str]]:
    return list(csv.DictReader(io.StringIO(text)))


def check_round_trip(s: Session, campaign: Campaign, text: str) -> None:
    lines = read_csv(text)
    assert list(lines[0]) == list(report.EXPORT_COLUMNS)
    table = CampaignAttempt.__table__
    db_rows = (
        s.execute(sa.select(table).where(table.c.campaign_id == campaign.id).order_by(table.c.id))
        .mappings()
        .all()
    )
    assert len(lines) == len(db_rows)
    for line, row in zip(lines, db_rows, strict=True):
        assert line["campaign"] == campaign.name
        for column in table.columns:
            value, cell = row[column.key], line[column.key]
            if value is None:
                assert cell == ""
            elif isinstance(value, dt.datetime):
                assert dt.datetime.fromisoformat(cell) == value
            elif isinstance(value, dt.date):
                assert dt.date.fromisoformat(cell) == value
            elif isinstance(value, int):
                assert int(cell) == value
            else:
                assert cell == value


def test_csv_round_trip(s: Session) -> None:
    campaign, rows, _ = hand_made(s)
    # Another campaign's attempts stay out of it.
    other = store.add_campaign(s, "other", queue="sales")
    s.execute(
        sa.insert(CampaignAttempt), [{**rows[0], "campaign_id": other.id, "channel_id": "x-1"}]
    )
    out = io.StringIO()
    assert report.export_csv(s, campaign, out) == len(rows)
    check_round_trip(s, campaign, out.getvalue())


def test_report_cli(run_cli: Cli, clean_db: Engine, tmp_path: Path) -> None:
    with sessionmaker(clean_db, expire_on_commit=False).begin() as s:
        campaign, rows, _ = hand_made(s)
    view = json.loads(run_cli.ok("campaigns", "report", "spring", "--json").output)
    assert view["life"]["attempts"] == len(rows)  # the real today is after them all
    assert view["contacts_left"] == 5
    text = run_cli.ok("campaigns", "report", "spring").output
    assert "worst 30 days" in text
    assert "contact rate" in text
    # The CSV, to a file and to standard output.
    target = tmp_path / "proof.csv"
    out = run_cli.ok("campaigns", "report", "spring", "--csv", str(target)).output
    assert f"{len(rows)} attempt records" in out
    stdout = run_cli.ok("campaigns", "report", "spring", "--csv", "-").output
    assert stdout == target.read_text(encoding="utf-8")
    with sessionmaker(clean_db).begin() as s:
        check_round_trip(s, campaign, stdout)
    # An unknown campaign: one line, exit 1, no file.
    missing = tmp_path / "none.csv"
    result = run_cli("campaigns", "report", "nope", "--csv", str(missing))
    assert result.exit_code == 1
    assert result.output.strip() == "Error: no campaign named 'nope'"
    assert not missing.exists()
    assert list(tmp_path.iterdir()) == [target]
