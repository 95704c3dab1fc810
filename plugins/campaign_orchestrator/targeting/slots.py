"""Send slots: when a customer gets a campaign on a run date, in UTC, from the campaign's clock
time in the customer's time zone, moved out of quiet hours or dropped. Computed once per zone in
Python and joined in, since zones are few and customers many."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaign_orchestrator.clock import naive_utc
from campaign_orchestrator.definitions.campaigns import Campaign, QuietHours, clock
from campaign_orchestrator.definitions.loader import Definitions
from campaign_orchestrator.warehouse.tables import (
    customers,
    send_slots,
)


@dataclass(frozen=True)
class Slot:
    send_at: dt.datetime  # naive UTC
    dropped: bool


def slot_for(
    campaign: Campaign, zone: str, run_date: dt.date, now: dt.datetime, default_zone: str, quiet: QuietHours | None
) -> Slot:
    """When a customer in `zone` ('' = no zone on the profile) gets the campaign on run_date."""
    name = campaign.send_timezone or zone or default_zone
    try:
        tz = ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        tz = ZoneInfo(default_zone)
    at = campaign.send_clock()
    if at is None:
        local = now.replace(tzinfo=dt.UTC).astimezone(tz)
    else:
        local = dt.datetime.combine(run_date, at, tzinfo=tz)
        local = local.astimezone(dt.UTC).astimezone(tz)  # normalise a time skipped by a DST change
    if quiet is not None and quiet.contains(local.time().replace(second=0, microsecond=0)):
        if quiet.fallback == "drop":
            return Slot(naive_utc(local), dropped=True)
        end = clock(quiet.end)
        moved = dt.datetime.combine(local.date(), end, tzinfo=tz)
        if moved <= local:
            moved = dt.datetime.combine(local.date() + dt.timedelta(days=1), end, tzinfo=tz)
        local = moved.astimezone(dt.UTC).astimezone(tz)
    return Slot(naive_utc(local), dropped=False)


def quiet_hours_of(campaign: Campaign, definitions: Definitions) -> QuietHours | None:
    if campaign.quiet_hours == "none":
        return None
    if isinstance(campaign.quiet_hours, QuietHours):
        return campaign.quiet_hours
    return definitions.settings.quiet_hours


def write_slots(
    conn: Connection, definitions: Definitions, campaigns: list[Campaign], run_date: dt.date, now: dt.datetime
) -> None:
    zones = {z or "" for (z,) in conn.execute(sa.select(customers.c.timezone).distinct())} | {""}
    rows = []
    for campaign in campaigns:
        quiet = quiet_hours_of(campaign, definitions)
        for zone in sorted(zones):
            slot = slot_for(campaign, zone, run_date, now, definitions.settings.default_timezone, quiet)
            rows.append(
                {
                    "run_date": run_date,
                    "campaign_id": campaign.id,
                    "timezone": zone,
                    "send_at": slot.send_at,
                    "dropped": slot.dropped,
                }
            )
    conn.execute(send_slots.insert(), rows)
