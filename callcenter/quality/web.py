"""The web pages of QA scorecards: the supervisors' (``/qa``) and the agent's own
(``/agent/qa``).

Who may see what:

- ``/qa``, ``/qa/evaluate/{recording}``, ``/qa/evaluations/{id}``: a supervisor's or an
  administrator's session (:func:`require_supervisor`). A TV screen's session and API tokens
  get 403; an agent's session is sent to its own desktop (as every board page does). The
  scoring form posts with the session's CSRF token from our own origin.
- ``/agent/qa``, ``/agent/qa/{id}``: the agent's session, and only the agent's own
  evaluations: another agent's id answers 404, as an unknown one does.

The database is read and written in a worker thread (``asyncio.to_thread``): the event loop
keeps serving the board's streams meanwhile.
"""

from __future__ import annotations

import datetime as dt
from typing import Any
from zoneinfo import ZoneInfo

import aiohttp_jinja2
from aiohttp import web
from sqlalchemy.orm import Session

from callcenter import names
from callcenter.db.models_quality import QaForm
from callcenter.quality import QaConflict, QaError, QaNotFound, store
from callcenter.quality.report import QaReport, build_qa_report
from callcenter.quality.scoring import (
    COMMENT_MAX,
    parse_week,
    read_answers,
    recent_weeks,
    week_of,
    week_span,
)
from callcenter.wallboard.auth import Visitor
from callcenter.wallboard.context import (
    in_session,
    parts,
    require,
    require_actor,
    supervisor_only,
)
from callcenter.wallboard.desk.views import require_agent
from callcenter.wallboard.fmt import duration
from callcenter.wallboard.views import page, redirect

#: The report's weeks when the page is opened without a choice: this one and three before.
DEFAULT_WEEKS = 4
FILTER_MAX = 64


# --- who is asking --------------------------------------------------------------------------


def _supervisor_only(visitor: Visitor) -> Visitor:
    return supervisor_only(visitor, "QA scorecards")


def require_supervisor(request: web.Request) -> Visitor:
    return supervisor_only(require(request), "QA scorecards")


def _local(when: dt.datetime | None, tz: ZoneInfo) -> str:
    return "-" if when is None else when.astimezone(tz).strftime("%Y-%m-%d %H:%M")


def _evaluation(e: store.EvaluationView, tz: ZoneInfo) -> dict[str, Any]:
    return {
        **e.as_dict(),
        "when": _local(e.created_at, tz),
        "week": week_of(e.created_at.astimezone(tz).date()),
        "answers": [
            {
                "position": a.position,
                "text": a.text,
                "shown": a.shown,
                "points": a.points,
                "max_points": a.max_points,
                "weight": a.weight,
                "critical": a.critical,
                "failed": a.critical and a.points == 0,
            }
            for a in e.answers
        ],
    }


def _facts(f: store.RecordingFacts, tz: ZoneInfo) -> dict[str, Any]:
    return {
        "id": f.id,
        "node": f.node,
        "uniqueid": f.uniqueid,
        "queue": f.queue,
        "campaign": f.campaign,
        "agent": f.agent,
        "state": f.state,
        "reason": f.reason,
        "started": _local(f.started_at, tz),
        "duration": duration(None if f.duration_ms is None else f.duration_ms / 1000),
        "muted": duration(f.muted_ms / 1000) if f.muted_ms else "",
        "caller": " ".join(x for x in (f.caller_number, f.caller_name) if x) or "-",
        "direction": f.direction or "-",
        "outcome": f.outcome or "-",
        "wait": duration(f.wait_seconds),
        "talk": duration(f.talk_seconds),
        "playable": f.state in ("done", "recording"),
    }


def _form(form: store.FormView | None) -> dict[str, Any] | None:
    if form is None:
        return None
    return {
        "id": form.id,
        "name": form.name,
        "queue": form.queue,
        "questions": [
            {
                "id": q.id,
                "position": q.position,
                "text": q.text,
                "kind": q.kind,
                "choices": q.choices(),
                "weight": q.weight,
                "critical": q.critical,
            }
            for q in form.questions
        ],
    }


def _base(request: web.Request, visitor: Visitor) -> dict[str, Any]:
    return {
        "visitor": visitor.principal,
        "csrf": visitor.csrf or "",
        "nodes": parts(request).board.node_rows(),
    }


def _id(request: web.Request, key: str) -> int:
    raw = request.match_info[key]
    if len(raw) > 18:
        raise web.HTTPNotFound(text=f"no such {key}")
    return int(raw)


