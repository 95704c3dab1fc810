"""Keys you can trust: what validating a source checks beyond one row at a time.

- Rows of child sources (events, preferences, app installs, list members) whose customer does not
  exist are quarantined as `unknown_customer` (or loaded and counted, as the contract says): the
  customers are tonight's customers file when it came, else the live table.
- An `event_id` column in the events contract deduplicates events: a repeat in the file is
  quarantined as `duplicate(event_id)`; an id an earlier night loaded is skipped at publish.
  Without it, exact repeats of a row are counted in a warning.
- Key churn for `replace` sources: the share of tonight's keys the live table does not hold, and
  of the live table's keys gone tonight, each within the band the contract sets.

Invariant: memory stays flat in rows: whole-source questions (repeats, churn) go through
`HashSpill` (8-byte hashes per row on disk, answered a bucket at a time), never the rows; only the
known customers' and seen event ids' hashes are held, 8 bytes each. Nothing here names a value
that is not a key.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from campaign_orchestrator.ingest.contracts import Contract, ContractError
from campaign_orchestrator.ingest.hash_spill import HashSpill
from campaign_orchestrator.ingest.sources import SourceSpec
from campaign_orchestrator.ingest.staging import ImportContext, StagedSource
from campaign_orchestrator.warehouse.tables import customers

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd

log = logging.getLogger(__name__)
CHILD_SOURCES = frozenset({"events", "preferences", "app_installs", "lists"})
READ_CHUNK = 200_000


def hashes_of(frame: pd.DataFrame | pd.Series) -> np.ndarray:
    """64-bit hashes of rows (or values) as text, the same whether read from a file or the warehouse."""
    import numpy as np
    import pandas as pd

    if isinstance(frame, pd.Series):
        return np.asarray(pd.util.hash_array(frame.astype(str).to_numpy(dtype=object)))
    return np.asarray(pd.util.hash_pandas_object(frame.astype(str), index=False).to_numpy())


@dataclass
class KnownCustomers:
    """Sorted hashes of the customer ids a child row may refer to; `where` says which ones."""

    hashes: np.ndarray
    where: str

    def unknown(self, ids: pd.Series) -> np.ndarray:
        """A mask of the ids that are not known customers."""
        import numpy as np

        found = hashes_of(ids)
        pos = np.searchsorted(self.hashes, found)
        pos[pos >= len(self.hashes)] = 0
        return ~(self.hashes[pos] == found) if len(self.hashes) else np.ones(len(found), dtype=bool)


def known_customers(engine: Engine, spec: SourceSpec | None, folder: Path, run_date: Any) -> KnownCustomers | None:
    """Tonight's customers file when it came (CSV or Parquet), else the live table; None when there
    is nothing to check against (no customers at all yet)."""
    import numpy as np
    import pandas as pd

    parts = _tonights_customers(spec, folder, run_date)
    if parts is not None and spec is not None:
        where = f"tonight's customers file {spec.file_path(folder, run_date).name}"
    elif spec is not None and (spec.format == "sql" or spec.file_path(folder, run_date).exists()):
        # Customers come tonight but not in a form read here (a query, a file pandas cannot
        # read): the table lacks tonight's new customers, so checking against it would quarantine
        # their rows. Skip the check rather than lose them.
        log.info("unknown-customer check skipped: tonight's customers are not readable before publish")
        return None
    else:  # no customers source tonight: the table is tonight's customers
        with engine.connect() as conn:
            parts = [
                hashes_of(chunk["customer_id"])
                for chunk in pd.read_sql(sa.select(customers.c.customer_id), conn, chunksize=READ_CHUNK)
            ]
        where = "the customers table"
    hashes = np.sort(np.concatenate(parts)) if parts else np.array([], dtype=np.uint64)
    if not len(hashes):
        return None
    return KnownCustomers(hashes, where)


def _tonights_customers(spec: SourceSpec | None, folder: Path, run_date: Any) -> list[np.ndarray] | None:
    """Hashes of the ids in tonight's customers file (CSV or Parquet), or None when there is none
    or it cannot be read: the customers source's own validation reports that."""
    import pandas as pd

    if spec is None or spec.format not in ("csv", "parquet") or not spec.file_path(folder, run_date).exists():
        return None
    path = spec.file_path(folder, run_date)
    try:
        if spec.format == "parquet":
            return [hashes_of(pd.read_parquet(path, columns=["customer_id"])["customer_id"])]
        chunks = pd.read_csv(
            path,
            usecols=lambda column: str(column).strip() == "customer_id",
            dtype=str,
            keep_default_na=False,
            chunksize=READ_CHUNK,
            sep=spec.delimiter,
            encoding_errors="replace",
            on_bad_lines="skip",  # the import quarantines those lines; their ids are not customers
        )
        return [hashes_of(chunk.iloc[:, 0].str.strip()) for chunk in chunks if chunk.shape[1] == 1]
    except (ValueError, OSError, pd.errors.ParserError) as exc:  # EmptyDataError is a ValueError
        log.info("customers file %s not usable for the unknown-customer check: %s", path.name, type(exc).__name__)
        return None


class Repeats:
    """Rows whose columns repeat an earlier row's in the same source: a sorted array of the hashes
    seen (8 bytes a row, no Python object per row)."""

    def __init__(self) -> None:
        import numpy as np

        self.seen: np.ndarray = np.array([], dtype=np.uint64)

    def mark(self, frame: pd.DataFrame) -> np.ndarray:
        """A mask of the rows that repeat a row of this chunk or of an earlier one."""
        import numpy as np
        import pandas as pd

        found = pd.util.hash_pandas_object(frame, index=False)
        repeat: np.ndarray = found.duplicated().to_numpy() | np.isin(found.to_numpy(), self.seen)
        self.seen = np.union1d(self.seen, found.to_numpy())
        return repeat


