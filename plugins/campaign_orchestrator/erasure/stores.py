"""Where a customer's data lives in the warehouse, and what erasing does to each table.

Every table is in exactly one class (a test checks it, so a new table must be placed here):
- keyed by the customer (a `customer_id` column): its rows are deleted, except the ledger
  (`ANONYMISED`: the outbox keeps its counts and states, re-keyed to a random token, its rendered
  payload emptied) and the erasure's own work list (deleted when the request finishes);
- rows that may quote a customer in raw text (`CONTENT_DELETED`: the quarantine's raw values) are
  deleted when they name the customer's id or e-mail as a whole token;
- free text that may mention a customer (`TEXT_SCRUBBED`: run details, import errors, provider
  messages, diffs) has each mention replaced by `[erased]`;
- the rest hold no customer data (`WITHOUT_CUSTOMER_DATA`: counts, definitions, digests).
"""

from __future__ import annotations

import sqlalchemy as sa

from campaign_orchestrator.warehouse.tables import metadata

ANONYMISED = frozenset({"outbox"})
WORK_LIST = "erasure_subjects"
CONTENT_DELETED: dict[str, tuple[str, ...]] = {"quarantine": ("raw",)}
TEXT_SCRUBBED: dict[str, tuple[str, ...]] = {
    "run_log": ("detail",),
    "import_log": ("error", "warnings"),
    "delivery_batches": ("last_error",),
    "definition_changes": ("diff",),
}
WITHOUT_CUSTOMER_DATA = frozenset(
    {
        "segment_stats",
        "send_slots",
        "campaign_metrics",
        "erasure_requests",
        "erasure_tombstones",
        "erasure_forwarded",
    }
)


def keyed_tables() -> list[sa.Table]:
    """Tables whose rows belong to one customer, children before parents (deletes in this order)."""
    return [
        t
        for t in reversed(metadata.sorted_tables)
        if "customer_id" in t.c and t.name not in ANONYMISED and t.name != WORK_LIST
    ]


def unclassified() -> list[str]:
    """Tables in no class: each must be placed (a test asserts there are none)."""
    placed = {*ANONYMISED, WORK_LIST, *CONTENT_DELETED, *TEXT_SCRUBBED, *WITHOUT_CUSTOMER_DATA}
    return sorted(t.name for t in metadata.sorted_tables if "customer_id" not in t.c and t.name not in placed)
