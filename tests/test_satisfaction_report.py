"""Satisfaction from the real database: ``survey_answers`` grouped in SQL per queue, agent,
campaign and local week, against figures worked out by hand; ``callcenter report
--satisfaction`` (table and JSON) and the satisfaction columns of the plain report; the
wallboard's day figures.

The site is in America/New_York. ISO week 2026-W47 is Mon 16 - Sun 22 November, W48 23-29,
W49 from 30 November. Answer 5 is given on Sunday 22 November at 22:00 local (Monday 03:00
UTC): week 47 here, 48 in UTC. Answer 9 is on Thursday 19 November 23:30 local (Friday 04:30
UTC): before an interval that starts on the 20th, local midnight.
"""

from __future__ import annotations

import datetime as dt
import json
from typing import Any
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter import directory
from callcenter.config import ReportingSettings
from callcenter.db.models import Call
from callcenter.db.models_ivr import SurveyAnswer
from callcenter.satisfaction import store
from callcenter.satisfaction.measures import Csat, Nps
from callcenter.wallboard import kpis
from callcenter.wallboard.kpis import KpiRefresher
from tests.calllog import with_visit
from tests.conftest import Cli

TZ = ZoneInfo("America/New_York")
ENV = {"CALLCENTER_SITE__TIMEZONE": "America/New_York"}


def local(day: int, hour: int, minute: int = 0) -> dt.datetime:
    return dt.datetime(2026, 11, day, hour, minute, tzinfo=TZ)


#: (call, question, score, scale, agent, queue, campaign, answered at)
ANSWERS: list[tuple[str, str, int, int, str | None, str | None, str | None, dt.datetime]] = [
    ("u1", "agent", 5, 5, "alice", "sales", None, local(20, 10)),
    ("u1", "recommend", 10, 10, "alice", "sales", None, local(20, 10)),
    ("u2", "agent", 3, 5, "bob", "sales", None, local(20, 11)),
    ("u2", "recommend", 6, 10, "bob", "sales", None, local(20, 11)),
    ("u3", "agent", 4, 5, "alice", "support", None, local(22, 22)),
    ("u4", "agent", 2, 5, None, None, "howdid", local(23, 9)),  # an agentless survey
    ("u4", "recommend", 9, 10, None, None, "howdid", local(23, 9)),
    ("u5", "agent", 5, 5, "alice", "sales", "howdid", local(23, 10)),  # of a sales call
    ("u9", "agent", 1, 5, "bob", "sales", None, local(19, 23, 30)),  # before the 20th
]


def add_answers(engine: Engine, answers: list[tuple[Any, ...]] = ANSWERS) -> None:
    with Session(engine) as s, s.begin():
        for uniqueid, question, score, scale, agent, queue, campaign, at in answers:
            s.add(SurveyAnswer(node="pbx1", uniqueid=uniqueid, question=question, score=score,
                               scale=scale, agent=agent, queue=queue, campaign=campaign,
                               answered_at=at))  # fmt: skip


@pytest.fixture
def answered(clean_db: Engine) -> Engine:
    with Session(clean_db) as s, s.begin():
        directory.add_queue(s, "sales", service_level_seconds=20)
        directory.add_queue(s, "support", service_level_seconds=30)
        directory.add_queue(s, "vip", service_level_seconds=45)
    add_answers(clean_db)
    return clean_db


SINCE, UNTIL = local(20, 0), dt.datetime(2026, 12, 1, tzinfo=TZ)


def report(engine: Engine, by: Any, **filters: str) -> store.SatisfactionReport:
    with Session(engine) as s:
        return store.build_report(s, SINCE, UNTIL, TZ, by, **filters)


def test_by_queue(answered: Engine) -> None:
    rep = report(answered, "queue")
    groups = dict(rep.groups)
    assert [k for k, _ in rep.groups] == ["sales", "support", None]
    assert groups["sales"].csat == Csat(3, 2)  # 5, 3, 5 (u9's 1 is before the interval)
    assert groups["sales"].nps == Nps(2, 1, 1)  # 10 and 6: NPS 0, and there are answers
    assert groups["sales"].nps.score == 0
    assert groups["support"].figures() == {"csat": 1.0, "csat_n": 1, "nps": None, "nps_n": 0}
    assert groups[None].figures() == {"csat": 0.0, "csat_n": 1, "nps": 100.0, "nps_n": 1}
    assert rep.total.csat == Csat(5, 3)
    assert rep.total.nps == Nps(3, 2, 1)
    assert rep.total.nps.score == pytest.approx(100 / 3)


