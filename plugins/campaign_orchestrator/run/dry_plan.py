"""A plan that leaves no trace: what a night would target, for definitions that are not saved yet.

The console's campaign editor shows the funnel `campaigns plan` computes (segment, every
exclusion reason, targeted) for a campaign still being edited, against the real warehouse.

Invariant: nothing a dry plan computes outlives it. Memberships, slots, candidates, arbitration
and target lists are written by the night's very functions on one connection inside one
transaction, the funnels are read back, and the transaction is rolled back, so the warehouse,
the ledger and `segment_stats` are exactly as before. That needs transactional DDL-free stages
(they only insert and delete) and a rollback that also undoes ANALYZE, which holds on SQLite and
PostgreSQL; MySQL/MariaDB keep no statistics from us (`analyze_tables` skips them) and their
deletes and inserts roll back too.

A dry plan holds row locks on the run date's rows while it runs: on PostgreSQL it waits at most
`LOCK_TIMEOUT` for a night working on the same date and then fails with `PlanBusy`, rather than
making the night wait behind a marketer's click.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from typing import Any

from sqlalchemy.engine import Engine
from sqlalchemy.exc import OperationalError

from campaign_orchestrator.clock import utcnow
from campaign_orchestrator.definitions.campaigns import Campaign
from campaign_orchestrator.definitions.loader import Definitions
from campaign_orchestrator.errors import CampaignError
from campaign_orchestrator.segments.memberships import compute_memberships
from campaign_orchestrator.segments.windows import windows_for
from campaign_orchestrator.targeting.funnel import Funnel

LOCK_TIMEOUT = "5s"


class PlanBusy(CampaignError, RuntimeError):
    """A night holds the run date's rows: try again when it has finished (transient)."""


def with_candidate(definitions: Definitions, campaign: Campaign) -> Definitions:
    """The definitions with `campaign` (a draft, say) in place of its saved version, as if approved."""
    running = campaign.model_copy(update={"status": "approved"})
    return dataclasses.replace(definitions, campaigns={**definitions.campaigns, campaign.id: running})


def dry_plan(
    engine: Engine, definitions: Definitions, run_date: dt.date, now: dt.datetime | None = None
) -> dict[str, Funnel]:
    """Every active campaign's funnel for `run_date` on the current warehouse, then rolled back."""
    from campaign_orchestrator.targeting.arbitration import build_target_lists

    settings = definitions.settings
    with engine.connect() as conn:
        transaction = conn.begin()
        try:
            if conn.dialect.name == "postgresql":
                conn.exec_driver_sql(f"SET LOCAL lock_timeout = '{LOCK_TIMEOUT}'")
                conn.exec_driver_sql("SET LOCAL work_mem = '256MB'")
            windows = windows_for(conn, run_date, settings.windows, settings.default_timezone)
            compute_memberships(
                conn, definitions.rules(), definitions.vocabulary, run_date, definitions.lifecycle_specs(), windows
            )
            return build_target_lists(conn, definitions, run_date, now or utcnow())
        except OperationalError as exc:
            if "lock timeout" in str(exc.orig).lower() or "database is locked" in str(exc.orig).lower():
                raise PlanBusy(
                    f"the night for {run_date} is working on the warehouse now; plan again when it has finished"
                ) from None
            raise
        finally:
            transaction.rollback()


def funnel_rows(funnels: dict[str, Funnel]) -> list[dict[str, Any]]:
    """The funnels as rows for a page or JSON, in campaign order."""
    return [{"campaign_id": cid, **funnel.as_dict()} for cid, funnel in sorted(funnels.items())]
