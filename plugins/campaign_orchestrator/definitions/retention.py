"""How long each store keeps what it holds (`settings.retention`), in days; None keeps it for ever.

The stores are those that hold personal data or grow with every night: quarantined raw values,
the archived source files, rendered payloads (and ended in-app messages), the outbox ledger and
engagement events. `campaigns purge` and the DAG's `purge` task apply them (`retention.purge`).
"""

from __future__ import annotations

from pydantic import Field

from campaign_orchestrator.definitions.base import StrictModel

CENTURY = 36_500


class Retention(StrictModel):
    quarantine_raw_days: int | None = Field(
        default=None, ge=1, le=CENTURY, description="raw values of quarantined rows"
    )
    archive_days: int | None = Field(
        default=None, ge=1, le=CENTURY, description="the archive's nightly folders of source files"
    )
    rendered_payload_days: int | None = Field(
        default=None,
        ge=1,
        le=CENTURY,
        description="rendered payloads of messages that left for good; in-app messages that ended",
    )
    outbox_days: int | None = Field(
        default=None,
        ge=7,
        le=CENTURY,
        description="outbox messages in a final state; at least 7 (caps look back); refused beside caps.total",
    )
    engagement_days: int | None = Field(
        default=None, ge=1, le=CENTURY, description="engagement events (from the apps and the provider)"
    )
