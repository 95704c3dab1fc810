"""The marketer console's table: every change it made to a definition, kept append-only.

One row per change (an edit, a submission, an approval, a pause or resume): who, when, which
file, the file's version before and after, and a unified diff. The console only ever inserts
rows, so the history of a campaign is the whole story of how its approved version came to be.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Index, Integer, String, Table, Text

from campaign_orchestrator.warehouse.metadata import NAME, metadata

definition_changes = Table(
    "definition_changes",
    metadata,
    Column("change_id", Integer, primary_key=True, autoincrement=True),
    Column("changed_at", DateTime, nullable=False),
    Column("changed_by", NAME, nullable=False),
    Column("action", String(32), nullable=False),  # edit, submit, approve, pause, resume
    Column("kind", String(32), nullable=False),  # campaigns, segments, templates, lifecycles
    Column("definition_id", NAME, nullable=False),
    Column("file", String(255), nullable=False),  # relative to the marketing folder
    Column("version_before", String(64)),  # sha256 of the file's bytes; NULL: it did not exist
    Column("version_after", String(64)),  # NULL: the change removed the file
    Column("diff", Text, nullable=False),
    Index("ix_definition_changes_definition", "kind", "definition_id", "changed_at"),
)
