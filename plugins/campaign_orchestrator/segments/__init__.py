"""Segment memberships and lifecycle stages per run date, computed in the warehouse.

Guarantee: every rule compiles to parameter-bound SQL over allow-listed columns (a rule cannot run
SQL), every condition is TRUE or FALSE (never NULL), segments are computed after what they use,
windows start where the settings say (UTC, or each customer's local midnight) with the same result
on every engine, and each customer has exactly one stage per lifecycle and run date.
"""

from campaign_orchestrator.segments.compile import compile_rule
from campaign_orchestrator.segments.memberships import compute_memberships, estimate

__all__ = ["compile_rule", "compute_memberships", "estimate"]
