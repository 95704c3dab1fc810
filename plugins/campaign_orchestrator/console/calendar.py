"""The sends calendar: which campaign sends on which of the next days, and at what time.

Invariant: a day shows an approved campaign exactly when the night of that date would send it
(`Campaign.is_active`, the rule the targeting stage applies), so the calendar and the night cannot
disagree. Drafts and versions waiting for approval are shown where they would land once approved
(`Campaign.scheduled_on`), marked with their state; a paused campaign is shown nowhere but listed.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from campaign_orchestrator.definitions.campaigns import Campaign
from campaign_orchestrator.definitions.loader import Definitions

DAYS = 14


@dataclass(frozen=True)
class Send:
    campaign_id: str
    name: str
    channel: str
    at: str  # "18:00 local", "09:00 Europe/Berlin", "at run time"
    state: str  # approved | draft | pending_approval


@dataclass
class CalendarDay:
    day: dt.date
    sends: list[Send] = field(default_factory=list)


@dataclass
class Calendar:
    start: dt.date
    days: list[CalendarDay]
    paused: list[str]

    def campaigns_on(self, day: dt.date) -> list[str]:
        return [s.campaign_id for d in self.days if d.day == day for s in d.sends]


def send_moment(campaign: Campaign) -> str:
    if campaign.send_time == "now":
        return "at run time"
    return f"{campaign.send_time} {campaign.send_timezone or 'local'}"


def _send(campaign: Campaign, state: str) -> Send:
    return Send(campaign.id, campaign.name or campaign.id, campaign.channel, send_moment(campaign), state)


def build_calendar(definitions: Definitions, start: dt.date, days: int = DAYS) -> Calendar:
    """`days` days from `start`: approved sends as the night decides them, drafts where they would land."""
    calendar = Calendar(start, [CalendarDay(start + dt.timedelta(days=i)) for i in range(days)], [])
    calendar.paused = sorted(c.id for c in definitions.campaigns.values() if c.status == "paused")
    for entry in calendar.days:
        for campaign in sorted(definitions.campaigns.values(), key=lambda c: (c.send_time, c.id)):
            if campaign.is_active(entry.day):
                entry.sends.append(_send(campaign, "approved"))
        for draft in sorted(definitions.drafts.values(), key=lambda c: (c.send_time, c.id)):
            if draft.scheduled_on(entry.day):
                entry.sends.append(_send(draft, str(draft.status or "draft")))
    return calendar
