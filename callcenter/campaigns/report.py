"""``callcenter campaigns report``: what a campaign did, and the proof for a regulator.

Figures come from the attempt records (``campaign_attempts``), counted as the pacer's ledger
counts them (:mod:`callcenter.campaigns.scheduling`), over two periods by the site-local
``day`` of each attempt: the rolling 30 days ending ``today`` and the campaign's life; and
the worst rolling 30-day window of the life (every window ending on a day from the first
attempt to ``today``), since the law caps the abandon rate over each 30-day period.

- **attempts**: every record, skips and calls in progress included; **dialled**: ended and
  not skipped; **in progress**: no outcome yet (ringing, talking, on an agent's screen).
- **live answers**: outcomes connected, abandoned, hung_up and delivered (agentless) of
  calls known to be a person (``human_at`` set: not a hang-up during AMD);
  **contact rate** = live answers / dialled; **abandon rate** = abandoned / live answers;
  the **abandon budget** is ``cap * live - abandoned``, abandons still allowed (negative:
  over the cap).
- **answer to agent**: ``agent_at - human_at`` of the calls an agent took (p50, p95 by
  linear interpolation, as PostgreSQL's ``percentile_cont``; max; how many over 2 s).
- **talk minutes per agent hour**: the talk of connected attempts (the bridge's ``calls``
  row of each: talk only, wrap-up is not in it) over the logged-in hours of the agents who
  are members of the campaign's queue now (their state spans other than logged_out,
  clipped to the period, as :mod:`callcenter.reports` reads them); None for agentless
  campaigns and when nobody was logged in.

Ratios are 0..1, or None when their denominator is 0.
"""

from __future__ import annotations

import csv
import datetime as dt
import zoneinfo
from typing import Any, TextIO

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from callcenter.campaigns.scheduling import LIVE_OUTCOMES, ledger_days, site_day
from callcenter.db.models import Agent, Queue, QueueMember
from callcenter.db.models_campaigns import Campaign, CampaignAttempt, Contact
from callcenter.reports import AGENT_STATES_SQL

WINDOW_DAYS = 30
#: The 2-second rule: a live person is connected to an agent within this.
ANSWER_TO_AGENT_LIMIT = 2.0
EXPORT_BATCH = 2000

_LIVE_SQL = ", ".join(f"'{o}'" for o in LIVE_OUTCOMES)
_FIGURES_SQL = f"""
SELECT count(*) AS attempts,
       count(*) FILTER (WHERE outcome IS NOT NULL AND outcome <> 'skipped') AS dialled,
       count(*) FILTER (WHERE outcome IS NULL) AS in_progress,
       count(*) FILTER (WHERE outcome = 'skipped') AS skipped,
       count(*) FILTER (WHERE outcome IN ({_LIVE_SQL}) AND human_at IS NOT NULL) AS live,
       count(*) FILTER (WHERE outcome = 'connected') AS connected,
       count(*) FILTER (WHERE outcome = 'abandoned') AS abandoned,
       count(*) FILTER (WHERE outcome = 'hung_up') AS hung_up,
       count(*) FILTER (WHERE outcome = 'delivered') AS delivered,
       count(a2a) AS a2a_count,
       percentile_cont(0.5) WITHIN GROUP (ORDER BY a2a) AS a2a_p50,
       percentile_cont(0.95) WITHIN GROUP (ORDER BY a2a) AS a2a_p95,
       max(a2a) AS a2a_max,
       count(*) FILTER (WHERE a2a > :limit) AS a2a_over
  FROM (SELECT outcome, human_at, extract(epoch FROM agent_at - human_at) AS a2a
          FROM campaign_attempts
         WHERE campaign_id = :campaign_id AND day >= :since AND day <= :until) a
"""
_OUTCOMES_SQL = """
SELECT coalesce(outcome, 'in_progress') AS outcome, count(*) AS n
  FROM campaign_attempts
 WHERE campaign_id = :campaign_id AND day >= :since AND day <= :until
 GROUP BY 1
 ORDER BY 2 DESC, 1
"""
_TALK_SQL = """
SELECT coalesce(sum(c.talk_seconds), 0)
  FROM campaign_attempts a
  JOIN calls c ON c.linkedid = a.channel_id AND c.uniqueid = a.channel_id
 WHERE a.campaign_id = :campaign_id AND a.day >= :since AND a.day <= :until
   AND a.outcome = 'connected'
"""


