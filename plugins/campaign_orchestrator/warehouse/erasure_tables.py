"""The erasure's tables: the requests and their receipts, the salted-hash tombstones, the work list
and what each provider has already accepted.

Only `erasure_subjects` holds plain customer ids and e-mail addresses, and only while its request
is unfinished: the last step of an erasure deletes its rows. The receipt (`erasure_requests`) and
the tombstones hold no personal data: counts, times, and HMAC-SHA256 digests under a secret salt.
"""

from __future__ import annotations

from sqlalchemy import Column, DateTime, Integer, PrimaryKeyConstraint, String, Table, Text

from campaign_orchestrator.warehouse.metadata import ID, NAME, metadata

# One row per request: the receipt. `stores` and `destinations` are JSON of counts per store and
# per provider destination; each step's time says it is done (a re-run skips it).
erasure_requests = Table(
    "erasure_requests",
    metadata,
    Column("request_id", String(36), primary_key=True),
    Column("requested_at", DateTime, nullable=False),
    Column("requested_by", String(16), nullable=False),  # cli | inbox
    Column("customers", Integer, nullable=False),
    Column("status", String(16), nullable=False),  # accepted -> finished
    Column("rows_done_at", DateTime),
    Column("files_done_at", DateTime),
    Column("forwarded_at", DateTime),
    Column("finished_at", DateTime),
    Column("stores", Text),
    Column("destinations", Text),
    Column("waiting_for", Text),  # why the request is not finished yet, without personal data
)

# What a later export is checked against: digests of the normalised customer id and e-mail.
erasure_tombstones = Table(
    "erasure_tombstones",
    metadata,
    Column("digest", String(64), primary_key=True),
    Column("kind", String(16), nullable=False),  # customer_id | email
    Column("request_id", String(36), nullable=False),
    Column("created_at", DateTime, nullable=False),
)

# The work list of unfinished requests (plain values, so a re-run can finish the job); `token` is
# what the customer's ledger rows are re-keyed to.
erasure_subjects = Table(
    "erasure_subjects",
    metadata,
    Column("request_id", String(36), nullable=False),
    Column("customer_id", ID, nullable=False),
    Column("email", String(254)),
    Column("first_name", String(100)),  # a report that names the customer loses their name too
    Column("token", String(40), nullable=False),
    PrimaryKeyConstraint("request_id", "customer_id"),
)

# Each deletion request a provider destination accepted (at most 50 ids each): never sent again.
erasure_forwarded = Table(
    "erasure_forwarded",
    metadata,
    Column("request_id", String(36), nullable=False),
    Column("destination", NAME, nullable=False),
    Column("part", Integer, nullable=False),
    Column("ids", Integer, nullable=False),
    Column("attempts", Integer, nullable=False),
    Column("accepted_at", DateTime, nullable=False),
    PrimaryKeyConstraint("request_id", "destination", "part"),
)
