"""The night's inputs: sources (files or source databases), their data contracts, validation into
staged files with a quarantine, and publishing into the live tables.

Guarantee: a row that breaks its contract is quarantined with its file, row number, rules and raw
values, never silently dropped (a child row of an unknown customer, a repeated event id); what is
not loaded but not wrong (undeclared columns, counted repeats, key churn in its band) is said by
name, never by value; a source that breaks a table-level rule stops the import naming source,
file, column, rule and counts; and publishing is one transaction, so a night with any broken
source changes no live table.
"""

from campaign_orchestrator.ingest.contracts import Contract, ContractError, load_contracts
from campaign_orchestrator.ingest.publish import publish
from campaign_orchestrator.ingest.validate import ImportFailed, StagedSource, validate_source

__all__ = [
    "Contract",
    "ContractError",
    "ImportFailed",
    "StagedSource",
    "load_contracts",
    "publish",
    "validate_source",
]
