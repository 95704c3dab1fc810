"""What a campaign is, as marketers write it in `marketing/campaigns/*.yaml`.

Audience (segment, or include/exclude lists of segments), channel and destination, template or
weighted A/B variants, schedule (once, daily, weekly, cron, between start and end dates), send
time (customer's local clock, a fixed zone, or now), quiet hours with a fallback, priority,
per-campaign caps and the holdout share. Validation here is about shape; references to other
definitions are checked when everything is loaded (`definitions.load_definitions`).

Approval: a campaign is `draft`, `pending_approval`, `approved` or `paused` (`status`). A file
without `status` is approved: the repository's files were merged through review. Only approved
campaigns are ever active, so a draft or a paused campaign is never sent (`is_active`).
"""

from __future__ import annotations

import datetime as dt
import re
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, field_validator, model_validator

from campaign_orchestrator.definitions.base import ID_PATTERN, StrictModel
from campaign_orchestrator.definitions.conversions import Conversion

Channel = Literal["push", "email", "in_app"]
Platform = Literal["ios", "android", "web"]
Weekday = Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
WEEKDAYS: tuple[str, ...] = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
Status = Literal["draft", "pending_approval", "approved", "paused"]
SENDABLE: frozenset[str | None] = frozenset({None, "approved"})  # no status: merged through review
CLOCK = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")


def check_zone(value: str) -> str:
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {value!r}") from exc
    return value


def clock(value: str) -> dt.time:
    hour, minute = value.split(":")
    return dt.time(int(hour), int(minute))


def _check_clock(value: str) -> str:
    if not CLOCK.match(value):
        raise ValueError("expected a clock time HH:MM (24-hour)")
    return value


class QuietHours(StrictModel):
    """No message lands between start and end in the customer's local time (may cross midnight)."""

    start: str = Field(description="HH:MM local")
    end: str = Field(description="HH:MM local")
    fallback: Literal["move", "drop"] = Field(default="move", description="move to the end of quiet hours, or drop")

    @field_validator("start", "end")
    @classmethod
    def _clock(cls, value: str) -> str:
        return _check_clock(value)

    def contains(self, moment: dt.time) -> bool:
        start, end = clock(self.start), clock(self.end)
        if start == end:
            return False
        if start < end:
            return start <= moment < end
        return moment >= start or moment < end


class Schedule(StrictModel):
    type: Literal["once", "daily", "weekly", "cron"] = "daily"
    date: dt.date | None = Field(default=None, description="for once")
    days: list[Weekday] | None = Field(default=None, description="for weekly")
    cron: str | None = Field(default=None, description="for cron: the days it fires on (its time is ignored)")

    @model_validator(mode="after")
    def _complete(self) -> Schedule:
        if self.type == "once" and self.date is None:
            raise ValueError("a once schedule needs date")
        if self.type == "weekly" and not self.days:
            raise ValueError("a weekly schedule needs days")
        if self.type == "cron":
            from croniter import croniter

            if not self.cron or not croniter.is_valid(self.cron):
                raise ValueError(f"not a valid cron expression: {self.cron!r}")
        return self

    def fires_on(self, day: dt.date) -> bool:
        if self.type == "once":
            return day == self.date
        if self.type == "weekly":
            return WEEKDAYS[day.weekday()] in (self.days or [])
        if self.type == "cron":
            from croniter import croniter

            start = dt.datetime.combine(day, dt.time())
            following = croniter(str(self.cron), start - dt.timedelta(seconds=1)).get_next(dt.datetime)
            return bool(following < start + dt.timedelta(days=1))
        return True


class Variant(StrictModel):
    id: str = Field(pattern=ID_PATTERN)
    weight: float = Field(gt=0, description="relative share of the targeted customers")
    template: str


class CampaignCaps(StrictModel):
    per_day: int = Field(default=1, ge=1, description="messages of this campaign per customer per day")
    total: int | None = Field(default=None, ge=1, description="messages of this campaign per customer, ever")


class InAppOptions(StrictModel):
    priority: int = Field(default=3, ge=1, le=5, description="Pinpoint-style display priority, 1 = critical")
    session_cap: int | None = Field(default=None, ge=1)
    daily_cap: int | None = Field(default=None, ge=1)
    total_cap: int | None = Field(default=None, ge=1)
    expires_after_hours: int = Field(default=72, ge=1)


