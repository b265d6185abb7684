"""Live monitoring (issue 15): from the board, a supervisor listens to an agent's call,
whispers to the agent (only the agent hears) or barges in (both parties hear).

How: an AMI ``Originate`` rings the supervisor's own phone (``users.phone``, a PJSIP
endpoint) and, once it answers, runs ``ChanSpy`` on the agent's channel of that call, quiet,
with ``w`` (whisper) or ``B`` (barge) or neither (listen). Every attempt, allowed or not, is a
``monitor_sessions`` row and a log line.

- :mod:`.rules`: pure: who may monitor, what makes a target, the Originate's fields per mode,
  the rule of a supervisor's phone;
- :mod:`.store`: ``monitor_sessions`` (record, list) and the lookups of one attempt (the
  supervisor's phone, the agent's channel from the call log), inside the caller's session;
- :mod:`.service`: the shell: the agent's live state from the wallboard's
  :class:`~callcenter.wallboard.live.LiveState` (the one source of who is on which call on
  which node), the lookups, the Originate through the wallboard's AMI link of that node, the
  row and the log line;
- :mod:`.web`: ``POST /agents/{node}/{agent}/monitor`` with ``mode``.

``docs/monitoring.md`` is the operator's description.
"""

from __future__ import annotations

from callcenter.directory import DirectoryError


class MonitorError(DirectoryError):
    """Bad input for monitoring (a supervisor's phone that is no endpoint name): one line for
    an operator; the CLI reports it as ``Error:`` and exits 1."""


__all__ = ["MonitorError"]
