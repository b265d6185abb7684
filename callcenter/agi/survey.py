"""The post-call survey: after the agent hangs up, the caller scores each question 1-5.

The dialplan sends the caller's channel to the ``survey`` script after Queue() returns with the
call answered (Queue option ``c``). Which survey: that of the IVR the caller came through
(channel variable ``IVR_NAME``, set by the ``ivr`` script); arg 3 may name one; else the first
IVR that has a survey. The agent is arg 2 (``${MEMBERNAME}``, queues.conf ``setinterfacevar``),
else the channel's ``MEMBERNAME``; the queue arg 1, else ``QUEUE``.

Each answer is stored at once (``survey_answers``, one row per call and question, a repeat
overwrites), so a caller who hangs up half-way keeps the answers given. ``calls.survey_score``
(a column the bridge never overwrites) is the rounded average of the answers so far (half up:
4.5 -> 5), or with ``score = "first"`` the score of the first question answered. The ``calls``
row is created if the bridge has not written it yet (the bridge's upsert then fills the rest
and keeps the score).

Per question: a key 1-5 answers; another key plays ``invalid_prompt`` and asks again (``retries``
times); no key within ``timeout`` seconds skips the question.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Engine

from callcenter.agi.channel import Channel
from callcenter.agi.ivr import Survey
from callcenter.db.models import Call
from callcenter.db.models_ivr import SurveyAnswer

UTC = dt.UTC
SCORES = "12345"


def average(scores: list[int]) -> int:
    """Rounded half up (4.5 -> 5), as a person reads "four and a half"."""
    return int(sum(scores) / len(scores) + 0.5)


def save_answer(
    engine: Engine,
    *,
    node: str,
    uniqueid: str,
    question: str,
    score: int,
    agent: str | None,
    queue: str | None,
    call_score: int,
    caller_number: str,
    channel: str,
    now: dt.datetime,
) -> None:
    """Store one answer and the call's survey score, in one transaction. Blocking."""
    answer = insert(SurveyAnswer).values(
        node=node, uniqueid=uniqueid, question=question, score=score, agent=agent,
        queue=queue, answered_at=now,
    )  # fmt: skip
    answer = answer.on_conflict_do_update(
        index_elements=["node", "uniqueid", "question"],
        set_={"score": score, "agent": agent, "queue": queue, "answered_at": now},
    )
    call = insert(Call).values(
        node=node, uniqueid=uniqueid, linkedid=uniqueid, direction="inbound",
        caller_number=caller_number, caller_name="", did="", channel=channel, ivr_path="",
        queue=queue, agent=agent, started_at=now, ring_attempts=0, survey_score=call_score,
    )  # fmt: skip
    call = call.on_conflict_do_update(
        index_elements=["node", "uniqueid"], set_={"survey_score": call_score}
    )
    with engine.begin() as conn:
        conn.execute(answer)
        conn.execute(call)


def answers(engine: Engine, node: str, uniqueid: str) -> dict[str, int]:
    with engine.connect() as conn:
        rows = conn.execute(
            sa.select(SurveyAnswer.question, SurveyAnswer.score).where(
                SurveyAnswer.node == node, SurveyAnswer.uniqueid == uniqueid
            )
        ).all()
    return {str(q): int(v) for q, v in rows}


async def run_survey(
    channel: Channel,
    survey: Survey,
    engine: Engine,
    *,
    node: str,
    agent: str | None,
    queue: str | None,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(UTC),
) -> dict[str, int]:
    """Ask every question; the scores given (question -> 1..5)."""
    scores: dict[str, int] = {}
    await channel.play(survey.intro)
    for question in survey.questions:
        score = await _ask(channel, survey, question.prompts)
        if score is None:
            continue
        scores[question.name] = score
        values = list(scores.values())
        call_score = values[0] if survey.score == "first" else average(values)
        await asyncio.to_thread(
            save_answer, engine, node=node, uniqueid=channel.env.uniqueid,
            question=question.name, score=score, agent=agent, queue=queue,
            call_score=call_score, caller_number=channel.env.callerid,
            channel=channel.env.channel, now=clock(),
        )  # fmt: skip
    await channel.play(survey.thanks)
    return scores


async def _ask(channel: Channel, survey: Survey, prompts: tuple[str, ...]) -> int | None:
    for attempt in range(survey.retries + 1):
        keyed = await channel.collect_digits(prompts, timeout=survey.timeout, max_digits=1)
        if keyed.digits and keyed.digits in SCORES:
            return int(keyed.digits)
        if not keyed.digits:
            return None
        if attempt < survey.retries:
            await channel.play(survey.invalid_prompts)
    return None
