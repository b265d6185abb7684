"""The agent's desktop (``/agent``): a sibling of the supervisors' board in the same web app,
sharing its sessions, CSRF and rate limits.

- :mod:`.pops` (pure): which agent a call rings, from the bridge's call messages: one
  screen-pop per agent and call.
- :mod:`.service`: the pop's content (the caller's history from the call log and the CRM, or
  the campaign contact's fields), pushed to the agent's open pages.
- :mod:`.views`: the routes: log in, the page, its event stream, and what an agent may do
  (ready / pause / log out over AMI, dispositions, cases, callbacks, click to call, preview).
"""
