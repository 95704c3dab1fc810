"""Target lists: who each active campaign sends to on a run date, when, and why everyone else not.

Guarantees: nobody opted out, suppressed or without the needed device is newly targeted; every
segment member not targeted has exactly one reason; caps hold over what customers receive in a
day, whichever run sent it (what already stands is kept and counted); lists, holdouts and
variants are the same on every engine for the same inputs and date.
"""

from campaign_orchestrator.targeting.arbitration import build_target_lists
from campaign_orchestrator.targeting.candidates import variant_of
from campaign_orchestrator.targeting.funnel import REASONS, Funnel, funnels

__all__ = ["REASONS", "Funnel", "build_target_lists", "funnels", "variant_of"]
