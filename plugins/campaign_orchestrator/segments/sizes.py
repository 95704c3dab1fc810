"""Live sizes for the segment builder: the whole rule and each of its top-level blocks, in one pass.

Invariants:
- A rule is sized only through `compile_rule`: every value a marketer typed is a bound parameter,
  never SQL text, exactly as in the night (`segments.memberships`).
- One statement scans `customers` once and counts the whole rule and every block not already
  known (`SUM(CASE WHEN ... THEN 1 ELSE 0 END)`, portable to every engine); the sample of members
  comes from the same pass (the least customer id in each of a few hash buckets), so it costs no
  second evaluation of the predicate.
- A block's count is cached by (compiled SQL, bound parameters, data version): the data version is
  the newest `import_log` row, so a new import invalidates every count, and an unchanged block is
  not counted again while the marketer edits another one.
- On PostgreSQL the statement runs in its own read-only transaction with a larger `work_mem` and
  JIT off (`SET LOCAL`: nothing outlives the transaction); other engines run it as is.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.sql.elements import ColumnElement

from campaign_orchestrator.definitions.rules import Vocabulary
from campaign_orchestrator.segments.compile import Inline, compile_rule
from campaign_orchestrator.segments.windows import LocalWindows
from campaign_orchestrator.warehouse.sqlfuncs import hash_bucket
from campaign_orchestrator.warehouse.tables import customers, import_log

SAMPLE_SALT = "console-sample"
PG_WORK_MEM = "256MB"


def top_level_blocks(rule: Any) -> tuple[str, list[Any]]:
    """('all' | 'any' | 'not' | 'one', the blocks a builder shows and sizes one by one)."""
    if isinstance(rule, dict) and len(rule) == 1:
        (key, value), *_ = rule.items()
        if key in ("all", "any") and isinstance(value, list):
            return key, list(value)
        if key == "not":
            return "not", [value]
    return "one", [rule]


@dataclass(frozen=True)
class Sizes:
    total: int
    blocks: list[int]
    sample: list[str]
    customers: int
    seconds: float
    counted_blocks: int  # how many block counts this call computed (the rest came from the cache)

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "blocks": self.blocks,
            "sample": self.sample,
            "customers": self.customers,
            "seconds": round(self.seconds, 3),
            "counted_blocks": self.counted_blocks,
        }


def data_version(conn: Connection) -> str:
    """The newest import (date and time): a count made before it may be stale."""
    row = conn.execute(sa.select(sa.func.max(import_log.c.imported_at), sa.func.count()).select_from(import_log)).one()
    return f"{row[0]}|{row[1]}"


class SizeCache:
    """Counts by (SQL, parameters, data version); the oldest are dropped past `limit` entries."""

    def __init__(self, limit: int = 512) -> None:
        self.limit = limit
        self._items: OrderedDict[tuple[str, str, str], int] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str, str]) -> int | None:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                return self._items[key]
            return None

    def put(self, key: tuple[str, str, str], value: int) -> None:
        with self._lock:
            self._items[key] = value
            self._items.move_to_end(key)
            while len(self._items) > self.limit:
                self._items.popitem(last=False)


def _key(conn: Connection, predicate: ColumnElement[bool], version: str) -> tuple[str, str, str]:
    compiled = sa.select(sa.literal(1)).where(predicate).compile(dialect=conn.dialect)
    return str(compiled), repr(sorted((k, repr(v)) for k, v in compiled.params.items())), version


def _flag(predicate: ColumnElement[bool]) -> ColumnElement[int]:
    return sa.case((predicate, 1), else_=0)


def tune_estimate_transaction(conn: Connection) -> None:
    """PostgreSQL only: room for the hash aggregates, and no JIT compile for a one-off count."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"SET LOCAL work_mem = '{PG_WORK_MEM}'")
        conn.exec_driver_sql("SET LOCAL jit = off")


