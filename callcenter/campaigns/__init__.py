"""Outbound campaigns: the dialer capability (issue 13).

- :mod:`.numbers` (E.164 normalisation with ``phonenumbers``, the number's time zone) and
  :mod:`.windows` (``may_call``: calling windows in the contact's own time zone): pure;
- :mod:`.pacer` (how many calls to dial now, from the agents' state as the bridge sees it,
  the calls in flight, the estimates and the abandon ledger) and :mod:`.simulation` (a
  seeded campaign that drives a pacer through the same interface, for tests and ``make
  bench``): pure;
- :mod:`.store` (campaigns and do-not-call) and :mod:`.contacts` (all-or-nothing CSV
  imports): storage.

The dialer service (AMI Originate, AMD, the information message) builds on them.
"""
