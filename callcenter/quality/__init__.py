"""QA scorecards (issue 15): supervisors score recorded calls against a form of weighted
questions; agents see their own scores; reports per agent, queue and ISO week.

- :mod:`.scoring`: pure: the score of a set of answers, the form's and questions' rules,
  ISO weeks, the TOML file of a form;
- :mod:`.store`: forms, questions and evaluations in PostgreSQL (inside the caller's session);
- :mod:`.report`: the figures per agent, queue and week, in SQL;
- :mod:`.web`: the supervisors' pages (``/qa``) and the agent's (``/agent/qa``).

Every function raises :class:`QaError` (a :class:`~callcenter.directory.DirectoryError`, so
the CLI reports it as one ``Error:`` line and exits 1, and the web pages answer 400 or 409
with it) before anything is written.
"""

from __future__ import annotations

from callcenter.directory import DirectoryError


class QaError(DirectoryError):
    """Bad input for a QA form, a question or an evaluation; one line for an operator."""


class QaConflict(QaError):
    """The request is well formed but the state forbids it (a form with evaluations cannot
    change, a call already scored by the same supervisor): HTTP 409 on the web."""


class QaNotFound(QaError):
    """No such recording, form or evaluation (or not one the asker may see): HTTP 404."""


__all__ = ["QaConflict", "QaError", "QaNotFound"]
