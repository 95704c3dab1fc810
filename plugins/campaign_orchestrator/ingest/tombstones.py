"""Tombstones at import: an erased customer is never created again by a later export.

A tombstone is the HMAC-SHA256, under a secret salt (`CAMPAIGNS_ERASURE_SALT`, or the password of
the Airflow connection `campaigns_erasure`), of a normalised customer id or e-mail address, written
by `campaigns erase` (see `erasure/`). Validating a source drops every row whose customer id or
e-mail hashes to one, and every child row of a customer whose profile tonight carries a
tombstoned e-mail: such rows are neither loaded nor quarantined (a quarantine row keeps raw
values) and are counted, never named. Publishing checks once more for tombstones written after
the night's sources were validated.

Invariant: no plain value of an erased customer is read into anything but process memory, and a
warehouse with tombstones refuses to import without the salt (it could not tell who is erased).
"""

from __future__ import annotations

import csv
import hashlib
import hmac
import logging
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from campaign_orchestrator.connections import parse_connection
from campaign_orchestrator.errors import CampaignError, InvalidInput
from campaign_orchestrator.warehouse.tables import customers, erasure_tombstones

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

    from campaign_orchestrator.ingest.sources import BadLines, SourceSpec
    from campaign_orchestrator.ingest.staging import ImportContext, StagedSource

log = logging.getLogger(__name__)
SALT_ENV = "CAMPAIGNS_ERASURE_SALT"
CONNECTION_ENV = "AIRFLOW_CONN_CAMPAIGNS_ERASURE"
MIN_SALT_LENGTH = 32
KINDS = ("customer_id", "email")
READ_CHUNK = 200_000


class ErasureSaltMissing(CampaignError, InvalidInput):
    """No (or too short a) salt for the tombstones: erasing, or importing into a warehouse that has
    tombstones, cannot proceed (retrying cannot fix it)."""


def erasure_salt(environ: Mapping[str, str] | None = None) -> bytes:
    """The secret salt from CAMPAIGNS_ERASURE_SALT, else the connection `campaigns_erasure`'s password."""
    env = os.environ if environ is None else environ
    salt = env.get(SALT_ENV)
    if not salt and env.get(CONNECTION_ENV):
        conn = parse_connection(env[CONNECTION_ENV])
        salt = conn.get("password") or (conn.get("extra") or {}).get("salt")
    if not salt:
        raise ErasureSaltMissing(
            f"no erasure salt: set {SALT_ENV} (32+ random characters, the same for every process that erases or "
            f"imports, kept secret) or the Airflow connection campaigns_erasure ({CONNECTION_ENV}) with it as password"
        )
    if len(str(salt)) < MIN_SALT_LENGTH:
        raise ErasureSaltMissing(f"the erasure salt must be at least {MIN_SALT_LENGTH} characters")
    return str(salt).encode()


def normalise(kind: str, value: str) -> str:
    """Ids compare as written (without surrounding blanks); e-mail addresses case-insensitively."""
    text = value.strip()
    return text.lower() if kind == "email" else text


def tombstone_digest(salt: bytes, kind: str, value: str) -> str:
    return hmac.new(salt, f"{kind}:{normalise(kind, value)}".encode(), hashlib.sha256).hexdigest()


