"""Satisfaction: the survey answers (the inbound post-call survey and the dialer's outbound
survey campaigns) as CSAT and NPS per queue, agent, campaign and week.

- :mod:`.measures`: the definitions, pure (counts in, figures out; ISO weeks in the site's time
  zone; how a figure reads, "—" when nobody answered).
- :mod:`.store`: the counts from ``survey_answers``, grouped in SQL.

``callcenter report --satisfaction`` (:mod:`callcenter.cli.satisfaction_cmd`) and the
wallboard's day figures (:mod:`callcenter.wallboard.kpis`) use both. The answers are written
by the ``survey`` AGI script (:mod:`callcenter.agi.survey`). See docs/satisfaction.md.
"""
