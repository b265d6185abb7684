"""The predictive mode and the outbound survey against a real Asterisk (see test_dialer.py
for the harness: SIPp agents, Local-channel customers in [sim-customer])."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter.db.models import Call
from callcenter.db.models_campaigns import Campaign, CampaignAttempt
from tests.e2e.conftest import IVRS, Pbx, stack, zone_where
from tests.e2e.test_dialer import (
    NEVER,
    PERSON,
    attempts,
    dialer,
    make_campaign,
    phone,
    until,
)

pytestmark = pytest.mark.asterisk

UTC = dt.UTC
KEYS = 7  # [sim-customer]: a person who keys the number's last digit every 1.5 s


def seed_history(engine: Engine, campaign: str, *, attempts_n: int = 1000, live_every: int = 5,
                 talk: float = 20.0) -> None:  # fmt: skip
    """Yesterday's attempts of ``campaign`` (one in ``live_every`` a live answer connected
    after 8 s, the others no answers after 20 s) and the call log of the connected ones: the
    pacer's memory at the dialer's start says it is past its warm-up, with 200 live answers
    and no abandon behind it (an abandon budget of 6: with less than the pacer's reserve of
    2 it would stay progressive, as it did with 64 live answers)."""
    # From 08:00 yesterday: 1000 attempts 30 s apart end by 16:20, all on yesterday's date
    # (counting back 24 h from now put the last of them on today's, where the test counts
    # the dialer's own calls, whenever it ran after 15:40).
    yesterday = dt.datetime.combine(dt.date.today() - dt.timedelta(days=1), dt.time(8), UTC)
    rows: list[dict[str, Any]] = []
    calls: list[dict[str, Any]] = []
    with Session(engine) as s, s.begin():
        cid = s.scalar(sa.select(Campaign.id).where(Campaign.name == campaign))
        assert cid is not None
        for i in range(attempts_n):
            at = yesterday + dt.timedelta(seconds=30 * i)
            live = i % live_every == 0
            channel = str(uuid.uuid4())
            rows.append({
                "campaign_id": cid, "phone": f"+1201555{i:04d}", "attempt_no": 1,
                "mode": "predictive", "paced": "progressive", "channel_id": channel,
                "phase": "ended", "created_at": at, "originated_at": at,
                "answered_at": at + dt.timedelta(seconds=7) if live else None,
                "human_at": at + dt.timedelta(seconds=8) if live else None,
                "agent_at": at + dt.timedelta(seconds=8.5) if live else None,
                "agent": "alice" if live else None,
                "ended_at": at + dt.timedelta(seconds=8.5 + talk if live else 20),
                "outcome": "connected" if live else "no_answer",
                "day": at.date(), "period": 1,
            })  # fmt: skip
            if live:
                calls.append({
                    "node": "local", "uniqueid": channel, "linkedid": channel,
                    "direction": "outbound", "started_at": at, "talk_seconds": talk,
                })  # fmt: skip
        s.execute(sa.insert(CampaignAttempt), rows)
        s.execute(sa.insert(Call), calls)


async def test_predictive_dials_ahead_of_free_agents_and_keeps_the_two_second_rule(
    pbx: Pbx, engine: Engine, tmp_path: Path
) -> None:
    zone = zone_where(range(9, 19))
    # One in five answers (a person who stays 10 s), the rest ring out: the answer rate the
    # seeded history taught the pacer.
    numbers = [(phone(PERSON if i % 5 == 0 else NEVER, 2, 60 + i), zone) for i in range(30)]
    async with stack(pbx, engine, tmp_path) as st:
        await st.phones.phone("alice", "1001", "answer", ring_ms=50, talk_ms=4000, trace=True)
        await st.phones.phone("bob", "1002", "answer", ring_ms=50, talk_ms=4000)
        await st.login("alice", "bob")
        make_campaign(engine, tmp_path, "ahead", numbers, mode="predictive", queue="sales",
                      ring_seconds=15)  # fmt: skip
        seed_history(engine, "ahead")
        async with dialer(st) as d:
            most = 0

            def enough() -> bool:
                nonlocal most
                most = max(most, len(d.in_flight(next(iter(d.runs.values())))) if d.runs else 0)
                today = [a for a in attempts(engine, "ahead") if a.day == dt.date.today()]
                return sum(a.outcome == "connected" for a in today) >= 3

            await until(enough, 120, "three connected predictive calls")
            snapshot = next(iter(d.runs.values()))
            decision = snapshot.decision
        # Let the calls in flight end before the stack stops.
        await asyncio.sleep(0.5)
        rows = [a for a in attempts(engine, "ahead") if a.created_at.date() == dt.date.today()]
    assert decision == "predictive", snapshot.reason
    # The campaign queue's calls told the agent's phone to answer by itself (Queue option b
    # runs [dialer-autoanswer] on each member channel before it is dialled).
    invites = [
        m for m in (tmp_path / "sipp-1001-messages.log").read_text().split("-" * 47)
        if "message received" in m and "\nINVITE sip:" in m
    ]  # fmt: skip
    assert invites, "alice's phone got no INVITE"
    for invite in invites:
        assert "Call-Info: <sip:autoanswer>;answer-after=0" in invite, invite
        assert "Alert-Info: <http://localhost>;info=alert-autoanswer" in invite, invite
    paced = {a.paced for a in rows if a.channel_id}
    assert "predictive" in paced, paced
    assert most > 2, f"at most {most} calls in flight for 2 agents: no dialling ahead"
    waits = sorted(
        (a.agent_at - a.human_at).total_seconds()
        for a in rows
        if a.outcome == "connected" and a.agent_at and a.human_at
    )
    write_artifact(
        "dialer-answer-to-agent.json",
        {"mode": "predictive", "seconds": waits, "lines_in_flight_max": most},
    )
    for a in rows:
        if a.outcome == "connected":
            assert a.human_at is not None
            assert a.agent_at is not None
            assert (a.agent_at - a.human_at).total_seconds() < 2.0
        if a.outcome == "abandoned":
            # Dialled ahead and no agent free in time: the information message was played.
            assert a.message_started_at is not None
            assert a.human_at is not None
            assert (a.message_started_at - a.human_at).total_seconds() < 2.0


def write_artifact(name: str, data: object) -> None:
    """Measured figures for people to read (test-artifacts/ is not kept in git)."""
    artifacts = Path(__file__).resolve().parents[2] / "test-artifacts"
    artifacts.mkdir(exist_ok=True)
    (artifacts / name).write_text(json.dumps(data))


SURVEY_IVRS: dict[str, Any] = {
    "main": {
        **IVRS["main"],
        "survey": {
            "questions": [
                {"name": "agent", "prompt": "beep"},
                {"name": "resolved", "prompt": "beep"},
            ],
            "timeout": 8.0,
        },
    }
}


async def test_outbound_survey_writes_scores_where_inbound_ones_go(
    pbx: Pbx, engine: Engine, tmp_path: Path
) -> None:
    zone = zone_where(range(9, 19))
    async with stack(pbx, engine, tmp_path, ivrs=SURVEY_IVRS) as st:
        make_campaign(
            engine, tmp_path, "howdid", [(phone(KEYS, 4, 70), zone)], mode="agentless",
            agentless_action="survey", survey_ivr="main",
        )  # fmt: skip
        async with dialer(st):

            def ended() -> bool:
                rows = attempts(engine, "howdid")
                return bool(rows) and all(a.outcome for a in rows)

            await until(ended, 90, "the survey call")
        (a,) = attempts(engine, "howdid")
        assert a.outcome == "delivered", (a.outcome, a.reason)
        with Session(engine) as s:
            answers = s.execute(
                sa.text(
                    "SELECT question, score, scale, campaign FROM survey_answers "
                    "WHERE uniqueid = :u"
                ),
                {"u": a.channel_id},
            ).all()
            score = s.scalar(sa.select(Call.survey_score).where(Call.uniqueid == a.channel_id))
    # The dialplan passes ${CAMPAIGN_ID} to the survey: each answer names its campaign.
    assert sorted((str(q), int(v), int(k), c) for q, v, k, c in answers) == [
        ("agent", 4, 5, "howdid"), ("resolved", 4, 5, "howdid")]  # fmt: skip
    assert score == 4