def _ratio(num: float, den: float) -> float | None:
    return num / den if den else None


def _midnight(day: dt.date, zone: zoneinfo.ZoneInfo) -> dt.datetime:
    return dt.datetime.combine(day, dt.time(0), tzinfo=zone)


def _logged_in_seconds(
    session: Session, agents: set[str], since: dt.datetime, until: dt.datetime, now: dt.datetime
) -> float:
    if not agents or until <= since:
        return 0.0
    params = {"since": since, "until": until, "now": now, "agent": None}
    return sum(
        max(0.0, float(r["seconds"] or 0))
        for r in session.execute(AGENT_STATES_SQL, params).mappings()
        if r["agent"] in agents and r["state"] != "logged_out"
    )


def _queue_agents(session: Session, queue: str | None) -> set[str]:
    if queue is None:
        return set()
    query = (
        select(Agent.name)
        .join(QueueMember, QueueMember.agent_id == Agent.id)
        .join(Queue, Queue.id == QueueMember.queue_id)
        .where(Queue.name == queue)
    )
    return set(session.scalars(query))


def _figures(
    session: Session,
    campaign: Campaign,
    since: dt.date,
    until: dt.date,
    *,
    zone: zoneinfo.ZoneInfo,
    agents: set[str],
    now: dt.datetime,
    clock_since: dt.datetime,
) -> dict[str, Any]:
    params = {"campaign_id": campaign.id, "since": since, "until": until}
    r = session.execute(text(_FIGURES_SQL), {**params, "limit": ANSWER_TO_AGENT_LIMIT}).mappings()
    row = r.one()
    live, abandoned, dialled = int(row["live"]), int(row["abandoned"]), int(row["dialled"])
    outcomes = {o: int(n) for o, n in session.execute(text(_OUTCOMES_SQL), params)}
    figures: dict[str, Any] = {
        "since": since,
        "until": until,
        "attempts": int(row["attempts"]),
        "dialled": dialled,
        "in_progress": int(row["in_progress"]),
        "skipped": int(row["skipped"]),
        "live_answers": live,
        "connected": int(row["connected"]),
        "abandoned": abandoned,
        "hung_up": int(row["hung_up"]),
        "delivered": int(row["delivered"]),
        "contact_rate": _ratio(live, dialled),
        "abandon_rate": _ratio(abandoned, live),
        "abandon_budget": round(campaign.abandon_cap * live - abandoned, 3),
        "answer_to_agent": {
            "count": int(row["a2a_count"]),
            "p50": _opt(row["a2a_p50"]),
            "p95": _opt(row["a2a_p95"]),
            "max": _opt(row["a2a_max"]),
            "over_2s": int(row["a2a_over"]),
        },
        "outcomes": outcomes,
    }
    if campaign.mode == "agentless":
        figures.update(talk_seconds=None, agent_hours=None, talk_minutes_per_agent_hour=None)
        return figures
    talk = float(session.scalar(text(_TALK_SQL), params) or 0.0)
    start = max(_midnight(since, zone), clock_since)
    end = min(_midnight(until + dt.timedelta(days=1), zone), now)
    logged_in = _logged_in_seconds(session, agents, start, end, now)
    figures.update(
        talk_seconds=talk,
        agent_hours=round(logged_in / 3600, 4),
        talk_minutes_per_agent_hour=_ratio(talk / 60, logged_in / 3600),
    )
    return figures


def _opt(value: Any) -> float | None:
    return None if value is None else float(value)


