"""QA scorecards in the web app: who may open the supervisors' pages (not a screen, an agent
or an API token), scoring a call beside its player (CSRF, an incomplete form comes back with
the question named and nothing lost), the report, and the agent's own scores (never
another's)."""

from __future__ import annotations

import re
from typing import Any

import pytest
from aiohttp.test_utils import TestClient
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter import config, directory, tokens
from callcenter.quality import store
from callcenter.wallboard import accounts
from tests.conftest import count
from tests.qa_support import ANY_FORM, add_form, add_recording, answers
from tests.test_desk import agent_login
from tests.test_wallboard_support import (
    PASSWORD,
    add_token,
    add_user,
    csrf_of,
    http,
    login,
    wallboard_settings,
)

Client = TestClient[Any, Any]


@pytest.fixture
def qa_settings(settings: config.Settings, clean_db: Engine) -> config.Settings:
    """Supervisor sam, administrator ada; queues sales and support; agents alice and bob
    with desktop passwords; the sales form."""
    add_user(clean_db)
    add_user(clean_db, "ada", "admin")
    with Session(clean_db) as s, s.begin():
        directory.add_queue(s, "sales")
        directory.add_queue(s, "support")
        directory.add_agent(s, name="alice", extension="1001", pin="2468")
        directory.add_agent(s, name="bob", extension="1002", pin="2468")
        accounts.set_agent_password(s, "alice", PASSWORD)
        accounts.set_agent_password(s, "bob", PASSWORD)
    add_form(clean_db)
    return wallboard_settings(settings)


def sales_form(engine: Engine) -> store.FormView:
    with Session(engine) as s:
        return store.form_view(s, store.get_form(s, "Sales v1"))


def fields(form: store.FormView, *points: int | None, comment: str = "") -> dict[str, str]:
    out = {f"q{q.id}": str(p) for q, p in zip(form.questions, points, strict=True) if p is not None}
    return {**out, "form_id": str(form.id), "comment": comment}


def score_of(evaluation: store.EvaluationView) -> float:
    return evaluation.score


# --- who may --------------------------------------------------------------------------------


async def test_only_supervisors_reach_the_qa_pages(
    qa_settings: config.Settings, clean_db: Engine
) -> None:
    form = sales_form(clean_db)
    rec = add_recording(clean_db)
    with Session(clean_db) as s, s.begin():
        done = store.evaluate(
            s, rec, form_id=form.id, evaluator="sam", answers=answers(form, 1, 3, 1)
        )
    pages = ["/qa", f"/qa/evaluate/{rec}", f"/qa/evaluations/{done.id}"]
    tv_token = add_token(clean_db, "lobby")
    with Session(clean_db) as s, s.begin():
        api_read = tokens.add_token(s, "bi", "read")[1]
        api_write = tokens.add_token(s, "crm", "write")[1]
    async with http(qa_settings, clean_db) as (_, client):
        for path in pages:
            # Nobody: the login page.
            resp = await client.get(path, allow_redirects=False)
            assert (resp.status, resp.headers["Location"]) == (303, "/login"), path
            # A screen's token, API tokens of either scope: 403.
            for raw in (tv_token, api_read, api_write):
                resp = await client.get(path, headers={"Authorization": f"Bearer {raw}"})
                assert resp.status == 403, (path, raw[:8])
        resp = await client.post(
            f"/qa/evaluate/{rec}",
            data=fields(form, 1, 3, 1),
            headers={"Authorization": f"Bearer {api_write}"},
        )
        assert resp.status == 403
    # A screen's session (entered with its token) sees the board, not QA.
    async with http(qa_settings, clean_db) as (_, client):
        resp = await client.get(f"/tv?token={tv_token}", allow_redirects=False)
        assert resp.status == 303
        board = await (await client.get("/board")).text()
        csrf = csrf_of(board)
        assert '<a href="/qa">QA</a>' not in board  # no link to pages it may not open
        for path in pages:
            assert (await client.get(path)).status == 403, path
        resp = await client.post(
            f"/qa/evaluate/{rec}", data={**fields(form, 1, 3, 1), "csrf": csrf}
        )
        assert resp.status == 403
    # An agent's session goes back to the agent's desktop.
    async with http(qa_settings, clean_db) as (_, client):
        csrf = await agent_login(client)
        for path in pages:
            resp = await client.get(path, allow_redirects=False)
            assert (resp.status, resp.headers["Location"]) == (303, "/agent"), path
        resp = await client.post(
            f"/qa/evaluate/{rec}",
            data={**fields(form, 1, 3, 1), "csrf": csrf},
            allow_redirects=False,
        )
        assert resp.status == 303
        assert resp.headers["Location"] == "/agent"
    # Supervisors and administrators do; the board's header links to QA.
    for user in ("sam", "ada"):
        async with http(qa_settings, clean_db) as (_, client):
            await login(client, user)
            assert '<a href="/qa">QA</a>' in await (await client.get("/board")).text()
            for path in pages:
                resp = await client.get(path)
                assert resp.status == 200, (user, path)
    assert count(clean_db, "qa_evaluations") == 1


