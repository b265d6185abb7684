"""The post-call survey: after the agent hangs up, the caller answers each question with keys.

The dialplan sends the caller's channel to the ``survey`` script after Queue() returns with the
call answered (Queue option ``c``). Which survey: that of the IVR the caller came through
(channel variable ``IVR_NAME``, set by the ``ivr`` script); arg 3 may name one; else the first
IVR that has a survey. The agent is arg 2 (``${MEMBERNAME}``, queues.conf ``setinterfacevar``),
else the channel's ``MEMBERNAME``; the queue arg 1, else ``QUEUE``. Arg 4 is the outbound
campaign whose call this is (``${CAMPAIGN_ID}``, passed by ``[outbound-agentless]``); an
inbound call has none (``survey_answers.campaign`` NULL).

Questions are of two kinds (``kind`` in the IVR's ``[survey]``):

- ``csat`` (the default): one key, 1-5, stored on scale 5.
- ``nps`` ("how likely are you to recommend us"): 0-10, stored on scale 10. Read as up to two
  keys with ``#`` as terminator: ``1`` ``0`` is 10 at once; a one-key answer ends with ``#``
  or when no second key comes within ``timeout`` seconds (``7#`` at once, ``7`` after the
  time-out). So ``1`` means 1 only once the caller stops there: the caller cannot be asked
  to key ``10`` otherwise. A prompt that says "then press the pound key" saves the wait.
  ``05``, ``11`` or ``*`` is invalid (asked again).

Each answer is stored at once (``survey_answers``, one row per call and question, a repeat
overwrites), so a caller who hangs up half-way keeps the answers given. ``calls.survey_score``
(a column the bridge never overwrites) keeps its 1-5 meaning: the rounded average of the
**CSAT** answers so far (half up: 4.5 -> 5), or with ``score = "first"`` the first CSAT answer;
NPS answers never change it, and a survey with no CSAT answer leaves it NULL (no ``calls`` row
is written for it then: the bridge writes the call). The ``calls`` row is created if the
bridge has not written it yet (the bridge's upsert then fills the rest and keeps the score).

Per question: a valid answer is stored; another key plays ``invalid_prompt`` and asks again
(``retries`` times); no key within ``timeout`` seconds (or ``#`` alone) skips the question.
"""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import Callable

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.engine import Engine

from callcenter.agi.channel import Channel
from callcenter.agi.ivr import Question, Survey
from callcenter.db.models import Call
from callcenter.db.models_ivr import SurveyAnswer

UTC = dt.UTC
#: The keys of an NPS answer at most ("10").
NPS_DIGITS = 2
#: The keys that answer each kind of question, as keyed.
_ANSWERS = {
    "csat": frozenset(str(n) for n in range(1, 6)),
    "nps": frozenset(str(n) for n in range(11)),
}


def average(scores: list[int]) -> int:
    """Rounded half up (4.5 -> 5), as a person reads "four and a half"."""
    return int(sum(scores) / len(scores) + 0.5)


def answer_of(digits: str, kind: str) -> int | None:
    """The answer the keys ``digits`` (terminator removed) give to a question of ``kind``,
    or None when they are not one: CSAT ``1``..``5``; NPS ``0``..``10`` without a leading 0."""
    return int(digits) if digits in _ANSWERS.get(kind, ()) else None


def call_score(answers: list[tuple[Question, int]], how: str) -> int | None:
    """``calls.survey_score`` after ``answers`` (in the order given): the rounded average of the
    CSAT answers, or the first of them with ``how == "first"``; None without a CSAT answer."""
    csat = [score for question, score in answers if question.kind == "csat"]
    if not csat:
        return None
    return csat[0] if how == "first" else average(csat)


def save_answer(
    engine: Engine,
    *,
    node: str,
    uniqueid: str,
    question: str,
    score: int,
    agent: str | None,
    queue: str | None,
    call_score: int | None,
    caller_number: str,
    channel: str,
    now: dt.datetime,
    scale: int = 5,
    campaign: str | None = None,
) -> None:
    """Store one answer (on ``scale`` 5 or 10) and the call's survey score (unless None), in
    one transaction. Blocking."""
    values = {"score": score, "scale": scale, "agent": agent, "queue": queue,
              "campaign": campaign, "answered_at": now}  # fmt: skip
    answer = insert(SurveyAnswer).values(node=node, uniqueid=uniqueid, question=question, **values)
    answer = answer.on_conflict_do_update(
        index_elements=["node", "uniqueid", "question"], set_=values
    )
    with engine.begin() as conn:
        conn.execute(answer)
        if call_score is None:
            return
        call = insert(Call).values(
            node=node, uniqueid=uniqueid, linkedid=uniqueid,
            direction="outbound" if campaign else "inbound", caller_number=caller_number,
            caller_name="", did="", channel=channel, ivr_path="", queue=queue, agent=agent,
            started_at=now, ring_attempts=0, survey_score=call_score,
        )  # fmt: skip
        call = call.on_conflict_do_update(
            index_elements=["node", "uniqueid"], set_={"survey_score": call_score}
        )
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
    campaign: str | None = None,
    clock: Callable[[], dt.datetime] = lambda: dt.datetime.now(UTC),
) -> dict[str, int]:
    """Ask every question; the answers given (question -> 1..5 or 0..10)."""
    given: list[tuple[Question, int]] = []
    await channel.play(survey.intro)
    for question in survey.questions:
        score = await _ask(channel, survey, question)
        if score is None:
            continue
        given.append((question, score))
        await asyncio.to_thread(
            save_answer, engine, node=node, uniqueid=channel.env.uniqueid,
            question=question.name, score=score, scale=question.scale, agent=agent,
            queue=queue, campaign=campaign, call_score=call_score(given, survey.score),
            caller_number=channel.env.callerid, channel=channel.env.channel, now=clock(),
        )  # fmt: skip
    await channel.play(survey.thanks)
    return {question.name: score for question, score in given}


async def _ask(channel: Channel, survey: Survey, question: Question) -> int | None:
    # CSAT: one key, so a single prompt is one GET DATA. NPS: up to two keys, "#" ends a
    # one-key answer early and the digit time-out ends it otherwise (collect_digits).
    max_digits = NPS_DIGITS if question.kind == "nps" else 1
    for attempt in range(survey.retries + 1):
        keyed = await channel.collect_digits(
            question.prompts, timeout=survey.timeout, max_digits=max_digits
        )
        if not keyed.digits:
            return None
        score = answer_of(keyed.digits, question.kind)
        if score is not None:
            return score
        if attempt < survey.retries:
            await channel.play(survey.invalid_prompts)
    return None
