"""Outbound campaigns: the dialer capability (issue 13).

- :mod:`.numbers` (E.164 normalisation with ``phonenumbers``, the number's time zone) and
  :mod:`.windows` (``may_call``: calling windows in the contact's own time zone): pure;
- :mod:`.store` (campaigns and do-not-call) and :mod:`.contacts` (all-or-nothing CSV
  imports): storage.

The pacer (how many calls to dial now) and the dialer service (AMI Originate, AMD, the
information message) build on them.
"""