# --- scoring a call -------------------------------------------------------------------------


async def test_a_supervisor_scores_a_call_beside_its_player(
    qa_settings: config.Settings, clean_db: Engine
) -> None:
    form = sales_form(clean_db)
    rec = add_recording(clean_db, agent="alice", queue="sales")
    async with http(qa_settings, clean_db) as (_, client):
        csrf = await login(client)
        resp = await client.get(f"/qa/evaluate/{rec}")
        html = await resp.text()
        assert resp.status == 200
        assert (
            f'<audio id="qa-player" controls preload="metadata" src="/recordings/{rec}/audio">'
            in html
        )
        assert "Found out what the caller needed" in html
        assert "Sales v1" in html
        for q in form.questions:
            for value in range(q.max_points + 1):
                assert f'name="q{q.id}" value="{value}"' in html
        assert "script" not in html.split("<main>")[1]  # nothing inline (CSP)
        assert "style=" not in html
        # Without the session's CSRF token, or from another site: refused, nothing saved.
        for data, headers in (
            (fields(form, 1, 4, 1), {}),
            ({**fields(form, 1, 4, 1), "csrf": "forged"}, {}),
            ({**fields(form, 1, 4, 1), "csrf": csrf}, {"Origin": "https://evil.example"}),
        ):
            resp = await client.post(f"/qa/evaluate/{rec}", data=data, headers=headers)
            assert resp.status == 403
        assert count(clean_db, "qa_evaluations") == 0
        # Incomplete: 400, the question named, what was entered kept.
        resp = await client.post(
            f"/qa/evaluate/{rec}",
            data={**fields(form, 1, None, 0, comment="Rushed the close."), "csrf": csrf},
        )
        html = await resp.text()
        assert resp.status == 400
        assert "question 2 (&#39;Found out what the caller needed&#39;) is not answered" in html
        assert f'name="q{form.questions[0].id}" value="1" required checked' in html
        assert f'name="q{form.questions[2].id}" value="0" checked' in html
        assert "Rushed the close.</textarea>" in html
        # Out of range (a forged value): 400 naming the question.
        resp = await client.post(
            f"/qa/evaluate/{rec}", data={**fields(form, 1, 9, 1), "csrf": csrf}
        )
        assert resp.status == 400
        assert "question 2" in await resp.text()
        assert "0-5 (got 9)" in await resp.text()
        assert count(clean_db, "qa_evaluations") == 0
        # Complete: saved, and the result shown.
        resp = await client.post(
            f"/qa/evaluate/{rec}",
            data={**fields(form, 1, 4, 1, comment="Good call.\nWatch the hold."), "csrf": csrf},
            allow_redirects=False,
        )
        assert resp.status == 303, await resp.text()
        location = resp.headers["Location"]
        assert re.fullmatch(r"/qa/evaluations/\d+", location)
        html = await (await client.get(location)).text()
        assert 'data-score="90.0">90.0%</span>' in html
        assert "Good call.\nWatch the hold." in html
        assert "4 / 5" in html
        assert "sam" in html
        # The same supervisor again (a double click): 409, not a second evaluation.
        resp = await client.post(
            f"/qa/evaluate/{rec}", data={**fields(form, 1, 4, 1), "csrf": csrf}
        )
        assert resp.status == 409
        assert "has already scored this call" in await resp.text()
        # The scoring page lists it.
        html = await (await client.get(f"/qa/evaluate/{rec}")).text()
        assert f'href="{location}">90.0%</a>' in html
    with Session(clean_db) as s:
        (saved,) = store.list_evaluations(s)
    assert (saved.agent, saved.queue, saved.evaluator, saved.score) == ("alice", "sales", "sam", 90)


async def test_what_cannot_be_scored_says_why(
    qa_settings: config.Settings, clean_db: Engine
) -> None:
    form = sales_form(clean_db)
    support = add_recording(clean_db, queue="support")
    nobody = add_recording(clean_db, agent=None)
    async with http(qa_settings, clean_db) as (_, client):
        csrf = await login(client)
        # No form for support, none for every queue: 409, and how to add one.
        resp = await client.get(f"/qa/evaluate/{support}")
        assert resp.status == 409
        text = await resp.text()
        assert "No active QA form for queue support" in text
        assert 'id="qa-form"' not in text
        # A form for every queue scores it then.
        add_form(clean_db, ANY_FORM)
        resp = await client.get(f"/qa/evaluate/{support}")
        assert resp.status == 200
        assert "Was the call handled well" in await resp.text()
        resp = await client.get(f"/qa/evaluate/{nobody}")
        assert resp.status == 409
        assert "names no agent" in await resp.text()
        assert (await client.get("/qa/evaluate/987654")).status == 404
        assert (await client.get("/qa/evaluations/987654")).status == 404
        assert (await client.get("/qa/evaluate/99999999999999999999999")).status == 404
        resp = await client.post(
            "/qa/evaluate/987654", data={**fields(form, 1, 3, 1), "csrf": csrf}
        )
        assert resp.status == 404
        resp = await client.post(f"/qa/evaluate/{support}", data={"csrf": csrf})
        assert resp.status == 400  # no form id
        # A form disabled while the page was open: 409, reload.
        with Session(clean_db) as s, s.begin():
            store.disable_form(s, "Sales v1")
        sales = add_recording(clean_db)
        resp = await client.post(
            f"/qa/evaluate/{sales}", data={**fields(form, 1, 3, 1), "csrf": csrf}
        )
        assert resp.status == 409
        assert "no longer active" in await resp.text()
    assert count(clean_db, "qa_evaluations") == 0


