"""An NPS answer keyed on a real Asterisk: the post-call survey's GET DATA reads up to two keys,
and one key followed by silence is an answer once the digit time-out passes (Asterisk replies
``200 result=7 (timeout)``). The answer reaches ``survey_answers`` on the 0-10 scale, leaves
``calls.survey_score`` alone, and shows in the wallboard's day figures and in ``callcenter report
--satisfaction``."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter.cli.main import cli
from callcenter.wallboard import kpis
from tests.e2e.conftest import IVRS, Pbx, stack, wait_exit
from tests.test_bridge import calls, eventually

pytestmark = pytest.mark.asterisk

NPS_IVRS: dict[str, Any] = {
    "main": {
        **IVRS["main"],
        "survey": {
            "questions": [{"name": "recommend", "prompt": "beep", "kind": "nps"}],
            "timeout": 8.0,
        },
    }
}


def answers(engine: Engine) -> list[tuple[str, int, int, str | None, str | None]]:
    with engine.connect() as db:
        rows = db.execute(
            sa.text("SELECT question, score, scale, queue, campaign FROM survey_answers")
        ).all()
    return [(str(q), int(s), int(k), queue, c) for q, s, k, queue, c in rows]


async def test_an_nps_answer_of_one_key_ends_with_the_time_out(
    pbx: Pbx, engine: Engine, tmp_path: Path
) -> None:
    async with stack(pbx, engine, tmp_path, ivrs=NPS_IVRS) as st:
        await st.phones.phone("alice", "1001", "answer", ring_ms=500, talk_ms=2500)
        await st.login("alice")
        # Keys 1 (the IVR's sales) at 2.5 s, then 7 at 9 s, in the survey; then silence.
        caller = st.phones.callers(1, patience_ms=40000, later=(6500, "7"))
        assert await wait_exit(caller) == 0, caller.text()[-2000:]
        await eventually(lambda: bool(answers(engine)), 15)
        assert answers(engine) == [("recommend", 7, 10, "sales", None)]
        (row,) = calls(engine).values()
        assert row["survey_score"] is None  # an NPS answer is not a 1-5 score
        with Session(engine) as session:
            day = kpis.day_figures(
                session, st.settings.reporting, ZoneInfo("UTC"), dt.datetime.now(dt.UTC)
            )
        sales = day["queues"]["sales"]
        # 7 is a passive: NPS 0 over one answer; no CSAT answer: no CSAT.
        assert {k: sales[k] for k in kpis.SATISFACTION_KEYS} == {
            "csat": None, "csat_n": 0, "nps": 0.0, "nps_n": 1}  # fmt: skip
        env = {"CALLCENTER_DATABASE__URL": st.settings.database.url, "CALLCENTER_CONFIG": ""}
        result = CliRunner().invoke(
            cli, ["report", "--satisfaction", "--since", "-1h", "--json"], env=env
        )
        assert result.exit_code == 0, result.output
        groups = json.loads(result.output)["groups"]
        assert [(g["queue"], g["nps_n"], g["passives"]) for g in groups] == [("sales", 1, 1)]
