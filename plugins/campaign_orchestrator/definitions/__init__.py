"""What the marketers edit in `marketing/`: settings, segments and their rule language, lifecycles,
campaigns, templates, deep links and public notices.

Guarantee: loading checks everything that can be checked without data (shapes, references,
rule names and values, reading limits) and reports every problem at once with its file, path
and line, or returns definitions that the later stages can trust. Nothing here touches the
warehouse.
"""

from campaign_orchestrator.definitions.campaigns import Campaign
from campaign_orchestrator.definitions.loader import DefinitionError, Definitions, load_definitions
from campaign_orchestrator.definitions.settings import Settings
from campaign_orchestrator.definitions.templates import Template

__all__ = ["Campaign", "DefinitionError", "Definitions", "Settings", "Template", "load_definitions"]
