"""The agent's desktop and the CRM (issue 14): its data.

- :mod:`.customers`: customers and their numbers (E.164, one customer per number), the
  all-or-nothing CSV import, lookup by the caller's number, and the screen-pop history
  (past calls with their dispositions and notes, open cases, survey scores);
- :mod:`.dispositions`: disposition codes per queue and per campaign;
- :mod:`.documentation`: the disposition of each answered call, and the pure "not
  documented" rule with the store function that marks such calls;
- :mod:`.cases`: cases, their categories, status transitions and timeline;
- :mod:`.reports`: first-contact resolution, repeat callers, dispositions, undocumented
  calls, open cases by age, time to resolution.

Every store function works inside the caller's session and raises :class:`CrmError` (a
:class:`~callcenter.directory.DirectoryError`, so the CLI reports it as one ``Error:`` line
and exits 1) before anything is written.
"""

from __future__ import annotations

from callcenter.directory import DirectoryError


class CrmError(DirectoryError):
    """Bad input for a customer, a disposition or a case; one line for an operator."""


__all__ = ["CrmError"]