# --- the report -----------------------------------------------------------------------------


async def test_the_report_page(qa_settings: config.Settings, clean_db: Engine) -> None:
    form = sales_form(clean_db)
    for agent, points in (("alice", (1, 5, 1)), ("alice", (1, 0, 1)), ("bob", (1, 5, 0))):
        rec = add_recording(clean_db, agent=agent)
        with Session(clean_db) as s, s.begin():
            store.evaluate(s, rec, form_id=form.id, evaluator="sam", answers=answers(form, *points))
    unscored = add_recording(clean_db, agent="bob")
    async with http(qa_settings, clean_db) as (_, client):
        await login(client)
        resp = await client.get("/qa")
        html = await resp.text()
        assert resp.status == 200
        assert "3 evaluations, mean 50.0%" in html  # (100 + 50 + 0) / 3
        agents = html.split('id="qa-agents"')[1].split("</table>")[0]
        assert re.search(
            r">alice</a></th><td class=\"num\">2</td><td class=\"num\">75.0</td>", agents
        )
        assert re.search(
            r">bob</a></th><td class=\"num\">1</td><td class=\"num\">0.0</td>"
            r".*qa-fail\">1</td>",
            agents,
        )
        assert "sales" in html.split('id="qa-queues"')[1].split("</table>")[0]
        assert f'href="/qa/evaluate/{unscored}">Score</a>' in html
        html = await (await client.get("/qa?agent=bob")).text()
        assert "1 evaluation, mean 0.0%" in html
        html = await (await client.get("/qa?from=2020-W01&to=2020-W02")).text()
        assert "0 evaluations" in html
        assert "2020-W01 – 2020-W02" in html
        for bad in (
            "from=2026-W60",
            "to=yesterday",
            "from=2026-W48&to=2026-W40",
            "agent=" + "x" * 65,
        ):
            assert (await client.get(f"/qa?{bad}")).status == 400, bad


# --- the agent's own scores -----------------------------------------------------------------


async def test_an_agent_sees_their_own_scores_and_never_anothers(
    qa_settings: config.Settings, clean_db: Engine
) -> None:
    form = sales_form(clean_db)
    ids = {}
    for agent, points, comment in (
        ("alice", (1, 4, 1), "Well done, alice."),
        ("bob", (0, 2, 0), "Secret remark about bob."),
    ):
        rec = add_recording(clean_db, agent=agent)
        with Session(clean_db) as s, s.begin():
            ids[agent] = store.evaluate(
                s,
                rec,
                form_id=form.id,
                evaluator="sam",
                answers=answers(form, *points),
                comment=comment,
            ).id
    async with http(qa_settings, clean_db) as (_, client):
        # Not logged in: the agent's login page.
        resp = await client.get("/agent/qa", allow_redirects=False)
        assert (resp.status, resp.headers["Location"]) == (303, "/agent/login")
        await agent_login(client, "alice")
        desk = await (await client.get("/agent")).text()
        assert 'href="/agent/qa"' in desk
        html = await (await client.get("/agent/qa")).text()
        assert "Well done, alice." in html
        assert "90.0%" in html
        assert "Found out what the caller needed: <b>4 / 5</b>" in html
        assert "bob" not in html
        assert "Secret remark" not in html
        resp = await client.get(f"/agent/qa/{ids['alice']}")
        assert resp.status == 200
        assert "Well done, alice." in await resp.text()
        # Bob's evaluation by its id: 404, the same as an id that does not exist.
        resp = await client.get(f"/agent/qa/{ids['bob']}")
        assert resp.status == 404
        assert "Secret remark" not in await resp.text()
        assert (await client.get("/agent/qa/987654")).status == 404
    async with http(qa_settings, clean_db) as (_, client):
        await agent_login(client, "bob")
        html = await (await client.get("/agent/qa")).text()
        assert "Secret remark about bob." in html
        assert "critical" in html
        assert "Well done, alice." not in html
        assert (await client.get(f"/agent/qa/{ids['alice']}")).status == 404
    # A supervisor's session is not an agent's.
    async with http(qa_settings, clean_db) as (_, client):
        await login(client)
        resp = await client.get("/agent/qa", allow_redirects=False)
        assert (resp.status, resp.headers["Location"]) == (303, "/agent/login")
