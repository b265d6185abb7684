"""The survey script with an NPS question, over the Asterisk double and the real PostgreSQL:
how a 0-10 answer is keyed (``10`` at once; one key ended by ``#`` or the time-out), the
scale and campaign stored with each answer, and ``calls.survey_score`` of CSAT answers only."""

from __future__ import annotations

import copy

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine

from callcenter.agi.ivr import load_ivrs
from callcenter.db.engine import session_scope
from callcenter.db.models import Call
from callcenter.db.models_ivr import SurveyAnswer
from tests.test_agi_flows import NOW, Rig, rig, seed
from tests.test_agi_ivr import RAW

UNIQUEID = "1795342827.0"  # the double's channel


@pytest.fixture
def db(clean_db: Engine) -> Engine:
    seed(clean_db)
    return clean_db


def with_questions(r: Rig, *questions: dict[str, str]) -> None:
    """The rig's IVR ``main`` with these survey questions."""
    raw = copy.deepcopy(RAW)
    raw["main"]["timezone"] = "Europe/Madrid"
    raw["main"]["survey"]["questions"] = list(questions)
    r.services.ivrs = load_ivrs(raw, "UTC")


AGENT = {"name": "agent", "prompt": "q-agent"}
RECOMMEND = {"name": "recommend", "prompt": "q-recommend", "kind": "nps"}
FIX = {"name": "fix", "prompt": "q-fix"}


def rows(engine: Engine) -> dict[str, tuple[int, int, str | None, str | None, str | None]]:
    with session_scope(engine) as s:
        return {
            a.question: (a.score, a.scale, a.agent, a.queue, a.campaign)
            for a in s.scalars(sa.select(SurveyAnswer))
        }


def call_row(engine: Engine, uniqueid: str = UNIQUEID) -> tuple[str, int | None] | None:
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(Call.direction, Call.survey_score).where(Call.uniqueid == uniqueid)
        ).first()
    return None if row is None else (row[0], row[1])


async def test_an_nps_question_is_stored_on_its_scale_and_left_out_of_the_call_score(
    db: Engine,
) -> None:
    async with rig(db) as (r, _):
        with_questions(r, AGENT, RECOMMEND, FIX)
        # 4, then "1" "0": ten at once (two keys, the most), then 5.
        record = await r.call(script="survey", args=["sales", "alice"], dtmf="4105",
                              variables={"IVR_NAME": "main"})  # fmt: skip
    assert rows(db) == {
        "agent": (4, 5, "alice", "sales", None),
        "recommend": (10, 10, "alice", "sales", None),
        "fix": (5, 5, "alice", "sales", None),
    }
    assert call_row(db) == ("inbound", 5)  # (4 + 5) / 2 half up; the 10 is not in it
    assert record.variables["SURVEY_SCORES"] == "agent=4,recommend=10,fix=5"
    # One GET DATA per question: the NPS one reads up to two keys.
    reads = [c for c in record.commands if c.startswith("GET DATA")]
    assert reads == ["GET DATA q-agent 5000 1", "GET DATA q-recommend 5000 2",
                     "GET DATA q-fix 5000 1"]  # fmt: skip


@pytest.mark.parametrize(
    ("dtmf", "answer", "asked_again"),
    [
        ("7t", 7, False),  # one key, then silence: the time-out ends the answer
        ("7#", 7, False),  # one key ended with #
        ("1t", 1, False),  # 1 is 1 once the caller stops there
        ("0#", 0, False),
        ("10", 10, False),
        ("559#", 9, True),  # 55 is no answer: invalid, asked again
        ("053t", 3, True),  # nor a leading zero
        ("*#8#", 8, True),
    ],
)
async def test_keying_an_nps_answer(db: Engine, dtmf: str, answer: int, asked_again: bool) -> None:
    async with rig(db) as (r, _):
        with_questions(r, RECOMMEND)
        record = await r.call(script="survey", args=["sales", "bob"], dtmf=dtmf,
                              variables={"IVR_NAME": "main"})  # fmt: skip
    assert rows(db) == {"recommend": (answer, 10, "bob", "sales", None)}
    assert ('STREAM FILE invalid ""' in record.commands) == asked_again


async def test_a_survey_of_nps_answers_only_leaves_the_call_score_alone(db: Engine) -> None:
    async with rig(db) as (r, _):
        with_questions(r, AGENT, RECOMMEND)
        # No key for the CSAT question (skipped), 9 for the NPS one.
        await r.call(script="survey", args=["sales", "alice"], dtmf="t9#",
                     variables={"IVR_NAME": "main"})  # fmt: skip
    assert rows(db) == {"recommend": (9, 10, "alice", "sales", None)}
    assert call_row(db) is None  # nothing to keep: the bridge writes the call


async def test_a_caller_who_skips_or_says_nothing(db: Engine) -> None:
    async with rig(db) as (r, _):
        with_questions(r, RECOMMEND, AGENT)
        # "#" alone skips the NPS question (as no key does), then a hang-up.
        await r.call(script="survey", args=["sales", "alice"], dtmf="#h",
                     variables={"IVR_NAME": "main"})  # fmt: skip
    assert rows(db) == {}


async def test_an_outbound_survey_records_its_campaign(db: Engine) -> None:
    """``[outbound-agentless]`` passes the contact's queue and agent (maybe empty), the IVR
    and ``${CAMPAIGN_ID}``."""
    async with rig(db) as (r, _):
        with_questions(r, AGENT, RECOMMEND)
        await r.call(script="survey", args=["sales", "alice", "main", "howdid"], dtmf="36#",
                     uniqueid="1795342900.7")  # fmt: skip
        await r.call(script="survey", args=["", "", "main", "howdid"], dtmf="5t",
                     uniqueid="1795342900.8")  # fmt: skip
    with session_scope(db) as s:
        got = {
            (a.uniqueid, a.question): (a.score, a.scale, a.agent, a.queue, a.campaign)
            for a in s.scalars(sa.select(SurveyAnswer))
        }
    assert got == {
        ("1795342900.7", "agent"): (3, 5, "alice", "sales", "howdid"),
        ("1795342900.7", "recommend"): (6, 10, "alice", "sales", "howdid"),
        ("1795342900.8", "agent"): (5, 5, None, None, "howdid"),
    }
    # The call row the survey creates before the bridge writes it is an outbound one.
    assert call_row(db, "1795342900.7") == ("outbound", 3)
    assert call_row(db, "1795342900.8") == ("outbound", 5)
    with db.connect() as conn:
        when = conn.scalar(sa.select(sa.func.max(SurveyAnswer.answered_at)))
    assert when == NOW