# --- scoring a call -------------------------------------------------------------------------


def _scoring_context(
    s: Session, recording_id: int, form_id: int | None
) -> tuple[store.RecordingFacts, store.FormView | None, list[store.EvaluationView]]:
    facts = store.recording_facts(s, recording_id)
    form = None
    if form_id is not None:
        row = s.get(QaForm, form_id)
        form = store.form_view(s, row) if row is not None and row.active else None
    if form is None:
        row = store.form_for_queue(s, facts.queue)
        form = store.form_view(s, row) if row is not None else None
    done = store.list_evaluations(s, recording_id=recording_id, limit=50)
    return facts, form, done


async def _scoring_page(
    request: web.Request,
    visitor: Visitor,
    recording_id: int,
    *,
    form_id: int | None = None,
    entered: dict[str, str] | None = None,
    message: str = "",
    status: int = 200,
) -> web.Response:
    tz = parts(request).settings.site.tz
    try:
        facts, form, done = await in_session(
            request, lambda s: _scoring_context(s, recording_id, form_id)
        )
    except QaNotFound as exc:
        raise web.HTTPNotFound(text=str(exc)) from None
    if form is None and not message:
        message = (
            f"No active QA form for queue {facts.queue or '(none)'} nor for every queue: "
            "an administrator adds one (callcenter qa forms import FILE)."
        )
        status = 409
    if not facts.agent and not message:
        message = "This recording names no agent: there is nobody to score."
        status = 409
    entered = entered or {}
    return page(
        request,
        "qa_evaluate.html.j2",
        {
            **_base(request, visitor),
            "rec": _facts(facts, tz),
            "form": _form(form),
            "done": [_evaluation(e, tz) for e in done],
            "entered": entered,
            "comment": entered.get("comment", ""),
            "comment_max": COMMENT_MAX,
            "message": message,
            "can_score": form is not None and bool(facts.agent),
        },
        status,
    )


async def evaluate_form(request: web.Request) -> web.Response:
    """The call's facts, its player and the form to score it."""
    visitor = require_supervisor(request)
    return await _scoring_page(request, visitor, _id(request, "recording"))


async def evaluate(request: web.Request) -> web.Response:
    """Save the evaluation and show it (303); an incomplete or wrong form comes back with
    what was entered and the error naming the question (400); a form since disabled or a
    call already scored by this supervisor: 409."""
    form = {k: str(v) for k, v in (await request.post()).items()}
    visitor = _supervisor_only(require_actor(request, form.get("csrf", "")))
    recording_id = _id(request, "recording")
    raw_form = form.get("form_id", "")
    if not raw_form.isdigit() or len(raw_form) > 9:
        raise web.HTTPBadRequest(text="the form's id is missing: reload the page")
    form_id = int(raw_form)
    evaluator = visitor.principal.name

    def save(s: Session) -> store.EvaluationView:
        row = s.get(QaForm, form_id)
        if row is None:
            raise QaConflict(f"no QA form #{form_id}: reload the page")
        questions = store.form_view(s, row).questions
        return store.evaluate(
            s,
            recording_id,
            form_id=form_id,
            evaluator=evaluator,
            answers=read_answers(questions, form),
            comment=form.get("comment", ""),
        )

    try:
        saved = await in_session(request, save, write=True)
    except QaConflict as exc:
        return await _scoring_page(
            request,
            visitor,
            recording_id,
            form_id=form_id,
            entered=form,
            message=str(exc),
            status=409,
        )
    except QaNotFound as exc:
        raise web.HTTPNotFound(text=str(exc)) from None
    except QaError as exc:
        return await _scoring_page(
            request,
            visitor,
            recording_id,
            form_id=form_id,
            entered=form,
            message=str(exc),
            status=400,
        )
    return redirect(f"/qa/evaluations/{saved.id}")


async def evaluation(request: web.Request) -> web.Response:
    """One evaluation: the score, each answer, the comment, who scored it and when."""
    visitor = require_supervisor(request)
    evaluation_id = _id(request, "evaluation")
    tz = parts(request).settings.site.tz
    try:
        e = await in_session(request, lambda s: store.get_evaluation(s, evaluation_id))
    except QaError as exc:
        raise web.HTTPNotFound(text=str(exc)) from None
    return page(
        request,
        "qa_evaluation.html.j2",
        {
            **_base(request, visitor),
            "e": _evaluation(e, tz),
        },
    )


