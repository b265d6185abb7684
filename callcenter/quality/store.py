"""QA forms, their questions and the evaluations of calls, in PostgreSQL.

Every function works inside the caller's session (one transaction: the CLI's
``AppContext.session`` or a request's) and raises :class:`~callcenter.quality.QaError`
before anything is written.

Rules of forms:

- A form is a **draft** until enabled (``qa forms add`` makes a draft; ``qa forms enable``
  or an import makes it active), so a half-written form never scores calls.
- **One active form per queue**, and one for every other queue (queue NULL): enabling a form
  disables the one it replaces, in the same transaction. The form of a call is the active
  form of its queue, else the active form without a queue (:func:`form_for_queue`).
- **A form with evaluations cannot change**: its questions are neither added, removed nor
  edited (each evaluation's score and answers keep their meaning). To change it, copy it
  to a new version (``qa forms copy``, or import a file under a new name), edit the copy and
  enable it: the old version is disabled and keeps its evaluations. Adding a question locks
  the form's row (``FOR UPDATE``) and an evaluation share-locks it (``FOR SHARE``), so the
  two never interleave.
- One supervisor scores a call once per form (a second post, a double click, is
  :class:`~callcenter.quality.QaConflict`); other supervisors may score it too (calibration).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import asdict, dataclass, field
from typing import Any

import sqlalchemy as sa
from sqlalchemy.orm import Session

from callcenter import directory
from callcenter.db.models import Call
from callcenter.db.models_quality import QaAnswer, QaEvaluation, QaForm, QaQuestion, Recording
from callcenter.quality import QaConflict, QaError, QaNotFound
from callcenter.quality.scoring import (
    MAX_QUESTIONS,
    FormSpec,
    Question,
    QuestionSpec,
    check_comment,
    check_form_name,
    score,
)

# --- views ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FormView:
    id: int
    name: str
    queue: str | None
    active: bool
    created_at: dt.datetime
    questions: tuple[Question, ...] = ()
    evaluations: int = 0

    @property
    def status(self) -> str:
        if self.active:
            return "active"
        return "disabled" if self.evaluations else "draft"

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out["status"] = self.status
        return out


@dataclass(frozen=True, slots=True)
class AnswerView:
    position: int
    text: str
    kind: str
    points: int
    max_points: int
    weight: float
    critical: bool

    @property
    def shown(self) -> str:
        """The answer as a person reads it: yes / no, or 3 / 5."""
        if self.kind == "yes_no":
            return "yes" if self.points else "no"
        return f"{self.points} / {self.max_points}"


@dataclass(frozen=True, slots=True)
class EvaluationView:
    id: int
    form_id: int
    form: str
    recording_id: int | None
    node: str
    uniqueid: str
    agent: str
    queue: str | None
    evaluator: str
    score: float
    critical_failed: bool
    comment: str
    created_at: dt.datetime
    answers: tuple[AnswerView, ...] = field(default=())

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True, slots=True)
class RecordingFacts:
    """A recording and its call, as the scoring page shows them."""

    id: int
    node: str
    uniqueid: str
    queue: str | None
    campaign: str | None
    agent: str | None
    state: str
    reason: str
    started_at: dt.datetime
    duration_ms: int | None
    muted_ms: int
    caller_number: str = ""
    caller_name: str = ""
    direction: str = ""
    outcome: str | None = None
    wait_seconds: float | None = None
    talk_seconds: float | None = None


# --- forms ----------------------------------------------------------------------------------


def _question(q: QaQuestion) -> Question:
    return Question(q.id, q.position, q.text, q.kind, q.max_points, q.weight, q.critical)


def _count_evaluations(session: Session, form_id: int) -> int:
    return int(
        session.scalar(
            sa.select(sa.func.count())
            .select_from(QaEvaluation)
            .where(QaEvaluation.form_id == form_id)
        )
        or 0
    )


def _questions(session: Session, form_id: int) -> list[QaQuestion]:
    return list(
        session.scalars(
            sa.select(QaQuestion).where(QaQuestion.form_id == form_id).order_by(QaQuestion.position)
        )
    )


def form_view(session: Session, form: QaForm) -> FormView:
    return FormView(
        form.id,
        form.name,
        form.queue,
        form.active,
        form.created_at,
        tuple(_question(q) for q in _questions(session, form.id)),
        _count_evaluations(session, form.id),
    )


def get_form(session: Session, name: str, *, lock: bool = False) -> QaForm:
    """The form named ``name`` (or ``#ID``); :class:`QaError` when there is none."""
    text = name.strip()
    query = sa.select(QaForm)
    if text.startswith("#") and text[1:].isdigit():
        query = query.where(QaForm.id == int(text[1:]))
    else:
        query = query.where(QaForm.name == check_form_name(text))
    if lock:
        query = query.with_for_update()
    form = session.scalar(query)
    if form is None:
        raise QaNotFound(f"no QA form named {text!r} (callcenter qa forms list)")
    return form


def _check_queue(session: Session, queue: str | None) -> str | None:
    if queue is None:
        return None
    try:
        return directory.check_known_queue(session, queue.strip())
    except directory.DirectoryError as exc:
        raise QaError(str(exc)) from None


def add_form(session: Session, name: str, queue: str | None = None) -> QaForm:
    """A new draft form (no questions, not active) for ``queue`` (None: every queue without a
    form of its own)."""
    name = check_form_name(name)
    queue = _check_queue(session, queue)
    if session.scalar(sa.select(QaForm.id).where(QaForm.name == name)) is not None:
        raise QaError(f"a QA form named {name!r} exists already: give the new one another name")
    form = QaForm(name=name, queue=queue, active=False)
    session.add(form)
    session.flush()
    return form


def _frozen(session: Session, form: QaForm) -> None:
    n = _count_evaluations(session, form.id)
    if n:
        raise QaConflict(
            f"form {form.name!r} has {n} evaluation(s): its questions cannot change; copy it "
            f"to a new version (callcenter qa forms copy {form.name!r} NEW-NAME), edit and "
            "enable that"
        )


def add_question(session: Session, form_name: str, spec: QuestionSpec) -> QaQuestion:
    """Add ``spec`` at the end of the form; refused on a form with evaluations."""
    form = get_form(session, form_name, lock=True)
    _frozen(session, form)
    positions = [q.position for q in _questions(session, form.id)]
    if len(positions) >= MAX_QUESTIONS:
        raise QaError(f"a form has at most {MAX_QUESTIONS} questions")
    q = QaQuestion(
        form_id=form.id,
        position=max(positions, default=0) + 1,
        text=spec.text,
        kind=spec.kind,
        max_points=spec.max_points,
        weight=spec.weight,
        critical=spec.critical,
    )
    session.add(q)
    session.flush()
    return q


def remove_question(session: Session, form_name: str, position: int) -> QaQuestion:
    """Remove the question at ``position``; the later ones move up one. Refused on a form
    with evaluations, and for the last question of an active form."""
    form = get_form(session, form_name, lock=True)
    _frozen(session, form)
    questions = _questions(session, form.id)
    found = next((q for q in questions if q.position == position), None)
    if found is None:
        raise QaError(f"form {form.name!r} has no question {position}")
    if form.active and len(questions) == 1:
        raise QaError(f"{form.name!r} is active: it keeps at least one question (disable it first)")
    session.delete(found)
    session.flush()
    # Two steps: (form_id, position) is unique and checked row by row.
    later = [q for q in questions if q.position > position]
    for q in later:
        q.position = -q.position
    session.flush()
    for q in later:
        q.position = -q.position - 1
    session.flush()
    return found


def _replace_active(session: Session, form: QaForm) -> str | None:
    """Disable the other active form of ``form``'s queue; its name, if there was one."""
    others = list(
        session.scalars(
            sa.select(QaForm)
            .where(
                QaForm.active,
                QaForm.id != form.id,
                QaForm.queue.is_not_distinct_from(form.queue),
            )
            .with_for_update()
        )
    )
    for other in others:
        other.active = False
    return ", ".join(o.name for o in others) or None


def enable_form(session: Session, name: str) -> tuple[QaForm, str | None]:
    """Make the form its queue's active form; returns it and the name of the form it
    replaced (disabled), if any. A form without questions cannot be enabled."""
    form = get_form(session, name, lock=True)
    if not _questions(session, form.id):
        raise QaError(
            f"form {form.name!r} has no questions: add some first (callcenter qa questions add)"
        )
    replaced = _replace_active(session, form)
    form.active = True
    session.flush()
    return form, replaced


def disable_form(session: Session, name: str) -> QaForm:
    """No more evaluations with this form; its evaluations stay."""
    form = get_form(session, name, lock=True)
    form.active = False
    session.flush()
    return form


def remove_form(session: Session, name: str) -> QaForm:
    """Delete a form that was never used (with evaluations: disable it instead)."""
    form = get_form(session, name, lock=True)
    n = _count_evaluations(session, form.id)
    if n:
        raise QaConflict(
            f"form {form.name!r} has {n} evaluation(s): it stays (disable it: "
            f"callcenter qa forms disable {form.name!r})"
        )
    session.delete(form)
    session.flush()
    return form


_UNSET: Any = object()


def copy_form(session: Session, name: str, new_name: str, queue: str | None = _UNSET) -> QaForm:
    """A new draft with ``name``'s questions (its next version): edit it, then enable it."""
    source = get_form(session, name)
    copy = add_form(session, new_name, source.queue if queue is _UNSET else queue)
    for q in _questions(session, source.id):
        session.add(
            QaQuestion(
                form_id=copy.id,
                position=q.position,
                text=q.text,
                kind=q.kind,
                max_points=q.max_points,
                weight=q.weight,
                critical=q.critical,
            )
        )
    session.flush()
    return copy


def import_form(session: Session, spec: FormSpec) -> tuple[QaForm, bool, str | None]:
    """Create the form a file describes, or replace the questions of the form of that name
    when it has no evaluations (one with evaluations: :class:`QaConflict`, import it under
    a new name). Enabled when the file says ``active = true`` (the default). Returns the form,
    whether it was created, and the form it replaced as its queue's active form."""
    queue = _check_queue(session, spec.queue)
    form = session.scalar(sa.select(QaForm).where(QaForm.name == spec.name).with_for_update())
    created = form is None
    if form is None:
        form = QaForm(name=spec.name, queue=queue, active=False)
        session.add(form)
        session.flush()
    else:
        _frozen(session, form)
        for old in _questions(session, form.id):
            session.delete(old)
        session.flush()
        form.queue = queue
    for position, q in enumerate(spec.questions, 1):
        session.add(
            QaQuestion(
                form_id=form.id,
                position=position,
                text=q.text,
                kind=q.kind,
                max_points=q.max_points,
                weight=q.weight,
                critical=q.critical,
            )
        )
    session.flush()
    replaced = None
    if spec.active:
        replaced = _replace_active(session, form)
        form.active = True
    else:
        form.active = False
    session.flush()
    return form, created, replaced


def list_forms(session: Session) -> list[FormView]:
    forms = session.scalars(sa.select(QaForm).order_by(QaForm.queue.nulls_last(), QaForm.name))
    return [form_view(session, f) for f in forms]


def form_for_queue(session: Session, queue: str | None) -> QaForm | None:
    """The form that scores a call of ``queue``: the queue's active form, else the active
    form without a queue; None when neither exists. (Should two be active for one queue, by
    hand in SQL, the newest wins.)"""
    for where in ([QaForm.queue == queue] if queue else []) + [QaForm.queue.is_(None)]:
        form = session.scalar(
            sa.select(QaForm).where(QaForm.active, where).order_by(QaForm.id.desc()).limit(1)
        )
        if form is not None:
            return form
    return None


# --- recordings -----------------------------------------------------------------------------


def recording_facts(session: Session, recording_id: int) -> RecordingFacts:
    """The recording and what the call log says of its call; :class:`QaError` if unknown."""
    rec = session.get(Recording, recording_id)
    if rec is None:
        raise QaNotFound(f"no recording {recording_id}")
    call = session.scalar(
        sa.select(Call).where(Call.node == rec.node, Call.uniqueid == rec.uniqueid).limit(1)
    )
    facts = RecordingFacts(
        rec.id,
        rec.node,
        rec.uniqueid,
        rec.queue,
        rec.campaign,
        rec.agent,
        rec.state,
        rec.reason,
        rec.started_at,
        rec.duration_ms,
        rec.muted_ms,
    )
    if call is None:
        return facts
    return RecordingFacts(
        **{
            **asdict(facts),
            "caller_number": call.caller_number,
            "caller_name": call.caller_name,
            "direction": call.direction,
            "outcome": call.outcome,
            "wait_seconds": call.wait_seconds,
            "talk_seconds": call.talk_seconds,
        },
    )


def unscored_recordings(session: Session, limit: int = 20) -> list[RecordingFacts]:
    """The newest recordings of an agent's call that nobody has scored yet."""
    scored = sa.select(QaEvaluation.id).where(QaEvaluation.recording_id == Recording.id)
    ids = session.scalars(
        sa.select(Recording.id)
        .where(Recording.agent.is_not(None), Recording.state == "done", ~scored.exists())
        .order_by(Recording.started_at.desc(), Recording.id.desc())
        .limit(limit)
    )
    return [recording_facts(session, i) for i in ids]


# --- evaluations ----------------------------------------------------------------------------


def evaluate(
    session: Session,
    recording_id: int,
    *,
    form_id: int,
    evaluator: str,
    answers: dict[int, int],
    comment: str = "",
    now: dt.datetime | None = None,
) -> EvaluationView:
    """Score the recording's call with the form (which must be active) and save it: the agent,
    queue, node and uniqueid come from the recording row. Refused (before anything is
    written) when an answer is missing or out of range (the error names the question), the
    recording has no agent, or ``evaluator`` already scored it with this form."""
    comment = check_comment(comment)
    rec = session.scalar(sa.select(Recording).where(Recording.id == recording_id).with_for_update())
    if rec is None:
        raise QaNotFound(f"no recording {recording_id}")
    if not rec.agent:
        raise QaConflict(f"recording {recording_id} names no agent: there is nobody to score")
    form = session.scalar(sa.select(QaForm).where(QaForm.id == form_id).with_for_update(read=True))
    if form is None:
        raise QaError(f"no QA form #{form_id}")
    if not form.active:
        raise QaConflict(f"form {form.name!r} is no longer active: reload the page")
    questions = [_question(q) for q in _questions(session, form.id)]
    result = score(questions, answers)
    earlier = session.scalar(
        sa.select(QaEvaluation.id)
        .where(
            QaEvaluation.recording_id == rec.id,
            QaEvaluation.form_id == form.id,
            QaEvaluation.evaluator == evaluator,
        )
        .limit(1)
    )
    if earlier is not None:
        raise QaConflict(
            f"{evaluator} has already scored this call with form {form.name!r} "
            f"(evaluation {earlier})"
        )
    row = QaEvaluation(
        form_id=form.id,
        recording_id=rec.id,
        node=rec.node,
        uniqueid=rec.uniqueid,
        agent=rec.agent,
        queue=rec.queue,
        evaluator=evaluator,
        score=result.score,
        critical_failed=result.critical_failed,
        comment=comment,
    )
    if now is not None:
        row.created_at = now
    session.add(row)
    session.flush()
    session.add_all(
        QaAnswer(evaluation_id=row.id, question_id=q.id, points=answers[q.id]) for q in questions
    )
    session.flush()
    return get_evaluation(session, row.id)


def _answers(session: Session, evaluation_ids: list[int]) -> dict[int, list[AnswerView]]:
    out: dict[int, list[AnswerView]] = {i: [] for i in evaluation_ids}
    if not evaluation_ids:
        return out
    rows = session.execute(
        sa.select(QaAnswer.evaluation_id, QaAnswer.points, QaQuestion)
        .join(QaQuestion, QaQuestion.id == QaAnswer.question_id)
        .where(QaAnswer.evaluation_id.in_(evaluation_ids))
        .order_by(QaAnswer.evaluation_id, QaQuestion.position)
    )
    for evaluation_id, points, q in rows:
        out[evaluation_id].append(
            AnswerView(q.position, q.text, q.kind, points, q.max_points, q.weight, q.critical)
        )
    return out


def _views(session: Session, query: sa.Select[QaEvaluation, str]) -> list[EvaluationView]:
    rows = session.execute(query).all()
    answers = _answers(session, [e.id for e, _ in rows])
    return [
        EvaluationView(
            e.id,
            e.form_id,
            form_name,
            e.recording_id,
            e.node,
            e.uniqueid,
            e.agent,
            e.queue,
            e.evaluator,
            e.score,
            e.critical_failed,
            e.comment,
            e.created_at,
            tuple(answers[e.id]),
        )
        for e, form_name in rows
    ]


def _base() -> sa.Select[QaEvaluation, str]:
    return sa.select(QaEvaluation, QaForm.name).join(QaForm, QaForm.id == QaEvaluation.form_id)


def get_evaluation(
    session: Session, evaluation_id: int, *, agent: str | None = None
) -> EvaluationView:
    """One evaluation with its answers; with ``agent``, only if it is that agent's (else
    the same error as an unknown id: an agent learns nothing of others' evaluations)."""
    query = _base().where(QaEvaluation.id == evaluation_id)
    if agent is not None:
        query = query.where(QaEvaluation.agent == agent)
    found = _views(session, query)
    if not found:
        raise QaNotFound(f"no evaluation {evaluation_id}")
    return found[0]


def list_evaluations(
    session: Session,
    *,
    agent: str | None = None,
    queue: str | None = None,
    recording_id: int | None = None,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    limit: int = 100,
) -> list[EvaluationView]:
    """Evaluations, newest first, with their answers."""
    query = _base()
    if agent is not None:
        query = query.where(QaEvaluation.agent == agent)
    if queue is not None:
        query = query.where(QaEvaluation.queue == queue)
    if recording_id is not None:
        query = query.where(QaEvaluation.recording_id == recording_id)
    if since is not None:
        query = query.where(QaEvaluation.created_at >= since)
    if until is not None:
        query = query.where(QaEvaluation.created_at < until)
    query = query.order_by(QaEvaluation.created_at.desc(), QaEvaluation.id.desc()).limit(limit)
    return _views(session, query)