def worst_window(
    days: list[tuple[dt.date, int, int]],
    until: dt.date,
    window: int = WINDOW_DAYS,
    life_since: dt.date | None = None,
) -> dict[str, Any] | None:
    """The rolling ``window``-day period with the highest abandon rate among those ending on
    each day from the first of ``days`` (day, live, abandoned; in order) to ``until``; the
    earliest on a tie. None when no window had a live answer. A window's ``since`` is not
    before ``life_since`` (the life's first day): nothing was dialled before it. Pure."""
    if not days:
        return None
    by_day = {d: (live, ab) for d, live, ab in days}
    worst: dict[str, Any] | None = None
    live_sum = ab_sum = 0
    day = days[0][0]
    while day <= until:
        live, ab = by_day.get(day, (0, 0))
        live_sum, ab_sum = live_sum + live, ab_sum + ab
        gone = by_day.get(day - dt.timedelta(days=window))
        if gone is not None:
            live_sum, ab_sum = live_sum - gone[0], ab_sum - gone[1]
        if live_sum:
            rate = ab_sum / live_sum
            if worst is None or rate > worst["abandon_rate"]:
                since = day - dt.timedelta(days=window - 1)
                worst = {
                    "since": max(since, life_since) if life_since else since,
                    "until": day,
                    "live_answers": live_sum,
                    "abandoned": ab_sum,
                    "abandon_rate": rate,
                }
        day += dt.timedelta(days=1)
    return worst


def campaign_report(
    session: Session,
    campaign: Campaign,
    *,
    today: dt.date,
    site_tz: str,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """The campaign's figures (module docstring) as of ``today`` (site-local); ``now``
    (default: the clock) ends agent state spans still open."""
    now = now or dt.datetime.now(dt.UTC)
    zone = zoneinfo.ZoneInfo(site_tz)
    agents = _queue_agents(session, campaign.queue)
    first = session.execute(
        select(func.min(CampaignAttempt.day), func.min(CampaignAttempt.created_at)).where(
            CampaignAttempt.campaign_id == campaign.id
        )
    ).one()
    first_day: dt.date = first[0] or today
    starts = [t for t in (campaign.started_at, first[1]) if t is not None]
    life_since = min(starts) if starts else _midnight(today, zone)
    life_first_day = min(first_day, site_day(life_since, site_tz))
    common: dict[str, Any] = {"zone": zone, "agents": agents, "now": now}
    # The 30 days ending today, from the life's first day when it is younger.
    window_since = max(today - dt.timedelta(days=WINDOW_DAYS - 1), life_first_day)
    rolling = _figures(session, campaign, window_since, today, clock_since=life_since, **common)
    life = _figures(session, campaign, life_first_day, today, clock_since=life_since, **common)
    statuses = {
        s: int(n)
        for s, n in session.execute(
            select(Contact.status, func.count())
            .where(Contact.campaign_id == campaign.id)
            .group_by(Contact.status)
        )
    }
    return {
        "campaign": campaign.name,
        "mode": campaign.mode,
        "state": campaign.state,
        "started_at": campaign.started_at,
        "today": today,
        "site_timezone": site_tz,
        "abandon_cap": campaign.abandon_cap,
        "abandon_target": campaign.abandon_target,
        "last_30_days": rolling,
        "life": life,
        "worst_30_days": worst_window(
            ledger_days(session, campaign.id, first_day), today, life_since=life_first_day
        ),
        "contacts_left": statuses.get("new", 0) + statuses.get("retry", 0),
        "contacts": dict(sorted(statuses.items())),
    }


#: The CSV's columns: the campaign's name, then every column of the attempt record.
EXPORT_COLUMNS = ("campaign", *CampaignAttempt.__table__.columns.keys())


def _cell(value: Any) -> Any:
    if value is None:
        return ""
    if isinstance(value, dt.datetime | dt.date):
        return value.isoformat()
    return value


def export_csv(session: Session, campaign: Campaign, stream: TextIO) -> int:
    """Write every attempt record of ``campaign``, in id order, as CSV with a header
    (:data:`EXPORT_COLUMNS`; times ISO 8601 with their UTC offset, empty for none) to
    ``stream``; rows are fetched in batches, so a campaign of millions of attempts streams.
    Returns how many records were written."""
    table = CampaignAttempt.__table__
    writer = csv.writer(stream, lineterminator="\n")
    writer.writerow(EXPORT_COLUMNS)
    query = (
        select(table)
        .where(table.c.campaign_id == campaign.id)
        .order_by(table.c.id)
        .execution_options(yield_per=EXPORT_BATCH)
    )
    n = 0
    for row in session.execute(query):
        writer.writerow([campaign.name, *(_cell(v) for v in row)])
        n += 1
    return n
