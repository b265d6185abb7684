"""The supervisors' wallboard: ``callcenter wallboard`` (and part of ``callcenter run``).

How the parts fit (one module per concern, wired in :mod:`.app`):

- :mod:`.live` consumes the bridge's MQTT topics into typed records (:mod:`.model`) and keeps
  the live state of queues, agents and nodes; :mod:`.hub` turns each batch of changes into one
  message and fans it out to every connected browser (server-sent events, :mod:`.stream`).
- :mod:`.kpis` computes the day's figures with :mod:`callcenter.reports` (the same SQL as
  ``callcenter report``), at most once a second, in the background; the history page's figures
  are cached per day. No browser request makes the server query the call log.
- :mod:`.roster` reads the configured queues and agents, so the board shows every one
  (logged-out agents dimmed) under their display and full names; :mod:`.board` marks the
  figures of a node that is down unknown.
- :mod:`.auth` (signed session cookies, CSRF, login rate limits) and :mod:`.accounts`
  (supervisors and TV tokens in PostgreSQL); :mod:`.control` pauses, unpauses, logs out and
  logs in agents through AMI.
- :mod:`.views` (HTML, Jinja2), :mod:`.api` (JSON + :mod:`.openapi`), :mod:`.metrics`
  (Prometheus).
"""
