"""The tests that turn counts into a judgement, all from statsmodels and scipy (no hand-written statistics).

- Uplift of a conversion rate against a control: the difference with Newcomb's 95% interval and
  the ratio with its log-adjusted interval (`confint_proportions_2indep`), the p-value from the
  score test (`test_proportions_2indep`) - the two-proportion comparison Braze reports.
- Revenue per customer: Welch's t-test from each group's mean and spread (`ttest_ind_from_stats`).
- A/B variants: a chi-squared test of independence over converted / not converted per variant.
- Sample-ratio mismatch: a chi-squared goodness-of-fit test of the observed split against the configured one.

Every function returns None where the test is undefined (an empty group, a single variant)
instead of a number that would look like a finding.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass

ALPHA = 0.05


@dataclass(frozen=True)
class Uplift:
    """Treated rate minus control rate (absolute) and treated / control - 1 (relative)."""

    absolute: float
    low: float
    high: float
    relative: float | None
    relative_low: float | None
    relative_high: float | None
    p_value: float

    @property
    def significant(self) -> bool:
        return self.p_value < ALPHA


def _finite(value: float) -> float | None:
    return float(value) if value is not None and math.isfinite(value) else None


def uplift(converted: int, n: int, control_converted: int, control_n: int) -> Uplift | None:
    """The treated group's conversion rate against the control's, with 95% intervals."""
    if n <= 0 or control_n <= 0:
        return None
    from statsmodels.stats.proportion import confint_proportions_2indep, test_proportions_2indep

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # zero cells: the ratio is undefined, said below
        low, high = confint_proportions_2indep(
            converted, n, control_converted, control_n, method="newcomb", compare="diff", alpha=ALPHA
        )
        test = test_proportions_2indep(converted, n, control_converted, control_n, method="score", compare="diff")
        relative: tuple[float | None, float | None, float | None] = (None, None, None)
        if control_converted > 0 and converted > 0:
            r_low, r_high = confint_proportions_2indep(
                converted, n, control_converted, control_n, method="log-adjusted", compare="ratio", alpha=ALPHA
            )
            ratio = (converted / n) / (control_converted / control_n)
            relative = (ratio - 1, _finite(r_low - 1), _finite(r_high - 1))
    p_value = _finite(float(test.pvalue))
    return Uplift(
        absolute=converted / n - control_converted / control_n,
        low=float(low),
        high=float(high),
        relative=relative[0],
        relative_low=relative[1],
        relative_high=relative[2],
        p_value=1.0 if p_value is None else p_value,
    )


@dataclass(frozen=True)
class Spread:
    """A group's per-customer sum and sum of squares: enough for a mean and a variance."""

    n: int
    total: float
    squares: float

    @property
    def mean(self) -> float:
        return self.total / self.n if self.n else 0.0

    @property
    def std(self) -> float:
        if self.n < 2:
            return 0.0
        return math.sqrt(max(0.0, (self.squares - self.total**2 / self.n) / (self.n - 1)))


def revenue_p_value(treated: Spread, control: Spread) -> float | None:
    """Welch's t-test of revenue per customer; None when a group is too small or has no spread."""
    if treated.n < 2 or control.n < 2 or (treated.std == 0 and control.std == 0):
        return None
    from scipy.stats import ttest_ind_from_stats

    result = ttest_ind_from_stats(
        treated.mean, treated.std, treated.n, control.mean, control.std, control.n, equal_var=False
    )
    return _finite(float(result.pvalue))


def variants_p_value(groups: Sequence[tuple[int, int]]) -> float | None:
    """Chi-squared test that the variants convert alike: `groups` is (converted, n) per variant."""
    table = [[c, n - c] for c, n in groups if n > 0]
    if len(table) < 2 or sum(r[0] for r in table) == 0 or all(r[1] == 0 for r in table):
        return None
    from scipy.stats import chi2_contingency

    return _finite(float(chi2_contingency(table).pvalue))


def split_p_value(observed: Sequence[int], shares: Sequence[float]) -> float | None:
    """Chi-squared goodness of fit of observed group sizes to the configured shares (summing to 1)."""
    if any(o > 0 and s <= 0 for o, s in zip(observed, shares, strict=True)):
        return 0.0  # members in a group the configuration leaves empty: certainly not the configured split
    pairs = [(o, s) for o, s in zip(observed, shares, strict=True) if s > 0]
    total = sum(o for o, _ in pairs)
    if len(pairs) < 2 or total == 0:
        return None
    from scipy.stats import chisquare

    weight = sum(s for _, s in pairs)
    expected = [total * s / weight for _, s in pairs]
    return _finite(float(chisquare([o for o, _ in pairs], expected).pvalue))
