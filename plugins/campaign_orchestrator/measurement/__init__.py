"""Measurement: what came back after the sends (engagement, conversions) and the uplift against the holdouts."""

from campaign_orchestrator.measurement.metrics import measure_date, measured_dates

__all__ = ["measure_date", "measured_dates"]
