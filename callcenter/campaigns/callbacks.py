"""Callbacks an agent books from their desktop: a number to call back at a time, for themselves
or for anyone. Each becomes a contact of the site's callback campaign
(``[wallboard] callback_campaign``, a campaign the operator creates: preview for callbacks
"for me", any agent mode otherwise), due at that time; the dialer calls it as it calls any
contact of that campaign, with the do-not-call list and the calling window checked at dial
time, and its attempt is recorded like every other.

"For me": the contact's ``callback_for`` field names the agent; only that agent's preview
takes it (:func:`callcenter.campaigns.scheduling.preview_take`), and the dialer's own claims
pass it over. A number that is already a contact of the campaign is booked again (its time,
note and owner replaced), not duplicated.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from callcenter.campaigns.numbers import Normaliser, NumberError
from callcenter.campaigns.store import CampaignError, get_campaign
from callcenter.db.models_campaigns import Contact

#: Callbacks come before the campaign's other contacts.
PRIORITY = 100
NOTE_MAX = 500


def schedule_callback(
    session: Session,
    campaign_name: str,
    numbers: Normaliser,
    number: str,
    at: dt.datetime,
    *,
    booked_by: str,
    for_agent: str | None,
    note: str = "",
    source: str = "",
    now: dt.datetime,
    site_tz: str = "UTC",
) -> Contact:
    """Book a callback (module docstring); :class:`CampaignError` with one line for a bad
    number, a time in the past or more than 90 days ahead, or a campaign that cannot take
    it."""
    if at.tzinfo is None:
        raise CampaignError("the callback's time needs a time zone")
    if at < now - dt.timedelta(minutes=1):
        raise CampaignError(f"the callback's time {at.isoformat()} has passed")
    if at > now + dt.timedelta(days=90):
        raise CampaignError("a callback more than 90 days ahead: book it later")
    if len(note) > NOTE_MAX:
        raise CampaignError(f"the note is longer than {NOTE_MAX} characters")
    campaign = get_campaign(session, campaign_name)
    if campaign.mode == "agentless":
        raise CampaignError(f"campaign {campaign_name} is agentless: no agent takes its calls")
    if for_agent and campaign.mode != "preview":
        raise CampaignError(
            f"a callback for one agent needs a preview campaign ({campaign_name} is "
            f"{campaign.mode}: any of its agents takes the call)"
        )
    try:
        parsed = numbers.number(number)
    except NumberError as exc:
        raise CampaignError(f"number {number!r}: {exc}") from None
    fields: dict[str, Any] = {
        "callback_for": for_agent or "",
        "booked_by": booked_by,
        "note": note.strip(),
        "source_call": source,
        "due": at.isoformat(),
    }
    contact = session.scalar(
        select(Contact)
        .where(Contact.campaign_id == campaign.id, Contact.phone == parsed.e164)
        .with_for_update()
    )
    if contact is None:
        contact = Contact(
            campaign_id=campaign.id,
            phone=parsed.e164,
            name="",
            timezone=parsed.timezone or site_tz,
            priority=PRIORITY,
            fields=fields,
            status="retry",
            attempts=0,
            next_attempt_at=at,
        )
        session.add(contact)
    else:
        if contact.status in ("dialling", "previewing"):
            raise CampaignError(f"{parsed.e164} is being called now: book the callback later")
        contact.fields = {**contact.fields, **fields}
        contact.priority = PRIORITY
        contact.status = "retry"
        contact.next_attempt_at = at
        contact.attempts = 0
    session.flush()
    return contact
