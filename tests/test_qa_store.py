"""QA scorecards on the real PostgreSQL: forms and their versions, which form scores a call,
evaluations (complete or refused, nothing written), and the report per agent, queue and
ISO week."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter import directory
from callcenter.quality import QaConflict, QaError, QaNotFound, store
from callcenter.quality.report import build_qa_report
from callcenter.quality.scoring import check_question, parse_form_file
from tests.conftest import count
from tests.qa_support import ANY_FORM, SALES_FORM, add_form, add_recording, answers

TZ = ZoneInfo("America/New_York")


@pytest.fixture
def db(clean_db: Engine) -> Engine:
    with Session(clean_db) as s, s.begin():
        for queue in ("sales", "support"):
            directory.add_queue(s, queue)
        for name, ext in (("alice", "1001"), ("bob", "1002")):
            directory.add_agent(s, name=name, extension=ext, pin="2468")
    return clean_db


def session(engine: Engine) -> Session:
    return Session(engine, expire_on_commit=False)


# --- forms ----------------------------------------------------------------------------------


def test_a_form_is_a_draft_until_enabled_and_one_is_active_per_queue(db: Engine) -> None:
    with session(db) as s, s.begin():
        draft = store.add_form(s, "Sales v1", "sales")
        assert store.form_view(s, draft).status == "draft"
        assert store.form_for_queue(s, "sales") is None  # a draft scores nothing
        with pytest.raises(QaError, match="no questions: add some first"):
            store.enable_form(s, "Sales v1")
        store.add_question(s, "Sales v1", check_question("Greeted"))
        store.add_question(s, "Sales v1", check_question("Empathy", "scale", 5, 3))
        form, replaced = store.enable_form(s, "Sales v1")
        assert (form.active, replaced) == (True, None)
        with pytest.raises(QaError, match="exists already"):
            store.add_form(s, "Sales v1")
        with pytest.raises(QaError, match="no queue named 'nope'"):
            store.add_form(s, "Other", "nope")
        # A second form of the queue, enabled, replaces the first.
        store.copy_form(s, "Sales v1", "Sales v2")
        v2, replaced = store.enable_form(s, "Sales v2")
        assert replaced == "Sales v1"
        views = {v.name: v for v in store.list_forms(s)}
        assert (views["Sales v1"].status, views["Sales v2"].status) == ("draft", "active")
        assert [q.text for q in views["Sales v2"].questions] == ["Greeted", "Empathy"]
        assert store.get_form(s, f"#{v2.id}").name == "Sales v2"
        with pytest.raises(QaNotFound, match="no QA form named 'Sales v9'"):
            store.get_form(s, "Sales v9")


def test_the_form_of_a_call_is_its_queues_else_the_one_for_every_queue(db: Engine) -> None:
    sales = add_form(db)
    anyq = add_form(db, ANY_FORM)
    with session(db) as s, s.begin():
        found = store.form_for_queue(s, "sales")
        assert found is not None
        assert found.id == sales.id
        for queue in ("support", None):
            found = store.form_for_queue(s, queue)
            assert found is not None, queue
            assert found.id == anyq.id, queue
        store.disable_form(s, "Sales v1")
        found = store.form_for_queue(s, "sales")
        assert found is not None
        assert found.id == anyq.id
        store.disable_form(s, "Every queue")
        assert store.form_for_queue(s, "sales") is None


def test_questions_are_removed_and_renumbered_until_the_form_has_evaluations(db: Engine) -> None:
    form = add_form(db)
    with session(db) as s, s.begin():
        store.remove_question(s, "Sales v1", 1)
        view = store.form_view(s, store.get_form(s, "Sales v1"))
        assert [(q.position, q.text) for q in view.questions] == [
            (1, "Found out what the caller needed"),
            (2, "Stayed polite"),
        ]
        with pytest.raises(QaError, match="has no question 5"):
            store.remove_question(s, "Sales v1", 5)
        store.remove_question(s, "Sales v1", 2)
        with pytest.raises(QaError, match="keeps at least one question"):
            store.remove_question(s, "Sales v1", 1)
    assert form.id == view.id


def test_a_form_with_evaluations_cannot_change(db: Engine) -> None:
    form = add_form(db)
    rec = add_recording(db)
    with session(db) as s, s.begin():
        store.evaluate(s, rec, form_id=form.id, evaluator="sam", answers=answers(form, 1, 3, 1))
    with session(db) as s, s.begin():
        with pytest.raises(QaConflict, match=r"1 evaluation.*copy it to a new version"):
            store.add_question(s, "Sales v1", check_question("New one"))
        with pytest.raises(QaConflict, match="cannot change"):
            store.remove_question(s, "Sales v1", 1)
        with pytest.raises(QaConflict, match="cannot change"):
            store.import_form(s, parse_form_file(SALES_FORM))
        with pytest.raises(QaConflict, match="it stays"):
            store.remove_form(s, "Sales v1")
        # The way to change it: a new version; the old keeps its evaluations, disabled.
        store.copy_form(s, "Sales v1", "Sales v2")
        store.add_question(s, "Sales v2", check_question("Offered the survey"))
        _, replaced = store.enable_form(s, "Sales v2")
        assert replaced == "Sales v1"
        old = store.form_view(s, store.get_form(s, "Sales v1"))
        assert (old.status, old.evaluations, len(old.questions)) == ("disabled", 1, 3)
    # An unused draft may go.
    with session(db) as s, s.begin():
        store.add_form(s, "Scratch")
        store.remove_form(s, "Scratch")
    assert count(db, "qa_forms") == 2


def test_import_replaces_an_unused_form_of_the_same_name(db: Engine) -> None:
    add_form(db)
    changed = SALES_FORM.replace('queue = "sales"', 'queue = "support"').replace(
        "max = 5", "max = 10"
    )
    with session(db) as s, s.begin():
        form, created, replaced = store.import_form(s, parse_form_file(changed))
        view = store.form_view(s, form)
    assert (created, replaced, view.queue, view.active) == (False, None, "support", True)
    assert [q.max_points for q in view.questions] == [1, 10, 1]
    assert count(db, "qa_questions") == 3


# --- evaluations ----------------------------------------------------------------------------


def test_an_evaluation_takes_the_call_from_the_recording(db: Engine) -> None:
    form = add_form(db)
    rec = add_recording(db, agent="alice", queue="sales", node="pbx2")
    with session(db) as s, s.begin():
        e = store.evaluate(
            s,
            rec,
            form_id=form.id,
            evaluator="sam",
            answers=answers(form, 1, 4, 1),
            comment=" Good call.\r\nWatch the hold. ",
        )
    # (1 + 3 * 4/5 + 2) / 6 = 5.4 / 6
    assert (e.score, e.critical_failed) == (90.0, False)
    assert (e.agent, e.queue, e.node, e.recording_id, e.evaluator) == (
        "alice",
        "sales",
        "pbx2",
        rec,
        "sam",
    )
    assert e.uniqueid.startswith("1795000000.")
    assert e.comment == "Good call.\nWatch the hold."
    assert [(a.position, a.shown) for a in e.answers] == [(1, "yes"), (2, "4 / 5"), (3, "yes")]
    with session(db) as s, s.begin():
        failed = store.evaluate(
            s, rec, form_id=form.id, evaluator="kim", answers=answers(form, 1, 5, 0)
        )
    assert (failed.score, failed.critical_failed) == (0.0, True)
    assert count(db, "qa_answers") == 6


def test_a_refused_evaluation_writes_nothing(db: Engine) -> None:
    form = add_form(db)
    rec = add_recording(db)
    nobody = add_recording(db, agent=None)
    cases: list[tuple[int, dict[int, int], type[Exception], str]] = [
        (rec, answers(form, 1, 3, 1) | {form.questions[1].id: 9}, QaError, "question 2 .*0-5"),
        (
            rec,
            {form.questions[0].id: 1, form.questions[2].id: 1},
            QaError,
            r"question 2 \('Found out what the caller needed'\) is not answered",
        ),
        (nobody, answers(form, 1, 3, 1), QaConflict, "names no agent"),
        (999999, answers(form, 1, 3, 1), QaNotFound, "no recording 999999"),
    ]
    for recording, given, error, message in cases:
        with session(db) as s, s.begin(), pytest.raises(error, match=message):
            store.evaluate(s, recording, form_id=form.id, evaluator="sam", answers=given)
    with session(db) as s, s.begin(), pytest.raises(QaError, match="at most 4000"):
        store.evaluate(
            s,
            rec,
            form_id=form.id,
            evaluator="sam",
            answers=answers(form, 1, 3, 1),
            comment="x" * 4001,
        )
    # The same supervisor twice (a double click): refused; a second supervisor: fine.
    with session(db) as s, s.begin():
        first = store.evaluate(
            s, rec, form_id=form.id, evaluator="sam", answers=answers(form, 1, 3, 1)
        )
    with session(db) as s, s.begin(), pytest.raises(QaConflict, match=f"evaluation {first.id}"):
        store.evaluate(s, rec, form_id=form.id, evaluator="sam", answers=answers(form, 1, 3, 1))
    with session(db) as s, s.begin():
        store.disable_form(s, "Sales v1")
    with session(db) as s, s.begin(), pytest.raises(QaConflict, match="no longer active"):
        store.evaluate(s, rec, form_id=form.id, evaluator="kim", answers=answers(form, 1, 3, 1))
    assert (count(db, "qa_evaluations"), count(db, "qa_answers")) == (1, 3)


def test_an_agent_reads_only_their_own_evaluation(db: Engine) -> None:
    form = add_form(db)
    mine = add_recording(db, agent="alice")
    with session(db) as s, s.begin():
        e = store.evaluate(
            s, mine, form_id=form.id, evaluator="sam", answers=answers(form, 1, 3, 1)
        )
        assert store.get_evaluation(s, e.id, agent="alice").id == e.id
        with pytest.raises(QaNotFound, match=f"no evaluation {e.id}"):
            store.get_evaluation(s, e.id, agent="bob")
        assert store.list_evaluations(s, agent="bob") == []
        assert [x.id for x in store.list_evaluations(s, agent="alice")] == [e.id]


def test_a_question_added_while_a_call_is_scored_waits_and_is_then_refused(db: Engine) -> None:
    """The evaluation share-locks the form, adding a question locks it for update: adding
    waits for the evaluation's commit, then sees it and refuses."""
    form = add_form(db)
    rec = add_recording(db)
    scoring = session(db)
    scoring.begin()
    store.evaluate(scoring, rec, form_id=form.id, evaluator="sam", answers=answers(form, 1, 3, 1))
    with session(db) as s, s.begin():
        s.execute(sa.text("SET LOCAL lock_timeout = '300ms'"))
        with pytest.raises(sa.exc.OperationalError, match="lock timeout"):
            store.add_question(s, "Sales v1", check_question("Late"))
        s.rollback()
    scoring.commit()
    scoring.close()
    with session(db) as s, s.begin(), pytest.raises(QaConflict, match="1 evaluation"):
        store.add_question(s, "Sales v1", check_question("Late"))