def test_by_agent_and_by_campaign(answered: Engine) -> None:
    agents = dict(report(answered, "agent").groups)
    assert agents["alice"].figures() == {"csat": 1.0, "csat_n": 3, "nps": 100.0, "nps_n": 1}
    assert agents["bob"].figures() == {"csat": 0.0, "csat_n": 1, "nps": -100.0, "nps_n": 1}
    assert agents[None].csat == Csat(1, 0)
    campaigns = dict(report(answered, "campaign").groups)
    assert campaigns["howdid"].figures() == {"csat": 0.5, "csat_n": 2, "nps": 100.0, "nps_n": 1}
    inbound = campaigns[None]
    assert (inbound.csat, inbound.nps) == (Csat(3, 2), Nps(2, 1, 1))


def test_by_local_week_with_every_week_of_the_interval(answered: Engine) -> None:
    rep = report(answered, "week")
    assert [k for k, _ in rep.groups] == ["2026-W47", "2026-W48", "2026-W49"]
    w47, w48, w49 = (s for _, s in rep.groups)
    assert (w47.csat, w47.nps) == (Csat(3, 2), Nps(2, 1, 1))  # u1, u2 and u3 (Sunday night)
    assert (w48.csat, w48.nps) == (Csat(2, 1), Nps(1, 1, 0))  # u4, u5
    assert w49.figures() == {"csat": None, "csat_n": 0, "nps": None, "nps_n": 0}
    with Session(answered) as s:  # the same answers in UTC weeks: u3 moves to week 48
        utc = store.build_report(s, SINCE, UNTIL, ZoneInfo("UTC"), "week")
    assert dict(utc.groups)["2026-W48"].csat == Csat(3, 2)


def test_filters_and_a_group_nobody_answered(answered: Engine) -> None:
    rep = report(answered, "week", campaign="howdid")
    assert dict(rep.groups)["2026-W48"].csat == Csat(2, 1)
    assert rep.total.csat == Csat(2, 1)
    rep = report(answered, "agent", queue="sales")
    assert {k: s.csat.answers for k, s in rep.groups} == {"alice": 2, "bob": 1}
    # A queue named in the filter is a row even without answers: "—", n = 0.
    rep = report(answered, "queue", queue="vip")
    assert [(k, s.answers) for k, s in rep.groups] == [("vip", 0)]
    assert rep.as_dict()["groups"] == [{
        "queue": "vip", "csat": None, "csat_n": 0, "nps": None, "nps_n": 0,
        "csat_satisfied": 0, "promoters": 0, "passives": 0, "detractors": 0,
    }]  # fmt: skip
    with pytest.raises(ValueError, match="end must come after"), Session(answered) as s:
        store.build_report(s, UNTIL, SINCE, TZ)


def test_report_command_json(answered: Engine, database_url: str) -> None:
    cli = Cli(database_url)
    out = cli.ok(*("report", "--satisfaction", "--since", "2026-11-20", "--until", "2026-12-01",
                   "--by", "campaign", "--json"))  # fmt: skip
    data = json.loads(out.output)
    assert data["by"] == "campaign"
    assert data["timezone"] == "UTC"  # no settings file: the site is in UTC
    assert [g["campaign"] for g in data["groups"]] == ["howdid", None]
    out = cli("report", "--satisfaction", "--since", "2026-11-20", "--until", "2026-12-01",
              "--by", "week", "--json", env=ENV)  # fmt: skip
    assert out.exit_code == 0, out.output
    weeks = json.loads(out.output)
    assert weeks["timezone"] == "America/New_York"
    assert [(g["week"], g["csat_n"], g["nps_n"]) for g in weeks["groups"]] == [
        ("2026-W47", 3, 2), ("2026-W48", 2, 1), ("2026-W49", 0, 0)]  # fmt: skip
    assert weeks["groups"][2]["csat"] is None
    assert weeks["total"]["nps"] == pytest.approx(100 / 3)
    assert set(weeks["definitions"]) == {"csat", "nps", "none"}


def test_report_command_table(answered: Engine, database_url: str) -> None:
    out = Cli(database_url)("report", "--satisfaction", "--since", "2026-11-20", "--until",
                            "2026-12-01", env=ENV)  # fmt: skip
    assert out.exit_code == 0, out.output
    lines = {line.split("│")[1].strip(): line for line in out.output.splitlines()
             if line.count("│") > 3}  # fmt: skip
    cells = {k: [c.strip() for c in v.split("│")[2:-1]] for k, v in lines.items()}
    # CSAT, n, NPS, n, promoters, passives, detractors
    assert cells["sales"] == ["67%", "3", "0", "2", "1", "0", "1"]
    assert cells["support"] == ["100%", "1", "—", "0", "0", "0", "0"]
    assert cells["(no queue)"] == ["0%", "1", "+100", "1", "1", "0", "0"]
    assert cells["all"] == ["60%", "5", "+33", "3", "2", "0", "1"]
    assert "CSAT: share of CSAT answers (1-5) that are 4 or 5" in out.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--satisfaction", "--queue", "nope"], "no queue named 'nope'"),
        (["--satisfaction", "--agent", "nobody"], "no agent named 'nobody'"),
        (["--satisfaction", "--campaign", "nope"], "no campaign named 'nope'"),
        (["--by", "agent"], "--by and --campaign go with --satisfaction"),
        (["--campaign", "howdid"], "--by and --campaign go with --satisfaction"),
        (["--satisfaction", "--crm"], "two reports"),
        (["--satisfaction", "--by", "month"], "'month' is not one of"),
    ],
)
def test_report_command_errors(
    answered: Engine, database_url: str, args: list[str], message: str
) -> None:
    out = Cli(database_url)("report", *args)
    assert out.exit_code != 0
    assert message in out.output


