"""The bench's synthetic inbox: customers, their in-app consent, about three live messages each,
a few public notices and some read states, generated with numpy chunk by chunk.

Each chunk comes out as PostgreSQL COPY text blocks (tab-separated, `\\N` for NULL), so the loader
streams millions of rows without building them as Python objects twice, and memory stays bounded
by the chunk size whatever the customer count.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from campaign_orchestrator.delivery.message_store import STORE_COLUMNS

MESSAGES_PER_CUSTOMER = 3  # on average: 2, 3 or 4 each, exactly 3 per customer summed over a chunk
PUBLIC_MESSAGES = 5
CONSENT_SHARE = 0.95  # in-app opt-in; the rest opted out and see only public notices
CAPPED_SHARE = 0.30  # messages whose campaign has display caps (the feed then reads display_counts)
SEEN_SHARE = 0.15  # messages the app already reported seen (half of them read too)
CAMPAIGNS = 24
TIMEZONES = (
    "America/New_York",
    "America/Los_Angeles",
    "America/Sao_Paulo",
    "Europe/London",
    "Europe/Berlin",
    "Europe/Paris",
    "Asia/Kolkata",
    "Asia/Tokyo",
    "Australia/Sydney",
    "UTC",
)
NAMES = ("Ana", "Ben", "Chloé", "Dev", "Emi", "Farid", "Grace", "Hugo", "Ines", "Jon")
NULL = "\\N"

CUSTOMER_COLUMNS = ("customer_id", "timezone", "country", "locale")
PREFERENCE_COLUMNS = ("customer_id", "channel", "enabled", "ts")
MESSAGE_COLUMNS = STORE_COLUMNS  # the columns the night's message store writes
STATE_COLUMNS = ("customer_id", "message_id", "seen_at", "read_at", "updated_at")


@dataclass(frozen=True)
class Chunk:
    """COPY text (one line per row, newline-terminated) per table for one range of customers."""

    customers: str
    preferences: str
    messages: str
    states: str
    message_rows: int


def customer_id(index: int) -> str:
    """The id of the customer at 0-based `index` (as the demo data spells them: C0000001...)."""
    return f"C{index + 1:07d}"


def expected_messages(customers: int) -> int:
    return customers * MESSAGES_PER_CUSTOMER + PUBLIC_MESSAGES


def _stamp(seconds: Any) -> list[str]:
    """Epoch seconds (numpy int64) as timestamp text COPY accepts."""
    import numpy as np

    return list(np.asarray(seconds, dtype="datetime64[s]").astype(str))


def _uuids(rng: Any, n: int) -> list[str]:
    """Random version-4 UUID strings: the message store's ids are uuid4, so the primary key sees
    the same scattered inserts and lookups as production."""
    import numpy as np

    hi = rng.integers(0, 2**63, size=n, dtype=np.int64).astype(np.uint64)
    lo = rng.integers(0, 2**63, size=n, dtype=np.int64).astype(np.uint64)
    hi = (hi & np.uint64(0xFFFFFFFFFFFF0FFF)) | np.uint64(0x4000)
    lo = (lo & np.uint64(0x3FFFFFFFFFFFFFFF)) | np.uint64(0x8000000000000000)
    out = []
    for h, low in zip(hi.tolist(), lo.tolist(), strict=True):
        a, b = f"{h:016x}", f"{low:016x}"
        out.append(f"{a[:8]}-{a[8:12]}-{a[12:]}-{b[:4]}-{b[4:]}")
    return out


def _content(header: str, body: str, campaign: str) -> str:
    """The rendered message as delivery stores it (COPY-escaped: our texts hold no tab or backslash)."""
    return (
        f'{{"layout":"MOBILE_FEED","header":"{header}","body":"{body}","buttons":[],'
        f'"data":{{"campaign":"{campaign}","source":"bench"}}}}'
    )


def _cap(values: list[int], mask: list[bool]) -> list[str]:
    return [str(v) if m else NULL for v, m in zip(values, mask, strict=True)]


def public_messages(now: dt.datetime) -> str:
    """A few notices for every customer (customer_id NULL): outages, a forced update."""
    start = (now - dt.timedelta(days=1)).isoformat(sep=" ")
    end = (now + dt.timedelta(days=365)).isoformat(sep=" ")
    lines = []
    for i in range(PUBLIC_MESSAGES):
        message_id = f"00000000-0000-4000-8000-{i + 1:012d}"
        content = _content(f"Notice {i + 1}", "Scheduled maintenance tonight from 02:00 to 03:00 UTC.", f"notice_{i}")
        row = (message_id, NULL, f"notice_{i}", "default", content, "1", start, end, NULL, NULL, NULL, start)
        lines.append("\t".join(row))
    return "\n".join(lines) + "\n"


def chunks(customers: int, now: dt.datetime, seed: int = 11, size: int = 50_000) -> Iterator[Chunk]:
    """COPY blocks for customers [0, customers), `size` customers at a time, deterministic per seed."""
    import numpy as np

    epoch = int(now.replace(tzinfo=dt.UTC).timestamp())
    for start in range(0, customers, size):
        m = min(size, customers - start)
        rng = np.random.default_rng([seed, start])
        yield _chunk(rng, np, start, m, epoch)


def _chunk(rng: Any, np: Any, start: int, m: int, epoch: int) -> Chunk:
    ids = [customer_id(i) for i in range(start, start + m)]
    zones = rng.integers(0, len(TIMEZONES), m).tolist()
    customers_text = "".join(f"{c}\t{TIMEZONES[z]}\tUS\ten-US\n" for c, z in zip(ids, zones, strict=True))
    consent = (rng.random(m) < CONSENT_SHARE).tolist()
    pref_ts = _stamp(epoch - rng.integers(86_400, 400 * 86_400, m))
    preferences = "".join(
        f"{c}\tin_app\t{'t' if ok else 'f'}\t{ts}\n" for c, ok, ts in zip(ids, consent, pref_ts, strict=True)
    )

    q = m // 4  # a quarter get 2 messages and a quarter 4, so the chunk holds exactly 3 per customer
    per = 3 + rng.permutation(np.concatenate([np.full(q, -1), np.full(q, 1), np.zeros(m - 2 * q, dtype=int)]))
    owner = np.repeat(np.arange(m), per)
    n = int(owner.size)
    message_ids = _uuids(rng, n)
    campaign = rng.integers(0, CAMPAIGNS, n).tolist()
    variant = rng.integers(0, 3, n).tolist()
    priority = rng.integers(1, 6, n).tolist()
    begins = epoch - rng.integers(3_600, 7 * 86_400, n)
    starts, ends = _stamp(begins), _stamp(epoch + rng.integers(180 * 86_400, 365 * 86_400, n))
    created = _stamp(begins - rng.integers(0, 3_600, n))
    capped = rng.random(n) < CAPPED_SHARE
    session = _cap(rng.integers(1, 3, n).tolist(), (capped & (rng.random(n) < 0.3)).tolist())
    daily = _cap([3] * n, capped.tolist())
    total = _cap([10] * n, (capped & (rng.random(n) < 0.6)).tolist())
    names = rng.integers(0, len(NAMES), n).tolist()
    owners = owner.tolist()
    lines = []
    for i in range(n):
        c = f"campaign_{campaign[i]:02d}"
        header = f"{NAMES[names[i]]}, your offer {campaign[i] + 1} is here"
        body = f"Save up to {5 * priority[i] + 10}% on the spring range until Sunday. Tap to see what is new."
        lines.append(
            f"{message_ids[i]}\t{ids[owners[i]]}\t{c}\t{'ABC'[variant[i]]}\t{_content(header, body, c)}\t"
            f"{priority[i]}\t{starts[i]}\t{ends[i]}\t{session[i]}\t{daily[i]}\t{total[i]}\t{created[i]}\n"
        )
    seen = np.flatnonzero(rng.random(n) < SEEN_SHARE)
    read = rng.random(seen.size) < 0.5
    seen_at = _stamp(begins[seen] + rng.integers(60, 3_600, seen.size))
    states = "".join(
        f"{ids[owners[i]]}\t{message_ids[i]}\t{s}\t{s if r else NULL}\t{s}\n"
        for i, s, r in zip(seen.tolist(), seen_at, read.tolist(), strict=True)
    )
    return Chunk(customers_text, preferences, "".join(lines), states, n)
