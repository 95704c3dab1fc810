"""Importing the night's sources through their data contracts, in two steps.

1. validate (one per source, in parallel: mapped DAG tasks or worker processes): stream the
   input in chunks, coerce types, run the Great Expectations suite, quarantine bad rows with
   their row number, rules and raw values, check the table-level rules (not empty, unique key,
   quarantine share, row-count band), archive the raw input and write the good rows as a
   canonical CSV next to it. Nothing in the live tables changes.
2. publish (once, after every source validated): load every canonical file into the live
   tables in ONE transaction: `replace` empties the table first, `append` replaces the run
   date's batch, `merge` inserts only new keys (the preference history, suppressions). A
   failed source means no publish: yesterday's tables stay exactly as they were.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import TYPE_CHECKING

from sqlalchemy.engine import Engine

if TYPE_CHECKING:  # imported where rows are read: the package is imported by light commands too
    import pandas as pd

from campaign_orchestrator.clock import utcnow
from campaign_orchestrator.ingest.contracts import Contract, ContractError
from campaign_orchestrator.ingest.hash_spill import HashSpill
from campaign_orchestrator.ingest.integrity import RowChecks, check_key_churn, key_churn
from campaign_orchestrator.ingest.sources import (
    ArchiveWriter,
    BadLines,
    SourceError,
    SourceSpec,
    archive_file,
    header,
    read_chunks,
)
from campaign_orchestrator.ingest.staging import (
    CanonicalWriter,
    ImportContext,
    Quarantine,
    StagedSource,
    extra_columns,
    log_status,
    max_lengths,
    target_table,
)
from campaign_orchestrator.ingest.table_rules import ImportFailed, table_rules
from campaign_orchestrator.ingest.tombstones import Tombstones, drop_erased_rows
from campaign_orchestrator.warehouse.tables import SOURCE_TABLES

log = logging.getLogger(__name__)
__all__ = ["ImportContext", "ImportFailed", "StagedSource", "validate_source"]


def validate_source(
    engine: Engine, ctx: ImportContext, source: str, spec: SourceSpec, contract: Contract
) -> StagedSource:
    """Check one source against its contract and stage its good rows; raise ContractError if it breaks."""
    t0 = time.perf_counter()
    folder = ctx.archive_dir / "raw" if ctx.from_archive else ctx.sources_dir
    staged = StagedSource(source=source, file=spec.describe(folder, ctx.run_date), mode=spec.mode)
    if spec.format != "sql" and not spec.required and not spec.file_path(folder, ctx.run_date).exists():
        staged.mode = "skip"  # an optional input that did not come tonight: its table stays as it is
        log_status(engine, ctx, staged, "skipped", None)
        return staged
    try:
        _validate_into(engine, ctx, source, spec, contract, folder, staged)
    except (ContractError, SourceError) as exc:
        staged.duration_s = round(time.perf_counter() - t0, 3)
        error = (
            exc if isinstance(exc, ContractError) else ContractError(source, staged.file, "readable", None, str(exc))
        )
        log_status(engine, ctx, staged, "failed", str(error))
        raise error from None
    staged.duration_s = round(time.perf_counter() - t0, 3)
    log_status(engine, ctx, staged, "validated", None)
    log.info(
        "validated %s: %d read, %d good, %d quarantined %s in %.1fs",
        source,
        staged.rows_read,
        staged.rows_loaded,
        staged.rows_quarantined,
        staged.quarantined_by_rule or "",
        staged.duration_s,
    )
    return staged


def _validate_into(
    engine: Engine,
    ctx: ImportContext,
    source: str,
    spec: SourceSpec,
    contract: Contract,
    folder: Path,
    staged: StagedSource,
) -> None:
    import pandas as pd

    table = target_table(source, contract)
    safe_name = source.replace(":", "_")
    file_name = staged.file
    _check_input(ctx, source, spec, contract, folder, staged)
    names = [c for c in contract.columns if c in table.c]
    lengths = max_lengths(table)
    validated = ctx.archive_dir / "validated" / f"{safe_name}.csv"
    validated.parent.mkdir(parents=True, exist_ok=True)
    staged.validated_path = str(validated)
    bad_lines = BadLines()
    sql_archive = ArchiveWriter(ctx.archive_dir / "raw" / f"{safe_name}.csv") if spec.format == "sql" else None
    rejected = Quarantine(engine, ctx.run_date, source, file_name)
    first = True
    writer = CanonicalWriter(validated, contract, names, extra_columns(source, table, ctx.run_date))
    rows = RowChecks(engine, ctx, source, contract, folder, staged)
    keys = HashSpill()  # the contract key's hashes, for the unique-key rule
    try:
        erased = _tombstones(engine, ctx, source, folder, staged)
        try:
            for chunk in read_chunks(spec, folder, ctx.run_date, bad_lines, ctx.resolve_url):
                if first and spec.format != "csv":
                    contract.check_header([str(c) for c in chunk.columns], file_name)
                    _note_undeclared(contract, [str(c) for c in chunk.columns], staged)
                chunk = _without_erased(chunk, erased, staged)
                if sql_archive is not None:
                    sql_archive.write(chunk)
                staged.rows_read += len(chunk)
                checked = contract.validate_chunk(chunk, file_name, ctx.parameters, lengths)
                good = rows.check(chunk, checked)
                rejected.add([(idx + 1, broken, raw) for idx, broken, raw in checked.quarantined])
                if contract.key:
                    # 8 bytes per row instead of the key text: memory stays flat on big files.
                    keys.add(pd.util.hash_pandas_object(good[contract.key], index=False).to_numpy())
                writer.write(good)
                staged.rows_loaded += len(good)
                first = False
        finally:
            writer.close()
        rows.finish()
        if sql_archive is not None:
            sql_archive.close()
            staged.archived_as = str(sql_archive.target)
        drop_erased_rows(erased, bad_lines, spec, staged, folder, ctx)
        rejected.add([(number, [why], {"_line": text}) for number, why, text in bad_lines.rows])
        staged.rows_read += len(bad_lines.rows)
        rejected.flush()
        staged.quarantined_by_rule = dict(rejected.rules.most_common())
        staged.rows_quarantined = staged.rows_read - staged.rows_loaded
        table_rules(engine, ctx, source, contract, staged, keys)
        if rows.churn_keys.count and staged.mode == "replace" and source in SOURCE_TABLES:
            churn = key_churn(engine, table, contract.key, rows.churn_keys)
            if churn is not None:
                check_key_churn(contract, source, file_name, churn)
                if churn.new or churn.gone:
                    staged.warnings.append(f"key churn: {churn.describe()}")
                    log.info("source %r, file %s: key churn: %s", source, file_name, churn.describe())
    finally:
        keys.close()
        rows.close()


def _tombstones(
    engine: Engine, ctx: ImportContext, source: str, folder: Path, staged: StagedSource
) -> Tombstones | None:
    """The tombstones rows are checked against (None without any: no salt needed then)."""
    staged.checked_from = utcnow().isoformat()
    erased = Tombstones.load(engine)
    if erased is not None and source != "customers":
        erased.learn_from_customers(ctx.customers, folder, ctx.run_date)
    return erased


def _without_erased(chunk: pd.DataFrame, erased: Tombstones | None, staged: StagedSource) -> pd.DataFrame:
    """The chunk without the rows of erased customers (counted, never named)."""
    if erased is None:
        return chunk
    gone = erased.mask(chunk)
    if gone.any():
        staged.rows_erased += int(gone.sum())
        return chunk[~gone]
    return chunk


def _check_input(
    ctx: ImportContext, source: str, spec: SourceSpec, contract: Contract, folder: Path, staged: StagedSource
) -> None:
    """A file input exists and has the contract's header; its raw copy goes to the archive."""
    if spec.format == "sql":
        return
    path = spec.file_path(folder, ctx.run_date)
    if not path.exists():
        raise ContractError(source, staged.file, "file_exists", None, f"{path} does not exist")
    if spec.format == "csv":
        columns = header(path, spec)
        contract.check_header(columns, staged.file)
        _note_undeclared(contract, columns, staged)
    if not ctx.from_archive:
        relative = Path(str(spec.path).format(date=ctx.run_date.isoformat()))
        staged.archived_as = str(archive_file(path, ctx.archive_dir / "raw" / relative.parent))


def _note_undeclared(contract: Contract, columns: list[str], staged: StagedSource) -> None:
    """Columns the contract does not declare are not loaded: say so once per source and file."""
    undeclared = [c for c in columns if c not in contract.columns]
    if undeclared:
        message = (
            f"{len(undeclared)} column(s) the contract does not declare, not loaded: {undeclared[:20]}"
            " (declare them in the contract, or fix a misspelling)"
        )
        staged.warnings.append(message)
        log.warning("source %r, file %s: %s", staged.source, staged.file, message)
