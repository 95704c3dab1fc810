"""Erasure: a customer removed from every store on request (`campaigns erase`, or the inbox's
server-key `DELETE /v1/customers/{customer_id}`), with a receipt.

Guarantee: from the moment a request is accepted (one transaction: the request, the salted-hash
tombstones, a suppression, and every message of theirs that no request has left for cancelled),
nothing more is sent to its customers; then every warehouse row keyed by them is deleted (the
ledger's rows anonymised, the quarantine rows and free text that quote them removed or scrubbed),
every archived input and report file is rewritten without them, and each provider destination that
supports deletion receives their ids at `/users/delete` exactly once per 50-id part. Each step is
idempotent and recorded, so a crash is finished by running again (`campaigns erase --pending`).
Afterwards their id, e-mail and name are nowhere but in the tombstones, which hold only HMAC
digests; a later export that contains them loads none of their rows.
"""

from campaign_orchestrator.erasure.accept import NoCustomers
from campaign_orchestrator.erasure.process import (
    Places,
    continue_erasure,
    erase_customers,
    pending_requests,
    request_erasure,
)
from campaign_orchestrator.erasure.receipt import Receipt, read_receipt
from campaign_orchestrator.ingest.tombstones import ErasureSaltMissing, erasure_salt

__all__ = [
    "ErasureSaltMissing",
    "NoCustomers",
    "Places",
    "Receipt",
    "continue_erasure",
    "erase_customers",
    "erasure_salt",
    "pending_requests",
    "read_receipt",
    "request_erasure",
]
