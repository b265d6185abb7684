"""``callcenter qa``: forms from the command line and from a file, their versions, bad input
as one ``Error:`` line (exit 1, nothing written), evaluations and the report."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from callcenter import directory
from callcenter.cli.qa_cmd import form_toml
from callcenter.quality import store
from callcenter.quality.scoring import Question, parse_form_file
from tests.conftest import Cli, count
from tests.qa_support import SALES_FORM, add_form, add_recording, answers


def setup_directory(engine: Engine) -> None:
    with Session(engine) as s, s.begin():
        directory.add_queue(s, "sales")
        directory.add_agent(s, name="alice", extension="1001", pin="2468")


def error_line(output: str) -> str:
    lines = [line for line in output.splitlines() if line.strip()]
    assert len(lines) == 1, output
    assert lines[0].startswith("Error: "), output
    return lines[0]


def test_a_form_is_built_question_by_question_and_enabled(run_cli: Cli, clean_db: Engine) -> None:
    setup_directory(clean_db)
    out = run_cli.ok("qa", "forms", "add", "Sales v1", "--queue", "sales").output
    assert "draft" in out
    assert "qa forms enable 'Sales v1'" in out
    run_cli.ok("qa", "questions", "add", "Sales v1", "--text", "Greeted the caller")
    out = run_cli.ok(
        "qa",
        "questions",
        "add",
        "Sales v1",
        "--text",
        "Solved the need",
        "--kind",
        "scale",
        "--max",
        "5",
        "--weight",
        "3",
    ).output
    assert "question 2 added" in out
    assert "scale 0-5, weight 3" in out
    run_cli.ok("qa", "questions", "add", "Sales v1", "--text", "Polite", "--critical")
    out = run_cli.ok("qa", "forms", "enable", "Sales v1").output
    assert "'Sales v1' (#1, active, queue sales) enabled" in out
    shown = json.loads(run_cli.ok("qa", "forms", "show", "Sales v1", "--json").output)
    assert shown["status"] == "active"
    assert [
        (q["position"], q["kind"], q["max_points"], q["weight"], q["critical"])
        for q in shown["questions"]
    ] == [
        (1, "yes_no", 1, 1.0, False),
        (2, "scale", 5, 3.0, False),
        (3, "yes_no", 1, 1.0, True),
    ]
    table = run_cli.ok("qa", "forms", "show", "#1").output
    assert "Solved the need" in table
    assert "60%" in table
    listed = run_cli.ok("qa", "forms", "list").output
    assert "Sales v1" in listed
    assert "active" in listed
    out = run_cli.ok("qa", "questions", "remove", "Sales v1", "1").output
    assert "question 1 removed" in out
    out = run_cli.ok("qa", "forms", "disable", "Sales v1").output
    assert "disabled" in out


def test_bad_input_is_one_error_line_and_nothing_is_written(
    run_cli: Cli, clean_db: Engine, tmp_path: Path
) -> None:
    setup_directory(clean_db)
    run_cli.ok("qa", "forms", "add", "Sales v1", "--queue", "sales")
    bad_toml = tmp_path / "bad.toml"
    bad_toml.write_text('name = "x"\n[[question]]\ntext = "a"\nkind = "stars"\n')
    cases = [
        (("qa", "forms", "add", "Other", "--queue", "nope"), "no queue named 'nope'"),
        (("qa", "forms", "add", "Sales v1"), "exists already"),
        (("qa", "forms", "add", " "), "1 to 64 characters"),
        (("qa", "forms", "enable", "Sales v1"), "no questions"),
        (("qa", "forms", "show", "Nope"), "no QA form named 'Nope'"),
        (("qa", "questions", "add", "Sales v1", "--text", "x", "--kind", "scale"), "needs its top"),
        (("qa", "questions", "add", "Sales v1", "--text", "x", "--max", "3"), "worth 1 point"),
        (("qa", "questions", "add", "Sales v1", "--text", "x", "--weight", "0"), "above 0"),
        (("qa", "questions", "add", "Sales v1", "--text", "  "), "needs its text"),
        (("qa", "questions", "remove", "Sales v1", "4"), "has no question 4"),
        (("qa", "forms", "import", str(tmp_path / "missing.toml")), "cannot read"),
        (("qa", "forms", "import", str(bad_toml)), "question 1: kind 'stars'"),
        (("qa", "report", "--from", "2026-W60"), "not an ISO week"),
        (("qa", "report", "--from", "2026-W48", "--to", "2026-W40"), "comes before"),
        (("qa", "report", "--agent", "zed"), "no agent named 'zed'"),
        (("qa", "evaluations", "show", "77"), "no evaluation 77"),
    ]
    for args, message in cases:
        result = run_cli(*args)
        assert result.exit_code == 1, (args, result.output)
        assert message in error_line(result.output), (args, result.output)
    assert (count(clean_db, "qa_forms"), count(clean_db, "qa_questions")) == (1, 0)


def test_import_export_and_a_new_version(run_cli: Cli, clean_db: Engine, tmp_path: Path) -> None:
    setup_directory(clean_db)
    path = tmp_path / "sales.toml"
    path.write_text(SALES_FORM, encoding="utf-8")
    out = run_cli.ok("qa", "forms", "import", str(path)).output
    assert "'Sales v1' (#1, active, queue sales) created with 3 questions" in out
    # Export gives back the same form (the way to edit one: export, edit, import).
    exported = run_cli.ok("qa", "forms", "export", "Sales v1").output
    again = parse_form_file(exported)
    assert again == parse_form_file(SALES_FORM)
    # Once a call is scored with it, the form stays as it is: a new version replaces it.
    with Session(clean_db) as s:
        form = store.form_view(s, store.get_form(s, "Sales v1"))
    rec = add_recording(clean_db)
    with Session(clean_db) as s, s.begin():
        store.evaluate(s, rec, form_id=form.id, evaluator="sam", answers=answers(form, 1, 3, 1))
    result = run_cli("qa", "forms", "import", str(path))
    assert result.exit_code == 1
    assert "has 1 evaluation(s): its questions cannot change" in error_line(result.output)
    result = run_cli("qa", "questions", "add", "Sales v1", "--text", "More")
    assert "cannot change" in error_line(result.output)
    v2 = tmp_path / "sales-v2.toml"
    v2.write_text(
        exported.replace("Sales v1", "Sales v2") + '\n[[question]]\ntext = "Offered the survey"\n'
    )
    out = run_cli.ok("qa", "forms", "import", str(v2)).output
    assert "created with 4 questions; it replaces 'Sales v1' (now disabled)" in out
    listed = {f["name"]: f for f in json.loads(run_cli.ok("qa", "forms", "list", "--json").output)}
    assert (listed["Sales v1"]["status"], listed["Sales v1"]["evaluations"]) == ("disabled", 1)
    assert listed["Sales v2"]["status"] == "active"
    out = run_cli.ok("qa", "forms", "copy", "Sales v2", "Sales v3", "--any-queue").output
    assert "(#3, draft, queue any) created from 'Sales v2' with 4 questions" in out
    result = run_cli("qa", "forms", "remove", "Sales v1")
    assert "it stays" in error_line(result.output)
    run_cli.ok("qa", "forms", "remove", "Sales v3")
    # --draft keeps an imported form from replacing the active one.
    v4 = tmp_path / "v4.toml"
    v4.write_text(SALES_FORM.replace("Sales v1", "Sales v4"))
    out = run_cli.ok("qa", "forms", "import", str(v4), "--draft").output
    assert "(#4, draft, queue sales) created" in out


def test_form_toml_escapes_what_toml_needs() -> None:
    view = store.FormView(
        1,
        'Say "hi" \\ bye',
        None,
        False,
        dt.datetime.now(dt.UTC),
        (Question(1, 1, 'Said "thanks" — José\\', "scale", 7, 0.5, True),),
    )
    spec = parse_form_file(form_toml(view))
    assert (spec.name, spec.queue, spec.active) == ('Say "hi" \\ bye', None, False)
    (q,) = spec.questions
    assert (q.text, q.kind, q.max_points, q.weight, q.critical) == (
        'Said "thanks" — José\\',
        "scale",
        7,
        0.5,
        True,
    )


def test_evaluations_and_the_report(run_cli: Cli, clean_db: Engine) -> None:
    setup_directory(clean_db)
    form = add_form(clean_db)
    now = dt.datetime.now(dt.UTC)
    for points, when in (((1, 5, 1), now), ((1, 0, 0), now - dt.timedelta(days=1))):
        rec = add_recording(clean_db)
        with Session(clean_db) as s, s.begin():
            store.evaluate(
                s, rec, form_id=form.id, evaluator="sam", answers=answers(form, *points), now=when
            )
    listed = json.loads(run_cli.ok("qa", "evaluations", "list", "--json").output)
    assert [(e["agent"], e["score"], e["critical_failed"]) for e in listed] == [
        ("alice", 100.0, False),
        ("alice", 0.0, True),
    ]
    shown = run_cli.ok("qa", "evaluations", "show", str(listed[1]["id"])).output
    assert "critical failed" in shown
    assert "Stayed polite" in shown
    assert "no" in shown
    rep = json.loads(run_cli.ok("qa", "report", "--weeks", "2", "--json").output)
    assert rep["total"] == {
        "evaluations": 2,
        "mean": 50.0,
        "lowest": 0.0,
        "highest": 100.0,
        "critical_failed": 1,
    }
    assert rep["agents"] == [
        {
            "agent": "alice",
            "evaluations": 2,
            "mean": 50.0,
            "lowest": 0.0,
            "highest": 100.0,
            "critical_failed": 1,
        }
    ]
    assert [q["queue"] for q in rep["queues"]] == ["sales"]
    assert sum(w["evaluations"] for w in rep["weeks"]) == 2
    text = run_cli.ok("qa", "report", "--agent", "alice", "--queue", "sales").output
    assert "2 evaluations, mean 50.0%, 1 critical fail" in text
    for title in ("per agent", "per queue", "per week", "per agent and week"):
        assert title in text
    empty = json.loads(
        run_cli.ok("qa", "report", "--from", "2020-W01", "--to", "2020-W02", "--json").output
    )
    assert empty["total"]["evaluations"] == 0
    assert empty["agents"] == []