def test_names_only_the_answers_know_are_not_typos(answered: Engine, database_url: str) -> None:
    """The campaign was never in this database's campaigns table, the agent only in answers."""
    cli = Cli(database_url)
    for args in (["--campaign", "howdid"], ["--agent", "alice"], ["--queue", "support"]):
        out = cli.ok("report", "--satisfaction", "--since", "2026-11-20", "--until",
                     "2026-12-01", "--json", *args)  # fmt: skip
        assert json.loads(out.output)["total"]["csat_n"] > 0, args


def test_the_plain_report_has_satisfaction_per_queue(answered: Engine, database_url: str) -> None:
    with Session(answered) as s, s.begin():
        s.add_all(with_visit([Call(
            node="pbx1", uniqueid="u1", linkedid="u1", started_at=local(20, 9, 50),
            queued_at=local(20, 9, 50), answered_at=local(20, 9, 51), queue="sales",
            agent="alice", wait_seconds=10, talk_seconds=60, outcome="answered",
        )]))  # fmt: skip
    out = Cli(database_url)("report", "--since", "2026-11-20", "--until", "2026-12-01",
                            "--json", env=ENV)  # fmt: skip
    assert out.exit_code == 0, out.output
    (sales,) = json.loads(out.output)["queues"]
    assert (sales["offered"], sales["csat_n"], sales["nps_n"]) == (1, 3, 2)
    assert sales["csat"] == pytest.approx(2 / 3)
    assert sales["nps"] == 0
    table = Cli(database_url)("report", "--since", "2026-11-20", "--until", "2026-12-01",
                              env=ENV)  # fmt: skip
    assert "67% (3)" in table.output
    assert "0 (2)" in table.output


# --- the wallboard's day -------------------------------------------------------------------------


def test_the_day_on_the_board(answered: Engine) -> None:
    with Session(answered) as s, s.begin():
        s.add_all(with_visit([Call(
            node="pbx1", uniqueid="c1", linkedid="c1", started_at=local(20, 9),
            queued_at=local(20, 9), answered_at=local(20, 9, 1), queue="support",
            agent="alice", wait_seconds=5, talk_seconds=60, outcome="answered",
        )]))  # fmt: skip
    add_answers(answered, [("v1", "agent", 5, 5, "carl", "vip", None, local(20, 15))])
    rules = ReportingSettings(short_abandon_seconds=5, abandons_count_against_sl=True)
    view = KpiRefresher(answered, rules, TZ, lambda: None).compute(local(20, 23, 59))
    sat = {q: {k: f[k] for k in kpis.SATISFACTION_KEYS} for q, f in view["queues"].items()}
    assert sat == {
        # u1 and u2 (u9 was the evening before, local time)
        "sales": {"csat": 0.5, "csat_n": 2, "nps": 0.0, "nps_n": 2},
        # a call, nobody answered: no figure, not 0
        "support": {"csat": None, "csat_n": 0, "nps": None, "nps_n": 0},
        "vip": {"csat": 1.0, "csat_n": 1, "nps": None, "nps_n": 0},
    }
    # vip had answers and no call: the figures of a queue with no call, at its own threshold.
    assert set(view["queues"]["vip"]) == set(kpis.QUEUE_KEYS) | set(kpis.SATISFACTION_KEYS)
    assert view["queues"]["vip"]["offered"] == 0
    assert view["queues"]["vip"]["service_level_threshold"] == 45
    assert view["queues"]["vip"]["service_level"] is None
    total = {k: view["total"][k] for k in kpis.SATISFACTION_KEYS}
    assert total == {"csat": pytest.approx(2 / 3), "csat_n": 3, "nps": 0.0, "nps_n": 2}
    assert view["total"]["offered"] == 1  # vip's answers add no call


def test_a_queue_the_directory_does_not_know_gets_the_default_threshold(clean_db: Engine) -> None:
    add_answers(clean_db, [("x1", "agent", 4, 5, None, "gone", None, local(20, 8))])
    view = KpiRefresher(clean_db, ReportingSettings(), TZ, lambda: None).compute(local(20, 9))
    assert view["queues"]["gone"]["service_level_threshold"] == 20
    assert view["queues"]["gone"]["csat"] == 1.0