def test_unscored_recordings_are_the_finished_ones_of_an_agent_nobody_scored(db: Engine) -> None:
    form = add_form(db)
    old = add_recording(db, started_at=dt.datetime.now(dt.UTC) - dt.timedelta(hours=2))
    new = add_recording(db)
    add_recording(db, agent=None)
    add_recording(db, state="recording")
    with session(db) as s, s.begin():
        assert [r.id for r in store.unscored_recordings(s)] == [new, old]
        store.evaluate(s, new, form_id=form.id, evaluator="sam", answers=answers(form, 1, 3, 1))
        assert [r.id for r in store.unscored_recordings(s)] == [old]
        facts = store.recording_facts(s, old)
    assert (facts.agent, facts.queue, facts.duration_ms, facts.caller_number) == (
        "alice",
        "sales",
        95000,
        "",
    )


# --- the report -----------------------------------------------------------------------------


def local(year: int, month: int, day: int, hour: int = 0, minute: int = 0) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, tzinfo=TZ)


def test_the_report_per_agent_queue_and_week(db: Engine) -> None:
    sales = add_form(db)
    anyq = add_form(db, ANY_FORM)
    rows = [
        # agent, queue, when scored (site time), points
        ("alice", "sales", local(2026, 11, 16, 10), (1, 5, 1)),  # 100, W47
        ("alice", "sales", local(2026, 11, 22, 23, 30), (1, 2, 1)),  # 70, W47 (Sunday night)
        ("alice", "support", local(2026, 11, 23, 9), (3,)),  # 75, W48
        ("bob", "sales", local(2026, 11, 24, 9), (1, 5, 0)),  # 0 critical, W48
        ("bob", "support", local(2026, 11, 25, 9), (2,)),  # 50, W48
        ("bob", "support", local(2026, 11, 2, 9), (4,)),  # before the weeks asked
    ]
    for agent, queue, when, points in rows:
        rec = add_recording(db, agent=agent, queue=queue)
        form = sales if queue == "sales" else anyq
        with session(db) as s, s.begin():
            store.evaluate(
                s, rec, form_id=form.id, evaluator="sam", answers=answers(form, *points), now=when
            )
    since, until = local(2026, 11, 16), local(2026, 11, 30)
    with session(db) as s:
        rep = build_qa_report(s, since, until, tz=str(TZ))
        only_bob = build_qa_report(s, since, until, tz=str(TZ), agent="bob")
        only_sales = build_qa_report(s, since, until, tz=str(TZ), queue="sales")
    t = rep.total
    assert (t.evaluations, t.mean, t.lowest, t.highest, t.critical_failed) == (5, 59.0, 0, 100, 1)

    def table(rows: list) -> dict[str, tuple]:  # type: ignore[type-arg]
        return {
            (r.agent or r.queue or r.week): (
                r.figures.evaluations,
                r.figures.mean,
                r.figures.critical_failed,
            )
            for r in rows
        }

    assert table(rep.agents) == {"alice": (3, 81.67, 0), "bob": (2, 25.0, 1)}
    assert table(rep.queues) == {"sales": (3, 56.67, 1), "support": (2, 62.5, 0)}
    assert table(rep.weeks) == {"2026-W47": (2, 85.0, 0), "2026-W48": (3, 41.67, 1)}
    assert [(r.agent, r.week, r.figures.evaluations) for r in rep.agent_weeks] == [
        ("alice", "2026-W47", 2),
        ("alice", "2026-W48", 1),
        ("bob", "2026-W48", 2),
    ]
    assert table(only_bob.agents) == {"bob": (2, 25.0, 1)}
    assert table(only_sales.queues) == {"sales": (3, 56.67, 1)}
    assert rep.as_dict()["agents"][0] == {
        "agent": "alice",
        "evaluations": 3,
        "mean": 81.67,
        "lowest": 70.0,
        "highest": 100.0,
        "critical_failed": 0,
    }
    with session(db) as s:
        empty = build_qa_report(s, local(2020, 1, 6), local(2020, 1, 13), tz=str(TZ))
    assert (empty.total.evaluations, empty.total.mean, empty.agents) == (0, None, [])
