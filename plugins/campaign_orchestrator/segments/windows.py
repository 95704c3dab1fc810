"""Where relative windows and dates start: UTC (the default), or each customer's own calendar.

`windows: utc` counts `within_last: 90d`, `before: 30d` and every relative date back from midnight
UTC of the run date. `windows: customer_local` (settings.yaml) counts them from midnight of the run
date in the customer's time zone (`customers.timezone`, else `default_timezone`), and reads a date
without a time (`2026-11-01`) or a time without an offset as the customer's wall clock; a value
with an offset stays absolute. Days and weeks are calendar days there, so a window across a DST
change is 23 or 25 hours longer or shorter, as the customer's calendar is; hours are hours.

Invariant: the bounds are computed here, per time zone, with Python's zoneinfo, and reach the SQL
as bound parameters in one CASE on the customer's zone: the same result on every engine, none of
which needs a time-zone database of its own.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from campaign_orchestrator.definitions.rule_values import is_duration, parse_duration, parse_moment
from campaign_orchestrator.warehouse.tables import customers

MAX_ZONES = 1000  # distinct zones in one CASE; past it the rest fall back to the default zone


@dataclass(frozen=True)
class LocalWindows:
    """The run date's local midnights, per time zone customers have."""

    run_date: dt.date
    zones: tuple[str, ...]
    default: str

    def bound(self, timezone: ColumnElement[Any], value: Any, kind: str) -> ColumnElement[Any] | None:
        """`value` (a duration back from the run date, or a date/time without an offset) as a SQL
        expression on the customer's zone; None for a value that is absolute anyway."""
        moment = _local_moment(value)
        if moment is None or kind != "datetime":  # a date bound is the same calendar date everywhere
            return None
        typed = sa.DateTime() if kind == "datetime" else sa.Date()
        cases = [(timezone == zone, sa.literal(self._utc(zone, moment, kind), typed)) for zone in self.zones]
        fallback = sa.literal(self._utc(self.default, moment, kind), typed)
        return sa.case(*cases, else_=fallback) if cases else fallback

    def _utc(self, zone: str, moment: Any, kind: str) -> Any:
        tz = ZoneInfo(zone)
        if isinstance(moment, dt.timedelta):  # back from local midnight of the run date
            if moment % dt.timedelta(days=1):  # hours: exact hours before local midnight (in UTC: DST-proof)
                return _naive_utc(dt.datetime.combine(self.run_date, dt.time(), tz)) - moment
            day = self.run_date - dt.timedelta(days=moment.days)
            return _naive_utc(dt.datetime.combine(day, dt.time(), tz)) if kind == "datetime" else day
        if kind == "date":
            return moment.date() if isinstance(moment, dt.datetime) else moment
        local = moment if isinstance(moment, dt.datetime) else dt.datetime.combine(moment, dt.time())
        return _naive_utc(local.replace(tzinfo=tz))


@dataclass(frozen=True)
class Clock:
    """The run date a rule is compiled for, and where its windows start: `moment` gives a value
    as a bound (UTC) or, with local windows, as a CASE on the customer's zone column `zone`."""

    run_date: dt.date
    local: LocalWindows | None = None
    zone: ColumnElement[Any] | None = None

    def at(self, zone: ColumnElement[Any]) -> Clock:
        return dataclasses.replace(self, zone=zone)

    def moment(self, value: Any, kind: str) -> Any:
        if self.local is not None and self.zone is not None:
            bound = self.local.bound(self.zone, value, kind)
            if bound is not None:
                return bound
        return parse_moment(value, kind, self.run_date)


def _naive_utc(moment: dt.datetime) -> dt.datetime:
    return moment.astimezone(dt.UTC).replace(tzinfo=None)


def _local_moment(value: Any) -> dt.timedelta | dt.date | dt.datetime | None:
    """A duration, or a date/time on the customer's wall clock; None when the value has an offset."""
    if is_duration(value):
        return parse_duration(value)
    if isinstance(value, dt.datetime):
        return None if value.tzinfo is not None else value
    if isinstance(value, dt.date):
        return value
    try:
        parsed = dt.datetime.fromisoformat(str(value))
    except ValueError:
        return None
    if parsed.tzinfo is not None:
        return None
    return parsed.date() if len(str(value).strip()) == 10 else parsed


def local_windows(conn: Connection, run_date: dt.date, default_timezone: str) -> LocalWindows:
    """The zones customers have (valid ones, most common first), for one run's compile."""
    counted = conn.execute(
        sa.select(customers.c.timezone, sa.func.count())
        .where(customers.c.timezone.is_not(None))
        .group_by(customers.c.timezone)
        .order_by(sa.func.count().desc(), customers.c.timezone)
    ).all()
    return LocalWindows(run_date, _valid([zone for zone, _ in counted])[:MAX_ZONES], default_timezone)


def _valid(zones: Iterable[str]) -> tuple[str, ...]:
    found = []
    for zone in zones:
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError):
            continue  # such customers count in the default zone
        found.append(zone)
    return tuple(found)


def windows_for(conn: Connection, run_date: dt.date, mode: str, default_timezone: str) -> LocalWindows | None:
    """What the settings' `windows` asks for: None for UTC, else the customers' local midnights."""
    return local_windows(conn, run_date, default_timezone) if mode == "customer_local" else None
