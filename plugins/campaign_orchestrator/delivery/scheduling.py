"""When a provider batch is a schedule rather than a send: one rule for the client, the report and measurement.

The client asks the provider to schedule a batch whose send instant is more than SCHEDULE_MARGIN
ahead of the moment it goes out; closer than that, it is sent at once. Afterwards the ledger
tells the two apart the same way: a sent batch whose send instant was more than the margin after
the moment it was handed over (`sent_at`) was scheduled at the provider.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy.sql.elements import ColumnElement

from campaign_orchestrator.warehouse.sqlfuncs import seconds_after

SCHEDULE_MARGIN = dt.timedelta(minutes=1)  # closer than this to now, a send is sent, not scheduled


def scheduled_at_provider(send_at: ColumnElement[Any], sent_at: ColumnElement[Any]) -> ColumnElement[bool]:
    """True for a sent batch (or message) the provider took as a schedule; false when `sent_at` is NULL."""
    return seconds_after(sent_at, send_at) > SCHEDULE_MARGIN.total_seconds()
