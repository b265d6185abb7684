"""``callcenter report --satisfaction``: CSAT and NPS of the survey answers per queue, agent,
campaign or week (definitions in :mod:`callcenter.satisfaction.measures`)."""

from __future__ import annotations

import datetime as dt

import click

from callcenter import directory, names
from callcenter.campaigns.store import get_campaign
from callcenter.cli.context import AppContext, print_json, print_table
from callcenter.satisfaction import store
from callcenter.satisfaction.measures import Dimension, Satisfaction, fmt_csat, fmt_nps

#: What a row without a group stands for, by dimension.
NO_GROUP = {"queue": "(no queue)", "agent": "(no agent)", "campaign": "(inbound)"}


def _cells(s: Satisfaction) -> list[object]:
    return [
        fmt_csat(s.csat.score), s.csat.answers, fmt_nps(s.nps.score), s.nps.answers,
        s.nps.promoters, s.nps.passives, s.nps.detractors,
    ]  # fmt: skip


def report_satisfaction(
    obj: AppContext,
    since: dt.datetime,
    until: dt.datetime,
    *,
    by: Dimension,
    queue: str | None,
    agent: str | None,
    campaign: str | None,
    as_json: bool,
) -> None:
    tz = obj.settings.site.tz
    with obj.session() as s:
        # A name nobody knows is a typo, not an empty report (as the call figures say); a
        # name only the survey answers know is not one.
        if queue and not store.answered_for(s, "queue", queue):
            queue = directory.check_known_queue(s, queue)
        if agent:
            agent = names.normalize(agent)
            if not store.answered_for(s, "agent", agent):
                agent = directory.check_known_agent(s, agent)
        if campaign and not store.answered_for(s, "campaign", campaign):
            campaign = get_campaign(s, campaign).name
        rep = store.build_report(
            s, since, until, tz, by, queue=queue, agent=agent, campaign=campaign
        )
    if as_json:
        print_json(rep.as_dict())
        return
    filters = ", ".join(f"{k} {v}" for k, v in rep.filters.items() if v is not None)
    click.echo(
        f"{since.astimezone(tz):%Y-%m-%d %H:%M} - {until.astimezone(tz):%Y-%m-%d %H:%M} "
        f"({obj.settings.site.timezone}){'; ' + filters if filters else ''}; survey answers "
        "given in the interval. CSAT: share of CSAT answers (1-5) that are 4 or 5. NPS: % "
        "promoters (9-10) - % detractors (0-6) of NPS answers (0-10). n: answers; — none."
    )
    print_table(
        f"satisfaction by {by}",
        [by, "CSAT", "n", "NPS", "n", "promoters", "passives", "detractors"],
        [[NO_GROUP.get(by, "-") if key is None else key, *_cells(g)] for key, g in rep.groups]
        + [["all", *_cells(rep.total)]],
    )
