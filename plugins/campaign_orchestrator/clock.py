"""Time as the warehouse stores it: naive UTC. One spelling, so no stage compares a local or
aware time with a stored one."""

from __future__ import annotations

import datetime as dt


def utcnow() -> dt.datetime:
    """Now, as naive UTC."""
    return dt.datetime.now(dt.UTC).replace(tzinfo=None)


def naive_utc(moment: dt.datetime) -> dt.datetime:
    """An aware moment as naive UTC (a naive one is taken to be UTC already)."""
    return moment.astimezone(dt.UTC).replace(tzinfo=None) if moment.tzinfo else moment


def iso_utc(moment: dt.datetime | None) -> str | None:
    """A stored (naive UTC) time as the APIs write it: ISO 8601 with Z."""
    return None if moment is None else moment.replace(tzinfo=dt.UTC).isoformat().replace("+00:00", "Z")


def today() -> dt.date:
    """Today's date in UTC: the default run date."""
    return dt.datetime.now(dt.UTC).date()
