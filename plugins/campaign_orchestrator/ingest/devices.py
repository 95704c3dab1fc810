"""Devices the apps registered through the inbox API, applied over tonight's app installs.

`app_installs` is replaced by every export, but an app that sent a new push token (or withdrew
one) through `PUT /v1/customers/{id}/devices/{app_id}` knows better than an export older than
that call: for each registered device whose change is at least as new as the install's
`last_seen_at`, the token decides `push_token_present`, and a device the export lacks is added.
One set-based UPDATE and one INSERT ... SELECT, inside the publishing transaction.
"""

from __future__ import annotations

import datetime as dt

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from campaign_orchestrator.warehouse.tables import app_installs, device_tokens

EPOCH = dt.datetime(1970, 1, 1)


def apply_device_tokens(conn: Connection) -> int:
    """Rows of app_installs changed or added by API device registrations."""
    d, a = device_tokens.c, app_installs.c
    newer = (
        sa.select(d.push_token.is_not(None))
        .where(
            d.customer_id == a.customer_id,
            d.app_id == a.app_id,
            d.platform == a.platform,
            d.updated_at >= sa.func.coalesce(a.last_seen_at, EPOCH),
        )
        .scalar_subquery()
    )
    exists_newer = sa.exists().where(
        d.customer_id == a.customer_id,
        d.app_id == a.app_id,
        d.platform == a.platform,
        d.updated_at >= sa.func.coalesce(a.last_seen_at, EPOCH),
    )
    changed = conn.execute(app_installs.update().where(exists_newer).values(push_token_present=newer)).rowcount
    installed = sa.exists().where(a.customer_id == d.customer_id, a.app_id == d.app_id, a.platform == d.platform)
    added = conn.execute(
        app_installs.insert().from_select(
            ["customer_id", "app_id", "platform", "push_token_present", "last_seen_at"],
            sa.select(d.customer_id, d.app_id, d.platform, d.push_token.is_not(None), d.updated_at).where(~installed),
        )
    ).rowcount
    return int(changed or 0) + int(added or 0)