def rule_sizes(
    conn: Connection,
    rule: Any,
    vocab: Vocabulary,
    run_date: dt.date,
    inline: Inline,
    windows: LocalWindows | None = None,
    sample_size: int = 5,
    cache: SizeCache | None = None,
    part: str = "all",
) -> Sizes:
    """The size of each top-level block of `rule` (`part` "blocks"), of the whole rule with a few
    members ("total"), or both in one pass ("all"), on the current warehouse. Blocks found in
    `cache` are not counted again. `conn` should be at the start of a transaction (the
    PostgreSQL settings are `SET LOCAL`)."""
    started = time.perf_counter()
    kind, blocks = top_level_blocks(rule)
    predicates = [compile_rule(b, vocab, run_date, inline, windows) for b in blocks]
    version = data_version(conn) if cache is not None else ""
    keys = [_key(conn, p, version) for p in predicates]
    counts: list[int | None] = [None] * len(blocks)
    if part in ("blocks", "all") and cache is not None:
        counts = [cache.get(k) for k in keys]
    wanted = [i for i, c in enumerate(counts) if c is None] if part in ("blocks", "all") else []
    tune_estimate_transaction(conn)
    total, sample, population = -1, [], -1
    if part in ("total", "all"):
        row = _one_pass(conn, predicates, wanted, kind, sample_size)
    elif wanted:
        row = _one_pass(conn, [predicates[i] for i in wanted], list(range(len(wanted))), None, 0)
        row = {"customers": row["customers"], **{f"block_{i}": row[f"block_{j}"] for j, i in enumerate(wanted)}}
    else:
        row = {}
    for i in wanted:
        counts[i] = int(row[f"block_{i}"] or 0)
        if cache is not None:
            cache.put(keys[i], int(counts[i] or 0))
    if row:
        population = int(row["customers"] or 0)
    if part in ("total", "all"):
        total = int(row["total"] or 0)
        sample = sorted(str(row[f"s{k}"]) for k in range(sample_size) if row[f"s{k}"] is not None)
    return Sizes(
        total=total,
        blocks=[-1 if c is None else int(c) for c in counts],
        sample=sample,
        customers=population,
        seconds=time.perf_counter() - started,
        counted_blocks=len(wanted),
    )


def _one_pass(
    conn: Connection, predicates: list[ColumnElement[bool]], summed: list[int], kind: str | None, sample_size: int
) -> Mapping[str, Any]:
    """One scan of `customers`: a 0/1 flag per block (each block evaluated once per customer),
    the sum of the flags in `summed`, and with `kind` the whole rule's size and a sample.

    The flags sit in a derived table behind `OFFSET 0`, which PostgreSQL never inlines: inlined,
    each use of a flag would evaluate its block again, and a block in the select list plans as a
    per-customer probe; behind the fence it plans as one hashed pass over the events. SQLite and
    MariaDB accept the same spelling.
    """
    flags = (
        sa.select(customers.c.customer_id, *(_flag(p).label(f"b{i}") for i, p in enumerate(predicates)))
        .offset(0)
        .subquery("flags")
    )
    columns: list[Any] = [sa.func.count().label("customers")]
    columns += [sa.func.sum(flags.c[f"b{i}"]).label(f"block_{i}") for i in summed]
    if kind is None:
        return dict(conn.execute(sa.select(*columns).select_from(flags)).one()._mapping)
    ones = [flags.c[f"b{i}"] == 1 for i in range(len(predicates))]
    whole: ColumnElement[bool]
    if kind == "all":
        whole = sa.and_(*ones)
    elif kind == "any":
        whole = sa.or_(*ones)
    elif kind == "not":
        whole = flags.c.b0 == 0
    else:
        whole = ones[0]
    bucket = hash_bucket(flags.c.customer_id, SAMPLE_SALT, max(sample_size, 1))
    member = (
        sa.select(
            flags.c.customer_id,
            *(flags.c[f"b{i}"] for i in summed),
            _flag(whole).label("member"),
            sa.case((whole, bucket)).label("bucket"),
        )
        .offset(0)
        .subquery("member")
    )
    columns = [sa.func.count().label("customers"), sa.func.sum(member.c.member).label("total")]
    columns += [sa.func.sum(member.c[f"b{i}"]).label(f"block_{i}") for i in summed]
    columns += [
        sa.func.min(sa.case((member.c.bucket == k, member.c.customer_id))).label(f"s{k}") for k in range(sample_size)
    ]
    return dict(conn.execute(sa.select(*columns).select_from(member)).one()._mapping)
