"""``callcenter qa``: QA scorecards (forms, questions), the evaluations of calls, and the
report of scores per agent, queue and ISO week (:mod:`callcenter.quality`)."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import click

from callcenter import directory, timespec
from callcenter.cli.context import (
    app,
    handle_errors,
    json_option,
    print_json,
    print_record,
    print_table,
)
from callcenter.db.models_quality import QA_KINDS
from callcenter.quality import QaError, store
from callcenter.quality.report import Figures, Row, build_qa_report
from callcenter.quality.scoring import (
    check_question,
    parse_form_file,
    parse_week,
    recent_weeks,
    week_of,
    week_span,
)

#: A form's file is small; a bigger one is a mistake (the wrong file), not a form.
MAX_FILE_BYTES = 256 * 1024


@click.group("qa")
def qa() -> None:
    """QA scorecards: forms of weighted questions per queue, scored calls, the report."""


@qa.group("forms")
def forms() -> None:
    """Scorecards: a form per queue (or for every queue), yes/no and 0..N questions."""


@qa.group("questions")
def questions() -> None:
    """The questions of a draft form (a form with evaluations cannot change)."""


@qa.group("evaluations")
def evaluations() -> None:
    """Scored calls (supervisors score them in the web app at /qa)."""


# --- forms ----------------------------------------------------------------------------------


def _form_text(view: store.FormView) -> str:
    return f"form {view.name!r} (#{view.id}, {view.status}, queue {view.queue or 'any'})"


@forms.command("add")
@click.argument("name")
@click.option(
    "--queue",
    default=None,
    help="The queue whose calls it scores (default: every queue without a form of its own).",
)
@click.pass_context
@handle_errors
def forms_add(ctx: click.Context, name: str, queue: str | None) -> None:
    """Create NAME as a draft: add its questions, then enable it."""
    with app(ctx).session() as s:
        form = store.add_form(s, name, queue)
        view = store.form_view(s, form)
    click.echo(
        f"{_form_text(view)} created; add questions (callcenter qa questions add "
        f"{view.name!r} --text ...), then: callcenter qa forms enable {view.name!r}"
    )


@forms.command("import")
@click.argument("file", type=click.Path(path_type=Path, dir_okay=False))
@click.option("--draft", is_flag=True, help="Keep it a draft even if the file says active.")
@json_option
@click.pass_context
@handle_errors
def forms_import(ctx: click.Context, file: Path, draft: bool, as_json: bool) -> None:
    """Create (or, while it has no evaluations, replace) the form FILE describes (TOML: see
    docs/qa.md). It becomes its queue's active form unless the file says active = false or
    --draft is given; the form it replaces is disabled."""
    try:
        if file.stat().st_size > MAX_FILE_BYTES:
            raise QaError(f"{file}: larger than {MAX_FILE_BYTES // 1024} KiB: not a form's file")
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise QaError(f"cannot read {file}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise QaError(f"{file} is not UTF-8 text") from None
    spec = parse_form_file(text, str(file))
    if draft:
        spec = type(spec)(spec.name, spec.queue, spec.questions, False)
    with app(ctx).session() as s:
        form, created, replaced = store.import_form(s, spec)
        view = store.form_view(s, form)
    if as_json:
        print_json({**view.as_dict(), "created": created, "replaced": replaced})
        return
    click.echo(
        f"{_form_text(view)} {'created' if created else 'replaced'} with "
        f"{len(view.questions)} questions"
        + (f"; it replaces {replaced!r} (now disabled)" if replaced else "")
    )


@forms.command("export")
@click.argument("name")
@click.pass_context
@handle_errors
def forms_export(ctx: click.Context, name: str) -> None:
    """Print NAME as a TOML file for `qa forms import` (edit it and import it under a new
    name: the next version)."""
    with app(ctx).session() as s:
        view = store.form_view(s, store.get_form(s, name))
    click.echo(form_toml(view), nl=False)


def form_toml(view: store.FormView) -> str:
    """The TOML of a form (:func:`~callcenter.quality.scoring.parse_form_file` reads it back).
    JSON's string escapes are valid in TOML's basic strings."""
    lines = [f"name = {json.dumps(view.name, ensure_ascii=False)}"]
    if view.queue:
        lines.append(f"queue = {json.dumps(view.queue, ensure_ascii=False)}")
    lines.append(f"active = {'true' if view.active else 'false'}")
    for q in view.questions:
        lines += [
            "",
            "[[question]]",
            f"text = {json.dumps(q.text, ensure_ascii=False)}",
            f'kind = "{q.kind}"',
        ]
        if q.kind == "scale":
            lines.append(f"max = {q.max_points}")
        lines.append(f"weight = {q.weight!r}")
        if q.critical:
            lines.append("critical = true")
    return "\n".join(lines) + "\n"


@forms.command("list")
@json_option
@click.pass_context
@handle_errors
def forms_list(ctx: click.Context, as_json: bool) -> None:
    """Every form: its queue, status (active, draft, disabled), questions and evaluations."""
    with app(ctx).session() as s:
        views = store.list_forms(s)
    if as_json:
        print_json([v.as_dict() for v in views])
        return
    print_table(
        f"{len(views)} QA forms",
        ["id", "name", "queue", "status", "questions", "evaluations", "created"],
        [
            [
                v.id,
                v.name,
                v.queue or "(any)",
                v.status,
                len(v.questions),
                v.evaluations,
                v.created_at,
            ]
            for v in views
        ],
    )


@forms.command("show")
@click.argument("name")
@json_option
@click.pass_context
@handle_errors
def forms_show(ctx: click.Context, name: str, as_json: bool) -> None:
    """A form and its questions (NAME, or #ID)."""
    with app(ctx).session() as s:
        view = store.form_view(s, store.get_form(s, name))
    if as_json:
        print_json(view.as_dict())
        return
    print_record(
        f"QA form {view.name}",
        {
            "id": view.id,
            "queue": view.queue or "(any queue without its own form)",
            "status": view.status,
            "evaluations": view.evaluations,
            "created": view.created_at,
        },
    )
    total = sum(q.weight for q in view.questions) or 1.0
    print_table(
        "questions",
        ["#", "text", "kind", "points", "weight", "share", "critical"],
        [
            [
                q.position,
                q.text,
                q.kind,
                f"0-{q.max_points}",
                f"{q.weight:g}",
                f"{q.weight / total:.0%}",
                q.critical,
            ]
            for q in view.questions
        ],
    )


@forms.command("enable")
@click.argument("name")
@click.pass_context
@handle_errors
def forms_enable(ctx: click.Context, name: str) -> None:
    """Make NAME its queue's active form (the queue's previous one is disabled)."""
    with app(ctx).session() as s:
        form, replaced = store.enable_form(s, name)
        view = store.form_view(s, form)
    click.echo(f"{_form_text(view)} enabled" + (f"; {replaced!r} disabled" if replaced else ""))


@forms.command("disable")
@click.argument("name")
@click.pass_context
@handle_errors
def forms_disable(ctx: click.Context, name: str) -> None:
    """No more calls are scored with NAME; its evaluations stay."""
    with app(ctx).session() as s:
        view = store.form_view(s, store.disable_form(s, name))
    click.echo(f"{_form_text(view)} disabled")


@forms.command("copy")
@click.argument("name")
@click.argument("new_name")
@click.option("--queue", default=None, help="Another queue for the copy.")
@click.option("--any-queue", is_flag=True, help="The copy scores every queue without a form.")
@click.pass_context
@handle_errors
def forms_copy(
    ctx: click.Context, name: str, new_name: str, queue: str | None, any_queue: bool
) -> None:
    """Copy NAME's questions into the draft NEW_NAME: the way to change a form that has
    evaluations (edit the copy, then enable it)."""
    if queue and any_queue:
        raise QaError("give --queue or --any-queue, not both")
    with app(ctx).session() as s:
        if any_queue:
            copy = store.copy_form(s, name, new_name, None)
        elif queue:
            copy = store.copy_form(s, name, new_name, queue)
        else:
            copy = store.copy_form(s, name, new_name)
        view = store.form_view(s, copy)
    click.echo(
        f"{_form_text(view)} created from {name!r} with {len(view.questions)} "
        f"questions; enable it when ready: callcenter qa forms enable {view.name!r}"
    )


@forms.command("remove")
@click.argument("name")
@click.pass_context
@handle_errors
def forms_remove(ctx: click.Context, name: str) -> None:
    """Delete a form no call was scored with (one with evaluations: disable it)."""
    with app(ctx).session() as s:
        form = store.remove_form(s, name)
    click.echo(f"form {form.name!r} removed")


# --- questions ------------------------------------------------------------------------------


@questions.command("add")
@click.argument("form")
@click.option("--text", required=True, help="The question, as the supervisor reads it.")
@click.option("--kind", type=click.Choice(QA_KINDS), default="yes_no", show_default=True)
@click.option(
    "--max",
    "max_points",
    type=int,
    default=None,
    help="A scale question's top: answers 0..MAX (1-100).",
)
@click.option(
    "--weight",
    type=float,
    default=1.0,
    show_default=True,
    help="Its weight against the other questions'.",
)
@click.option("--critical", is_flag=True, help="Answered no (or 0), the call scores 0.")
@click.pass_context
@handle_errors
def questions_add(
    ctx: click.Context,
    form: str,
    text: str,
    kind: str,
    max_points: int | None,
    weight: float,
    critical: bool,
) -> None:
    """Add a question at the end of FORM."""
    spec = check_question(text, kind, max_points, weight, critical)
    with app(ctx).session() as s:
        q = store.add_question(s, form, spec)
        position = q.position
    click.echo(
        f"question {position} added to {form!r}: {spec.text} ({spec.kind} 0-"
        f"{spec.max_points}, weight {spec.weight:g}{', critical' if critical else ''})"
    )


@questions.command("remove")
@click.argument("form")
@click.argument("position", type=click.IntRange(min=1))
@click.pass_context
@handle_errors
def questions_remove(ctx: click.Context, form: str, position: int) -> None:
    """Remove question POSITION (as `qa forms show` numbers it) from FORM."""
    with app(ctx).session() as s:
        q = store.remove_question(s, form, position)
        text = q.text
    click.echo(f"question {position} removed from {form!r}: {text}")


# --- evaluations ----------------------------------------------------------------------------


def _local(when: dt.datetime, tz: Any) -> str:
    return when.astimezone(tz).strftime("%Y-%m-%d %H:%M")


@evaluations.command("list")
@click.option("--agent", default=None)
@click.option("--queue", default=None)
@click.option("--since", default=None, help="From (default: 30 days ago).")
@click.option("--until", default=None, help="Until (default: now).")
@click.option("--limit", type=click.IntRange(1, 10000), default=50, show_default=True)
@json_option
@click.pass_context
@handle_errors
def evaluations_list(
    ctx: click.Context,
    agent: str | None,
    queue: str | None,
    since: str | None,
    until: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Scored calls, newest first."""
    a = app(ctx)
    tz = a.settings.site.tz
    start, end = timespec.interval(since or "-30d", until, tz)
    with a.session() as s:
        views = store.list_evaluations(
            s, agent=agent, queue=queue, since=start, until=end, limit=limit
        )
    if as_json:
        print_json([v.as_dict() for v in views])
        return
    print_table(
        f"{len(views)} evaluations",
        ["id", "when", "agent", "queue", "form", "score", "critical", "by", "recording"],
        [
            [
                v.id,
                _local(v.created_at, tz),
                v.agent,
                v.queue,
                v.form,
                v.score,
                v.critical_failed,
                v.evaluator,
                v.recording_id,
            ]
            for v in views
        ],
    )


@evaluations.command("show")
@click.argument("evaluation_id", type=click.IntRange(min=1))
@json_option
@click.pass_context
@handle_errors
def evaluations_show(ctx: click.Context, evaluation_id: int, as_json: bool) -> None:
    """One evaluation and its answers."""
    a = app(ctx)
    with a.session() as s:
        v = store.get_evaluation(s, evaluation_id)
    if as_json:
        print_json(v.as_dict())
        return
    print_record(
        f"evaluation {v.id}",
        {
            "score": f"{v.score:.1f}%",
            "critical failed": v.critical_failed,
            "agent": v.agent,
            "queue": v.queue,
            "form": v.form,
            "by": v.evaluator,
            "when": _local(v.created_at, a.settings.site.tz),
            "call": f"{v.node} {v.uniqueid}",
            "recording": v.recording_id,
            "comment": v.comment or "-",
        },
    )
    print_table(
        "answers",
        ["#", "question", "answer", "weight", "critical"],
        [[x.position, x.text, x.shown, f"{x.weight:g}", x.critical] for x in v.answers],
    )


# --- the report -----------------------------------------------------------------------------


def _figures(f: Figures) -> list[Any]:
    return [f.evaluations, f.mean, f.lowest, f.highest, f.critical_failed]


FIGURE_COLUMNS = ["evaluations", "mean %", "lowest", "highest", "critical fails"]


@qa.command("report")
@click.option("--from", "first", default=None, help="First ISO week, e.g. 2026-W45.")
@click.option("--to", "last", default=None, help="Last ISO week (default: this week).")
@click.option(
    "--weeks",
    type=click.IntRange(1, 520),
    default=4,
    show_default=True,
    help="Without --from: this many weeks up to --to.",
)
@click.option("--agent", default=None, help="Only this agent.")
@click.option("--queue", default=None, help="Only this queue.")
@json_option
@click.pass_context
@handle_errors
def qa_report(
    ctx: click.Context,
    first: str | None,
    last: str | None,
    weeks: int,
    agent: str | None,
    queue: str | None,
    as_json: bool,
) -> None:
    """QA scores per agent, per queue, per ISO week and per agent and week: evaluations,
    mean score, lowest, highest, critical failures (weeks of the site's time zone, by the
    day each call was scored)."""
    a = app(ctx)
    tz = a.settings.site.tz
    to_day = parse_week(last) if last else dt.datetime.now(tz).date()
    from_day = parse_week(first) if first else recent_weeks(to_day, weeks)[0]
    since, until = week_span(from_day, to_day, tz)
    with a.session() as s:
        if queue:
            queue = directory.check_known_queue(s, queue)
        if agent:
            agent = directory.check_known_agent(s, agent)
        rep = build_qa_report(
            s, since, until, tz=a.settings.site.timezone, agent=agent, queue=queue
        )
    if as_json:
        print_json(rep.as_dict())
        return
    t = rep.total
    click.echo(
        f"QA {week_of(from_day)} - {week_of(to_day)} ({a.settings.site.timezone})"
        + (f", agent {agent}" if agent else "")
        + (f", queue {queue}" if queue else "")
        + f": {t.evaluations} evaluation{'' if t.evaluations == 1 else 's'}"
        + (f", mean {t.mean:.1f}%" if t.mean is not None else "")
        + f", {t.critical_failed} critical fail{'' if t.critical_failed == 1 else 's'}"
    )

    def table(title: str, key: str, rows: list[Row]) -> None:
        print_table(
            title,
            [key, *FIGURE_COLUMNS],
            [[getattr(r, key) or "(none)", *_figures(r.figures)] for r in rows],
        )

    table("per agent", "agent", rep.agents)
    table("per queue", "queue", rep.queues)
    table("per week", "week", rep.weeks)
    print_table(
        "per agent and week",
        ["agent", "week", *FIGURE_COLUMNS],
        [[r.agent, r.week, *_figures(r.figures)] for r in rep.agent_weeks],
    )