class Campaign(StrictModel):
    id: str = Field(pattern=ID_PATTERN)
    name: str | None = None
    enabled: bool = True
    segment: str | None = Field(default=None, description="the audience; or include/exclude")
    include: list[str] | None = Field(default=None, description="members of any of these segments")
    exclude: list[str] | None = Field(default=None, description="minus members of any of these")
    channel: Channel
    destination: str
    provider_campaign_id: str | None = Field(default=None, description="the provider's API-triggered campaign")
    template: str | None = None
    variants: list[Variant] | None = Field(default=None, description="A/B variants instead of one template")
    priority: int = Field(default=100, ge=0, description="lower wins when caps allow fewer campaigns")
    holdout_percent: float = Field(default=0.0, ge=0.0, le=100.0)
    schedule: Schedule = Schedule()
    start_date: dt.date | None = None
    end_date: dt.date | None = None
    send_time: str = Field(default="now", description="'now' or HH:MM in the customer's (or send_timezone's) time")
    send_timezone: str | None = None
    quiet_hours: QuietHours | Literal["none"] | None = Field(
        default=None, description="overrides settings.quiet_hours; 'none' switches them off"
    )
    caps: CampaignCaps = CampaignCaps()
    app_ids: list[str] | None = None
    platforms: list[Platform] | None = None
    in_app: InAppOptions = InAppOptions()
    locales: list[str] = Field(
        default_factory=list, description="locales every template of this campaign must have content for"
    )
    conversion: Conversion | None = Field(
        default=None, description="what counts as this campaign working; default settings.measurement.conversion"
    )
    status: Status | None = Field(
        default=None, description="approval state; a file without it is approved (merged through review)"
    )
    submitted_by: str | None = Field(default=None, description="who submitted this version for approval")
    submitted_at: dt.datetime | None = None
    approved_by: str | None = Field(default=None, description="who approved this version (never its submitter)")
    approved_at: dt.datetime | None = None

    @field_validator("send_time")
    @classmethod
    def _clock_or_now(cls, value: str) -> str:
        if value != "now" and not CLOCK.match(value):
            raise ValueError("send_time must be 'now' or HH:MM (24-hour)")
        return value

    @field_validator("send_timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        return None if value is None else check_zone(value)

    @model_validator(mode="after")
    def _consistent(self) -> Campaign:
        if self.start_date and self.end_date and self.end_date < self.start_date:
            raise ValueError("end_date is before start_date")
        if (self.segment is None) == (self.include is None):
            raise ValueError("give either segment or include (with optional exclude)")
        if self.include is not None and not self.include:
            raise ValueError("include needs at least one segment")
        if (self.template is None) == (self.variants is None):
            raise ValueError("give either template or variants")
        if self.variants is not None:
            ids = [v.id for v in self.variants]
            if not ids or len(set(ids)) != len(ids):
                raise ValueError("variants need distinct ids")
        return self

    @property
    def audience(self) -> tuple[list[str], list[str]]:
        """(segments to include, segments to exclude)."""
        return ([self.segment] if self.segment else list(self.include or [])), list(self.exclude or [])

    @property
    def variant_templates(self) -> dict[str, str]:
        if self.variants:
            return {v.id: v.template for v in self.variants}
        return {"default": str(self.template)}

    @property
    def approved(self) -> bool:
        """Whether this version may be sent: approved, or without a status (merged through review)."""
        return self.status in SENDABLE

    def is_active(self, run_date: dt.date) -> bool:
        """Whether the night of `run_date` sends this version: approved and scheduled that day."""
        return self.approved and self.scheduled_on(run_date)

    def scheduled_on(self, run_date: dt.date) -> bool:
        """Whether this version would send on `run_date` once approved (the console's calendar
        shows drafts where they would land): enabled, within its dates, and its schedule fires."""
        if not self.enabled:
            return False
        if self.start_date and run_date < self.start_date:
            return False
        if self.end_date and run_date > self.end_date:
            return False
        return self.schedule.fires_on(run_date)

    def send_clock(self) -> dt.time | None:
        return None if self.send_time == "now" else clock(self.send_time)