# --- the report -----------------------------------------------------------------------------


def _filter(request: web.Request, key: str) -> str | None:
    value = request.query.get(key, "").strip()
    if len(value) > FILTER_MAX:
        raise web.HTTPBadRequest(text=f"{key}: at most {FILTER_MAX} characters")
    return names.normalize(value) if value else None


def _matrix(rep: QaReport) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for r in rep.agent_weeks:
        out.setdefault(r.agent or "", {})[r.week or ""] = r.figures
    return out


async def report(request: web.Request) -> web.Response:
    """Scores per agent, queue and ISO week over the weeks asked (``from``, ``to``:
    ``2026-W45``; default the last four), optionally of one ``agent`` or ``queue``; the
    evaluations of those weeks, and the newest recordings nobody has scored."""
    visitor = require_supervisor(request)
    p = parts(request)
    tz = p.settings.site.tz
    today = dt.datetime.now(tz).date()
    try:
        last = parse_week(request.query["to"]) if request.query.get("to") else today
        first = (
            parse_week(request.query["from"])
            if request.query.get("from")
            else recent_weeks(last, DEFAULT_WEEKS)[0]
        )
        since, until = week_span(first, last, tz)
    except QaError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    agent, queue = _filter(request, "agent"), _filter(request, "queue")

    def read(s: Session) -> tuple[QaReport, list[store.EvaluationView], list[store.RecordingFacts]]:
        rep = build_qa_report(
            s, since, until, tz=p.settings.site.timezone, agent=agent, queue=queue
        )
        recent = store.list_evaluations(
            s, agent=agent, queue=queue, since=since, until=until, limit=50
        )
        return rep, recent, store.unscored_recordings(s, 20)

    rep, recent, unscored = await in_session(request, read)
    return page(
        request,
        "qa.html.j2",
        {
            **_base(request, visitor),
            "rep": rep,
            "first": week_of(first),
            "last": week_of(last),
            "agent": agent or "",
            "queue": queue or "",
            "matrix": _matrix(rep),
            "week_names": [r.week for r in rep.weeks],
            "recent": [_evaluation(e, tz) for e in recent],
            "unscored": [_facts(f, tz) for f in unscored],
        },
    )


# --- the agent's own scores -----------------------------------------------------------------


def _desk_page(request: web.Request, template: str, context: dict[str, Any]) -> web.Response:
    response = aiohttp_jinja2.render_template(template, request, context)
    response.headers["Cache-Control"] = "no-store"
    return response


async def my_scores(request: web.Request) -> web.Response:
    """The agent's own evaluations, newest first, each with its answers."""
    visitor = require_agent(request)
    p = parts(request)
    tz = p.settings.site.tz
    name = visitor.principal.name
    mine = await in_session(request, lambda s: store.list_evaluations(s, agent=name, limit=200))
    scores = [e.score for e in mine]
    return _desk_page(
        request,
        "desk_qa.html.j2",
        {
            "site": p.settings.site.name,
            "agent": name,
            "csrf": visitor.csrf,
            "evaluations": [_evaluation(e, tz) for e in mine],
            "mean": round(sum(scores) / len(scores), 1) if scores else None,
            "critical": sum(1 for e in mine if e.critical_failed),
        },
    )


async def my_score(request: web.Request) -> web.Response:
    """One of the agent's own evaluations; anyone else's is 404, as an unknown id is."""
    visitor = require_agent(request)
    p = parts(request)
    name = visitor.principal.name
    evaluation_id = _id(request, "evaluation")
    try:
        e = await in_session(request, lambda s: store.get_evaluation(s, evaluation_id, agent=name))
    except QaError as exc:
        raise web.HTTPNotFound(text=str(exc)) from None
    return _desk_page(
        request,
        "desk_qa_evaluation.html.j2",
        {
            "site": p.settings.site.name,
            "agent": name,
            "csrf": visitor.csrf,
            "e": _evaluation(e, p.settings.site.tz),
        },
    )


def routes() -> list[web.RouteDef]:
    return [
        web.get("/qa", report),
        web.get(r"/qa/evaluate/{recording:\d+}", evaluate_form),
        web.post(r"/qa/evaluate/{recording:\d+}", evaluate),
        web.get(r"/qa/evaluations/{evaluation:\d+}", evaluation),
        web.get("/agent/qa", my_scores),
        web.get(r"/agent/qa/{evaluation:\d+}", my_score),
    ]