class RepeatCount:
    """How many rows repeat an earlier row exactly, counted once at the end (hashes on disk)."""

    def __init__(self) -> None:
        self.spill = HashSpill()

    def add(self, frame: pd.DataFrame) -> None:
        import pandas as pd

        self.spill.add(pd.util.hash_pandas_object(frame, index=False).to_numpy())

    def total(self) -> int:
        return self.spill.repeats()


@dataclass(frozen=True)
class KeyChurn:
    """Tonight's keys against the live table's, for a `replace` source."""

    new: int
    gone: int
    tonight: int
    before: int

    def describe(self) -> str:
        return (
            f"{self.new} of {self.tonight} keys are new ({self.new / max(self.tonight, 1):.1%}), "
            f"{self.gone} of {self.before} earlier keys are gone ({self.gone / max(self.before, 1):.1%})"
        )


def key_churn(engine: Engine, table: sa.Table, key: list[str], tonight: HashSpill) -> KeyChurn | None:
    """New and gone keys (hashes of the key as text); None when the table is empty (a first night)."""
    import pandas as pd

    with HashSpill() as before, engine.connect() as conn:
        for chunk in pd.read_sql(sa.select(*(table.c[k] for k in key)), conn, chunksize=READ_CHUNK):
            before.add(hashes_of(chunk[key]))
        if not before.count:
            return None
        new, gone, now, earlier = tonight.churn(before)
    return KeyChurn(new=new, gone=gone, tonight=now, before=earlier)


def check_key_churn(contract: Contract, source: str, file: str, churn: KeyChurn) -> None:
    """Stop the import when tonight's keys moved more than the contract's band allows."""
    band = contract.key_churn
    if band is None:
        return
    new_share = churn.new / max(churn.tonight, 1)
    gone_share = churn.gone / max(churn.before, 1)
    if new_share > band.max_new_share or gone_share > band.max_gone_share:
        raise ContractError(
            source,
            file,
            "key_churn",
            ",".join(contract.key),
            f"{churn.describe()}; accepted: at most {band.max_new_share:.1%} new and {band.max_gone_share:.1%} gone "
            "(a re-keyed export? check the ids before raising the band)",
        )


class RowChecks:
    """The checks of a row against other rows and tables (`integrity`): unknown customers of child
    sources, repeated event ids, exact repeats of events, and the keys key churn compares."""

    def __init__(
        self, engine: Engine, ctx: ImportContext, source: str, contract: Contract, folder: Path, staged: StagedSource
    ) -> None:
        self.contract, self.staged = contract, staged
        family = "lists" if source.startswith("list:") else source
        self.known = (
            known_customers(engine, ctx.customers, folder, ctx.run_date)
            if family in CHILD_SOURCES and "customer_id" in contract.columns
            else None
        )
        self.event_ids = Repeats() if family == "events" and "event_id" in contract.columns else None
        self.exact = RepeatCount() if family == "events" and self.event_ids is None else None
        self.churn_keys = HashSpill()
        self.track_churn = bool(contract.key) and contract.key_churn is not None and staged.mode == "replace"

    def check(self, chunk: pd.DataFrame, checked: Any) -> pd.DataFrame:
        """The chunk's good rows after these checks; rows they reject join `checked.quarantined`."""
        good = checked.good
        if self.known is not None and len(good):
            unknown = self.known.unknown(good["customer_id"])
            if self.contract.unknown_customers == "quarantine":
                good = _reject(chunk, good, unknown, "unknown_customer", checked)
            else:
                self.staged.unknown_customers += int(unknown.sum())
        if self.event_ids is not None and len(good):
            ids = good[["event_id"]]
            repeat = self.event_ids.mark(ids) & good["event_id"].notna().to_numpy()
            good = _reject(chunk, good, repeat, "duplicate(event_id)", checked)
        if self.exact is not None and len(good):
            self.exact.add(good)
        if self.track_churn:  # the export's keys as written, valid rows or not: churn is about ids
            keys = chunk[self.contract.key].astype("string").apply(lambda column: column.str.strip())
            self.churn_keys.add(hashes_of(keys[keys.notna().all(axis=1) & (keys != "").all(axis=1)]))
        return good

    def close(self) -> None:
        """Remove the spilled hashes."""
        self.churn_keys.close()
        if self.exact is not None:
            self.exact.spill.close()

    def finish(self) -> None:
        """Say what was counted rather than rejected: in the staged source and the task log."""
        staged, found = self.staged, []
        if staged.unknown_customers and self.known is not None:
            found.append(
                f"{staged.unknown_customers} row(s) for customers that do not exist in {self.known.where}"
                " were loaded (unknown_customers: count)"
            )
        repeats = self.exact.total() if self.exact is not None else 0
        if repeats:
            found.append(
                f"{repeats} row(s) repeat an earlier row exactly; declare an event_id column "
                "in the events contract to drop repeats"
            )
        for message in found:
            staged.warnings.append(message)
            log.warning("source %r, file %s: %s", staged.source, staged.file, message)


def _reject(chunk: pd.DataFrame, good: pd.DataFrame, mask: np.ndarray, reason: str, checked: Any) -> pd.DataFrame:
    """Move the masked good rows to the chunk's quarantine with `reason` and their raw values."""
    if not mask.any():
        return good
    bad_index = good.index[mask]
    raw_rows = chunk.loc[bad_index].astype(object).where(chunk.loc[bad_index].notna(), None)
    for idx, row in zip(bad_index, raw_rows.to_dict("records"), strict=True):
        checked.quarantined.append(
            (int(idx), [reason], {str(k): (None if v is None else str(v)) for k, v in row.items()})
        )
    return good[~mask]
