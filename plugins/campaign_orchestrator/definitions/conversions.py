"""What counts as a campaign working: a conversion event within an attribution window of the send,
and how measurement judges the difference (`settings.measurement`).

A conversion is counted for targeted and held-out customers alike, from the instant each was (or
would have been) sent, so the two groups are compared over the same window. Property filters are
the segment rules' `where` conditions and are checked against the events contract the same way.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field

from campaign_orchestrator.definitions.base import ID_PATTERN, StrictModel
from campaign_orchestrator.definitions.rule_conditions import PropertyCondition
from campaign_orchestrator.definitions.rule_values import RuleError, Vocabulary, parse_operand


class Conversion(StrictModel):
    event: str = Field(pattern=ID_PATTERN, description="the event that counts, e.g. purchase")
    where: list[PropertyCondition] = Field(
        default_factory=list, description="property conditions, as in a segment rule's where"
    )
    within_hours: float = Field(
        default=72.0, gt=0, le=24 * 90, description="the attribution window after the send instant"
    )

    def problems(self, vocab: Vocabulary | None, path: str) -> list[str]:
        """What is wrong with the filter given the events contract (nothing to say without one)."""
        if vocab is None or not vocab.event_properties:
            return []
        out: list[str] = []
        for i, cond in enumerate(self.where):
            kind = vocab.event_properties.get(cond.name)
            if kind is None:
                out.append(f"{path}.where[{i}]: no event property {cond.name!r} in the events contract")
                continue
            op, raw = cond.operator
            try:
                parse_operand(op, raw, kind)
            except RuleError as exc:
                out.append(f"{path}.where[{i}].{op}: {exc}")
        return out


class MeasurementSettings(StrictModel):
    conversion: Conversion | None = Field(
        default=None, description="the default conversion of every campaign (a campaign may set its own)"
    )
    min_sample: int = Field(
        default=100, ge=1, description="customers each group needs before a difference is judged at all"
    )
    srm_alpha: float = Field(
        default=0.001, gt=0, lt=1, description="a split whose chi-squared p-value is below this is a mismatch"
    )
    lookback_days: int = Field(
        default=7, ge=1, le=90, description="earlier run dates re-measured every night (late engagement)"
    )


def conversion_for(campaign_conversion: Conversion | None, settings: MeasurementSettings) -> Conversion | None:
    return campaign_conversion or settings.conversion


def describe(conversion: Conversion) -> dict[str, Any]:
    return {"event": conversion.event, "within_hours": conversion.within_hours, "where": len(conversion.where)}