@dataclass
class Tombstones:
    """The digests an import checks rows against, and the ids it learnt are erased (plain, in memory)."""

    salt: bytes = field(repr=False)
    ids: frozenset[str]
    emails: frozenset[str]
    erased_ids: set[str] = field(default_factory=set, repr=False)

    @classmethod
    def load(cls, bind: Engine | Connection, since: Any = None) -> Tombstones | None:
        """Every tombstone (or those written at or after `since`); None when there is none, and then
        no salt is needed."""
        query = sa.select(erasure_tombstones.c.kind, erasure_tombstones.c.digest)
        if since is not None:
            query = query.where(erasure_tombstones.c.created_at >= since)
        if isinstance(bind, Engine):
            with bind.connect() as conn:
                rows = conn.execute(query).all()
        else:
            rows = bind.execute(query).all()
        if not rows:
            return None
        salt = erasure_salt()
        return cls(
            salt,
            frozenset(d for k, d in rows if k == "customer_id"),
            frozenset(d for k, d in rows if k == "email"),
        )

    def _hit(self, kind: str, values: Iterable[Any]) -> set[str]:
        """The distinct values whose digest is a tombstone of `kind`."""
        digests = self.ids if kind == "customer_id" else self.emails
        if not digests:
            return set()
        return {
            v
            for v in {str(v) for v in values if v is not None and str(v).strip()}
            if tombstone_digest(self.salt, kind, v) in digests
        }

    def mask(self, frame: pd.DataFrame) -> np.ndarray:
        """Rows (raw text) whose customer id is erased or whose e-mail is tombstoned; the ids of the
        latter become erased too, so their other rows in this file go with them."""
        import numpy as np

        erased = np.zeros(len(frame), dtype=bool)
        if "email" in frame.columns and self.emails:
            emails = frame["email"].astype("string")
            hit = self._hit("email", emails.unique())
            if hit:
                by_email = emails.isin(hit).fillna(False).to_numpy(dtype=bool)
                if "customer_id" in frame.columns:
                    self.erased_ids.update(str(v).strip() for v in frame["customer_id"][by_email])
                erased |= by_email
        if "customer_id" in frame.columns:
            ids = frame["customer_id"].astype("string").str.strip()
            self.erased_ids.update(self._hit("customer_id", ids.unique()))
            erased |= ids.isin(self.erased_ids).fillna(False).to_numpy(dtype=bool)
        return erased

    def names_erased(self, fields: Iterable[str]) -> bool:
        """Whether any of a line's fields (a row the parser could not split) is an erased id or e-mail."""
        values = [f.strip().strip('"').strip() for f in fields]
        return bool(
            {v for v in values if v in self.erased_ids} | self._hit("customer_id", values) | self._hit("email", values)
        )

    def learn_from_customers(self, spec: SourceSpec | None, folder: Path, run_date: Any) -> None:
        """For a child source: the ids of tonight's profiles with a tombstoned e-mail are erased too
        (a customer re-exported under a new id). Read from tonight's customers file when it is one."""
        import pandas as pd

        if not self.emails or spec is None or spec.format not in ("csv", "parquet"):
            return
        path = spec.file_path(folder, run_date)
        if not path.exists():
            return
        try:
            if spec.format == "parquet":
                frames: Iterable[pd.DataFrame] = [pd.read_parquet(path, columns=["customer_id", "email"])]
            else:
                frames = pd.read_csv(
                    path,
                    usecols=lambda c: str(c).strip() in ("customer_id", "email"),
                    dtype=str,
                    keep_default_na=False,
                    chunksize=READ_CHUNK,
                    sep=spec.delimiter,
                    encoding_errors="replace",
                    on_bad_lines="skip",
                )
            for frame in frames:
                frame.columns = [str(c).strip() for c in frame.columns]
                if {"customer_id", "email"} <= set(frame.columns):
                    self.mask(frame)
        except (ValueError, OSError, pd.errors.ParserError):
            return  # the customers source's own validation reports an unreadable file


def drop_erased_rows(
    erased: Tombstones | None, bad: BadLines, spec: SourceSpec, staged: StagedSource, folder: Path, ctx: ImportContext
) -> None:
    """After a source's rows were read: lines the parser could not split that name an erased
    customer are dropped too, and the raw copy in the archive is rewritten without the erased rows
    (a query source's copy was written without them already). Says how many, never who."""
    from campaign_orchestrator.ingest.scrub import Values, drop_rows

    if erased is None:
        return
    kept = []
    for number, why, text in bad.rows:
        fields = next(csv.reader([text], delimiter=spec.delimiter), [])
        if erased.names_erased(fields):
            staged.rows_erased += 1
        else:
            kept.append((number, why, text))
    bad.rows[:] = kept
    if not staged.rows_erased:
        return
    raw = Path(staged.archived_as) if staged.archived_as else None
    if ctx.from_archive and spec.format != "sql":
        raw = spec.file_path(folder, ctx.run_date)
    values = Values.of(erased.erased_ids)
    if raw is not None and spec.format != "sql" and raw.exists() and values is not None:
        drop_rows(raw, values)
    message = f"{staged.rows_erased} row(s) of erased customers not loaded (tombstones)"
    staged.warnings.append(message)
    log.info("source %r, file %s: %s", staged.source, staged.file, message)


def drop_erased_since(conn: Connection, tables: Iterable[sa.Table], since: Any) -> int:
    """Delete from `tables` (just published) the rows of customers tombstoned at or after `since`:
    an erasure accepted while the night's sources were already validated. Reads the loaded ids in
    chunks (bounded memory); returns the rows deleted."""
    found = Tombstones.load(conn, since)
    if found is None:
        return 0
    for table in tables:
        if "customer_id" not in table.c:
            continue
        columns = [table.c.customer_id] + ([customers.c.email] if table is customers else [])
        result = conn.execute(sa.select(*columns).distinct()).yield_per(READ_CHUNK)
        for part in result.partitions():
            found.erased_ids |= found._hit("customer_id", [r[0] for r in part])
            if len(columns) > 1:
                emails = found._hit("email", [r[1] for r in part])
                found.erased_ids |= {str(r[0]) for r in part if r[1] is not None and str(r[1]) in emails}
    deleted = 0
    ids = sorted(found.erased_ids)
    for table in tables:
        if "customer_id" in table.c:
            for start in range(0, len(ids), 500):
                deleted += int(
                    conn.execute(table.delete().where(table.c.customer_id.in_(ids[start : start + 500]))).rowcount or 0
                )
    return deleted
