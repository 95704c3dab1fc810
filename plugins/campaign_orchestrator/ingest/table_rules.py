"""The table-level rules of a source, checked once its rows are staged: not empty (unless an
increment), a unique key (naming up to 10 duplicates), the quarantine share and the row-count band.
A broken rule stops the import; nothing is published.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from campaign_orchestrator.ingest.contracts import Contract, ContractError
from campaign_orchestrator.ingest.hash_spill import HashSpill
from campaign_orchestrator.ingest.staging import ImportContext, StagedSource
from campaign_orchestrator.warehouse.tables import import_log


def _last_accepted_rows(engine: Engine, source: str, run_date: dt.date) -> int | None:
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(import_log.c.rows_read)
            .where(import_log.c.source == source, import_log.c.status == "published", import_log.c.run_date < run_date)
            .order_by(import_log.c.run_date.desc())
            .limit(1)
        ).first()
    return int(row[0]) if row else None


def table_rules(
    engine: Engine, ctx: ImportContext, source: str, contract: Contract, staged: StagedSource, keys: HashSpill
) -> None:
    file = staged.file
    if staged.rows_read == 0:
        if staged.mode == "replace":  # the table would become empty: never what a night means
            raise ContractError(source, file, "file_not_empty", None, "the file has a header but no data rows")
        return  # an increment with nothing new is a normal night
    if keys.count:
        # 64-bit key hashes: a false duplicate needs a collision, about 1 in 10^6 for 5M keys.
        duplicates = keys.duplicates()
        if duplicates.rows:
            shown = ", ".join(_duplicate_keys(Path(staged.validated_path), contract.key, duplicates.sample))
            raise ContractError(
                source,
                file,
                "unique_key",
                ",".join(contract.key),
                f"{duplicates.rows} rows share {duplicates.distinct} key value(s), e.g. {shown}",
            )
    share = staged.rows_quarantined / staged.rows_read
    if share > contract.max_quarantine_share:
        top = ", ".join(f"{rule}: {n}" for rule, n in list(staged.quarantined_by_rule.items())[:3])
        raise ContractError(
            source,
            file,
            "max_quarantine_share",
            None,
            f"{staged.rows_quarantined} of {staged.rows_read} rows ({share:.1%}) broke row rules ({top}); "
            f"the limit is {contract.max_quarantine_share:.1%}",
        )
    band = contract.row_count_band
    previous = _last_accepted_rows(engine, source, ctx.run_date) if band else None
    if band and previous:
        ratio = staged.rows_read / previous
        if ratio < band.min_ratio or (band.max_ratio is not None and ratio > band.max_ratio):
            detail = (
                f"{staged.rows_read} rows is {ratio:.2f}x the last accepted import ({previous} rows); "
                f"accepted: {band.min_ratio}x to {band.max_ratio}x"
            )
            if source not in ctx.accept_row_count:
                raise ContractError(source, file, "row_count_band", None, detail)
            # a person said this count is expected (the first nightly delta after a backfill): kept on record
            staged.warnings.append(f"row_count_band accepted by the operator: {detail}")


def _duplicate_keys(validated: Path, key: list[str], sample: list[int]) -> list[str]:
    """The keys of the duplicated hashes in `sample`, read back from the staged file in one
    streaming pass: only run once the rule broke."""
    import numpy as np
    import pandas as pd

    wanted = set(sample)
    found: dict[int, str] = {}
    chunks = pd.read_csv(validated, usecols=key, dtype=str, keep_default_na=False, chunksize=200_000)
    for chunk in chunks:
        chunk_hashes = pd.util.hash_pandas_object(chunk[key], index=False).to_numpy()
        hit = np.isin(chunk_hashes, list(wanted))
        rows = chunk.loc[hit, key].itertuples(index=False)
        for h, row in zip(chunk_hashes[hit].tolist(), rows, strict=True):
            if h in wanted and h not in found:
                found[h] = "(" + ", ".join(row) + ")" if len(key) > 1 else str(row[0])
        if len(found) == len(wanted):
            break
    return list(found.values())


class ImportFailed(ContractError):
    """One or more sources broke their contracts; every failure is listed, nothing was published."""

    def __init__(self, failures: list[ContractError]) -> None:
        first = failures[0]
        super().__init__(first.source, first.file, first.rule, first.column, first.detail)
        self.failures = failures
        self.args = (
            f"{len(failures)} source(s) broke their data contracts; nothing was published:\n"
            + "\n".join(f"- {f}" for f in failures),
        )

    def __str__(self) -> str:
        return str(self.args[0])
