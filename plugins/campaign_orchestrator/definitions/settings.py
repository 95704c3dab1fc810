"""`settings.yaml`: what applies to every campaign (caps, quiet hours, control group, limits,
render and delivery settings, destinations). Every field has a safe default, so a folder without
the file still runs; an unknown key is an error."""

from __future__ import annotations

import datetime as dt
from typing import Literal

from pydantic import Field, field_validator, model_validator

from campaign_orchestrator.definitions.base import StrictModel
from campaign_orchestrator.definitions.campaigns import Channel, QuietHours, check_zone
from campaign_orchestrator.definitions.conversions import MeasurementSettings
from campaign_orchestrator.definitions.retention import Retention
from campaign_orchestrator.definitions.templates import DEFAULT_LIMITS, LOCALE_PATTERN


class GlobalCaps(StrictModel):
    per_customer_per_day: int = Field(default=2, ge=0, description="messages per customer per day, all campaigns")
    per_channel_per_day: dict[Channel, int] = Field(
        default_factory=dict, description="messages per customer per day and channel, e.g. {push: 1}"
    )


class DeliverySettings(StrictModel):
    shards: int = Field(default=4, ge=1, le=1024, description="outbox shards the DAG maps delivery over")
    max_workers: int = Field(default=4, ge=1, le=64, description="concurrent requests per shard")
    batch_size: int = Field(default=50, ge=1, le=50, description="recipients per provider request")
    claim_size: int = Field(
        default=5000, ge=50, description="messages claimed at a time (in whole batches of batch_size)"
    )
    requests_per_hour: int = Field(default=250_000, ge=1)
    max_attempts: int = Field(default=5, ge=1, le=20)
    timeout_s: float = Field(default=30.0, gt=0)
    stop_after_failed_batches: int = Field(
        default=3,
        ge=1,
        description="a destination whose last N batches in a row were not delivered (each after max_attempts "
        "requests) gets no more requests in this attempt; its batches stay pending for the next",
    )
    lease_s: float = Field(
        default=120.0,
        ge=1.0,
        description="a claim whose worker has not touched it this long is taken over (workers touch theirs "
        "every quarter of it)",
    )
    max_lateness: str | None = Field(
        default="0h",
        pattern=r"^\d{1,4}[hd]$",
        description="how long after its run date ends (midnight UTC) a night may still send, e.g. 0h or 6h; "
        "a later night is stale: it renders and reports but sends nothing; null: no limit",
    )

    @property
    def max_lateness_delta(self) -> dt.timedelta | None:
        """`max_lateness` as a timedelta (None: no limit)."""
        if self.max_lateness is None:
            return None
        unit = {"h": "hours", "d": "days"}[self.max_lateness[-1]]
        return dt.timedelta(**{unit: int(self.max_lateness[:-1])})


class RenderSettings(StrictModel):
    max_error_share: float = Field(
        default=0.01, ge=0.0, le=1.0, description="a campaign with more failed renders stops before delivery"
    )
    max_message_ms: float = Field(default=50.0, gt=0, description="time one message may take to render")


class Destination(StrictModel):
    kind: Literal["provider", "message_store"]
    connection_id: str | None = Field(default=None, description="Airflow connection id (provider kind)")
    honours_idempotency_key: bool = Field(
        default=False,
        description="the provider answers a repeated Idempotency-Key without sending again (Braze documents no "
        "such key: false); only then is a request that may have arrived resent after a crash, else it is unknown",
    )
    supports_deletion: bool = Field(
        default=True,
        description="provider kind: its API has Braze's POST /users/delete, so `campaigns erase` forwards each erased "
        "customer id there (50 a request); false for one without it (erase there by other means)",
    )

    @model_validator(mode="after")
    def _provider_needs_connection(self) -> Destination:
        if self.kind == "provider" and not self.connection_id:
            raise ValueError("a provider destination needs connection_id")
        return self


class Settings(StrictModel):
    default_timezone: str = "UTC"
    windows: Literal["utc", "customer_local"] = Field(
        default="utc",
        description="where relative windows (within_last: 90d) start: midnight UTC of the run date, "
        "or midnight in each customer's time zone (default_timezone when theirs is missing)",
    )
    caps: GlobalCaps = GlobalCaps()
    quiet_hours: QuietHours | None = Field(default=None, description="default for every campaign")
    global_control_percent: float = Field(
        default=0.0, ge=0.0, le=50.0, description="customers no campaign sends to, to measure overall uplift"
    )
    default_locale: str = Field(default="en", pattern=LOCALE_PATTERN, description="language of templates' content")
    limits: dict[Channel, dict[str, int]] = Field(
        default_factory=dict,
        description="characters per field, e.g. {push: {title: 50}}; merged over the built-in limits",
    )
    render: RenderSettings = RenderSettings()
    delivery: DeliverySettings = DeliverySettings()
    destinations: dict[str, Destination] = Field(default_factory=dict)
    measurement: MeasurementSettings = MeasurementSettings()
    retention: Retention = Field(
        default_factory=Retention, description="days each store keeps what it holds; a store not set keeps it for ever"
    )

    @field_validator("limits")
    @classmethod
    def _known_limits(cls, value: dict[str, dict[str, int]]) -> dict[str, dict[str, int]]:
        for channel, fields in value.items():
            unknown = fields.keys() - DEFAULT_LIMITS[channel].keys()
            if unknown:
                raise ValueError(
                    f"{channel}: no limit named {sorted(unknown)}; known {sorted(DEFAULT_LIMITS[channel])}"
                )
            if any(v < 1 for v in fields.values()):
                raise ValueError(f"{channel}: limits must be at least 1")
        return value

    @field_validator("default_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        return check_zone(value)

    @model_validator(mode="after")
    def _engagement_outlives_measurement(self) -> Settings:
        kept, lookback = self.retention.engagement_days, self.measurement.lookback_days
        if kept is not None and kept <= lookback:
            raise ValueError(
                f"retention.engagement_days ({kept}) must be more than measurement.lookback_days ({lookback}):"
                " the nights re-measured every night need their engagement"
            )
        return self
