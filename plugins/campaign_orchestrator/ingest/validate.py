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

import datetime as dt
import json
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

if TYPE_CHECKING:  # imported where rows are read: the package is imported by light commands too
    import numpy as np
    import pandas as pd

from campaign_orchestrator.clock import utcnow
from campaign_orchestrator.connections import env_url_resolver
from campaign_orchestrator.ingest.contracts import Contract, ContractError
from campaign_orchestrator.ingest.sources import (
    ArchiveWriter,
    BadLines,
    SourceError,
    SourceSpec,
    archive_file,
    header,
    read_chunks,
)
from campaign_orchestrator.warehouse.tables import SOURCE_TABLES, import_log, quarantine

log = logging.getLogger(__name__)

QUARANTINE_BATCH = 20_000


@dataclass
class StagedSource:
    """What validating one source produced: counts for the report and the file publish loads."""

    source: str
    file: str
    mode: str
    rows_read: int = 0
    rows_loaded: int = 0
    quarantined_by_rule: dict[str, int] = field(default_factory=dict)
    rows_quarantined: int = 0
    duration_s: float = 0.0
    validated_path: str = ""
    archived_as: str = ""

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ImportContext:
    run_date: dt.date
    sources_dir: Path
    archive_dir: Path  # the run's folder: <archive>/<date>
    from_archive: bool = False
    resolve_url: Callable[[str], str] = lambda conn_id: _no_resolver(conn_id)

    @property
    def parameters(self) -> dict[str, Any]:
        """Suite parameters: `run_end` is the first instant after the run date (UTC, naive)."""
        return {"run_end": dt.datetime.combine(self.run_date + dt.timedelta(days=1), dt.time())}


def _no_resolver(conn_id: str) -> str:

    return env_url_resolver(conn_id)


def _target(source: str) -> sa.Table:
    return SOURCE_TABLES["lists" if source.startswith("list:") else source]


def _max_lengths(table: sa.Table) -> dict[str, int]:
    return {c.name: int(c.type.length) for c in table.c if isinstance(c.type, sa.String) and c.type.length}


def _extra_columns(source: str, table: sa.Table, run_date: dt.date) -> dict[str, Any]:
    extra: dict[str, Any] = {}
    if "import_date" in table.c:
        extra["import_date"] = run_date.isoformat()
    if source.startswith("list:"):
        extra["list_id"] = source.split(":", 1)[1]
    return extra


_ARROW_TYPES = {"string": "string", "int": "int64", "float": "float64", "bool": "bool"}


class CanonicalWriter:
    """The good rows of a source as a canonical CSV (header = column names, empty = NULL, times as
    'YYYY-MM-DD HH:MM:SS.ffffff' UTC): what publish loads. Written by Arrow's C++ CSV writer."""

    def __init__(self, path: Path, contract: Contract, names: list[str], extra: dict[str, Any]) -> None:
        import pyarrow as pa

        self.path, self.contract, self.names, self.extra = path, contract, names, extra
        fields = [pa.field(n, pa.type_for_alias(_ARROW_TYPES.get(contract.columns[n].type, "string"))) for n in names]
        fields += [pa.field(k, pa.string()) for k in extra]
        self.schema = pa.schema(fields)
        self._writer: Any = None

    def write(self, good: pd.DataFrame) -> None:
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.csv as pcsv

        arrays = []
        for name in self.names:
            kind = self.contract.columns[name].type
            series = good[name]
            if kind in ("date", "datetime"):
                stamps = pa.array(series.astype("datetime64[us]"), from_pandas=True)
                fmt = "%Y-%m-%d" if kind == "date" else "%Y-%m-%d %H:%M:%S"
                arrays.append(pc.strftime(stamps, format=fmt))
            else:
                target = self.schema.field(name).type
                arrays.append(pa.array(series, type=target, from_pandas=True))
        arrays += [pa.array([value] * len(good), type=pa.string()) for value in self.extra.values()]
        table = pa.Table.from_arrays(arrays, schema=self.schema)
        if self._writer is None:
            self._writer = pcsv.CSVWriter(
                str(self.path), self.schema, write_options=pcsv.WriteOptions(quoting_style="needed")
            )
        self._writer.write_table(table)

    def close(self) -> None:
        import pyarrow.csv as pcsv

        if self._writer is None:  # no rows at all: a header alone, so publish can still read the file
            self._writer = pcsv.CSVWriter(str(self.path), self.schema)
        self._writer.close()


def _last_accepted_rows(engine: Engine, source: str, run_date: dt.date) -> int | None:
    with engine.connect() as conn:
        row = conn.execute(
            sa.select(import_log.c.rows_read)
            .where(import_log.c.source == source, import_log.c.status == "published", import_log.c.run_date < run_date)
            .order_by(import_log.c.run_date.desc())
            .limit(1)
        ).first()
    return int(row[0]) if row else None


def _record_quarantine(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(quarantine.insert(), rows)


def _log_status(engine: Engine, ctx: ImportContext, staged: StagedSource, status: str, error: str | None) -> None:
    with engine.begin() as conn:
        conn.execute(
            import_log.delete().where(import_log.c.run_date == ctx.run_date, import_log.c.source == staged.source)
        )
        conn.execute(
            import_log.insert().values(
                run_date=ctx.run_date,
                source=staged.source,
                file=staged.file,
                status=status,
                rows_read=staged.rows_read,
                rows_loaded=staged.rows_loaded,
                rows_quarantined=staged.rows_quarantined,
                quarantined_by_rule=json.dumps(staged.quarantined_by_rule),
                duration_s=staged.duration_s,
                error=error,
                archived_as=staged.archived_as,
                imported_at=utcnow(),
            )
        )


def validate_source(
    engine: Engine, ctx: ImportContext, source: str, spec: SourceSpec, contract: Contract
) -> StagedSource:
    """Check one source against its contract and stage its good rows; raise ContractError if it breaks."""
    t0 = time.perf_counter()
    folder = ctx.archive_dir / "raw" if ctx.from_archive else ctx.sources_dir
    staged = StagedSource(source=source, file=spec.describe(folder, ctx.run_date), mode=spec.mode)
    if spec.format != "sql" and not spec.required and not spec.file_path(folder, ctx.run_date).exists():
        staged.mode = "skip"  # an optional input that did not come tonight: its table stays as it is
        _log_status(engine, ctx, staged, "skipped", None)
        return staged
    try:
        _validate_into(engine, ctx, source, spec, contract, folder, staged)
    except (ContractError, SourceError) as exc:
        staged.duration_s = round(time.perf_counter() - t0, 3)
        error = (
            exc if isinstance(exc, ContractError) else ContractError(source, staged.file, "readable", None, str(exc))
        )
        _log_status(engine, ctx, staged, "failed", str(error))
        raise error from None
    staged.duration_s = round(time.perf_counter() - t0, 3)
    _log_status(engine, ctx, staged, "validated", None)
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

    table = _target(source)
    safe_name = source.replace(":", "_")
    file_name = staged.file
    _check_input(ctx, source, spec, contract, folder, staged)
    names = [c for c in contract.columns if c in table.c]
    max_lengths = _max_lengths(table)
    validated = ctx.archive_dir / "validated" / f"{safe_name}.csv"
    validated.parent.mkdir(parents=True, exist_ok=True)
    staged.validated_path = str(validated)
    bad_lines = BadLines()
    keys: list[np.ndarray] = []
    sql_archive = ArchiveWriter(ctx.archive_dir / "raw" / f"{safe_name}.csv") if spec.format == "sql" else None
    rejected = _Quarantine(engine, ctx.run_date, source, file_name)
    first = True
    writer = CanonicalWriter(validated, contract, names, _extra_columns(source, table, ctx.run_date))
    try:
        for chunk in read_chunks(spec, folder, ctx.run_date, bad_lines, ctx.resolve_url):
            if first and spec.format != "csv":
                contract.check_header([str(c) for c in chunk.columns], file_name)
            if sql_archive is not None:
                sql_archive.write(chunk)
            staged.rows_read += len(chunk)
            checked = contract.validate_chunk(chunk, file_name, ctx.parameters, max_lengths)
            rejected.add([(idx + 1, broken, raw) for idx, broken, raw in checked.quarantined])
            if contract.key:
                # 8 bytes per row instead of the key text: memory stays flat on big files.
                keys.append(pd.util.hash_pandas_object(checked.good[contract.key], index=False).to_numpy())
            writer.write(checked.good)
            staged.rows_loaded += len(checked.good)
            first = False
    finally:
        writer.close()
    if sql_archive is not None:
        sql_archive.close()
        staged.archived_as = str(sql_archive.target)
    rejected.add([(number, [why], {"_line": text}) for number, why, text in bad_lines.rows])
    staged.rows_read += len(bad_lines.rows)
    rejected.flush()
    staged.quarantined_by_rule = dict(rejected.rules.most_common())
    staged.rows_quarantined = staged.rows_read - staged.rows_loaded
    _table_rules(engine, ctx, source, contract, staged, keys)


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
        contract.check_header(header(path, spec), staged.file)
    if not ctx.from_archive:
        relative = Path(str(spec.path).format(date=ctx.run_date.isoformat()))
        staged.archived_as = str(archive_file(path, ctx.archive_dir / "raw" / relative.parent))


class _Quarantine:
    """Rejected rows of one source, written in batches of QUARANTINE_BATCH; the run date's earlier
    quarantine of the source is replaced. Counts the rules broken."""

    def __init__(self, engine: Engine, run_date: dt.date, source: str, file_name: str) -> None:
        self.engine, self.run_date, self.source, self.file_name = engine, run_date, source, file_name
        self.pending: list[dict[str, Any]] = []
        self.rules: Counter[str] = Counter()
        with engine.begin() as conn:
            conn.execute(quarantine.delete().where(quarantine.c.run_date == run_date, quarantine.c.source == source))

    def add(self, rows: list[tuple[int, list[str], Any]]) -> None:
        """(1-based row number, rules broken, raw values) per rejected row."""
        for number, broken, raw in rows:
            self.rules.update(broken)
            self.pending.append(
                {
                    "run_date": self.run_date,
                    "source": self.source,
                    "file": self.file_name,
                    "row_number": number,
                    "rules": json.dumps(broken),
                    "raw": json.dumps(raw, ensure_ascii=False),
                }
            )
        if len(self.pending) >= QUARANTINE_BATCH:
            self.flush()

    def flush(self) -> None:
        with self.engine.begin() as conn:
            _record_quarantine(conn, self.pending)
        self.pending.clear()


def _table_rules(
    engine: Engine, ctx: ImportContext, source: str, contract: Contract, staged: StagedSource, keys: list[np.ndarray]
) -> None:
    import numpy as np
    import pandas as pd

    file = staged.file
    if staged.rows_read == 0:
        raise ContractError(source, file, "file_not_empty", None, "the file has a header but no data rows")
    if keys:
        # 64-bit key hashes: a false duplicate needs a collision, about 1 in 10^6 for 5M keys.
        hashes = pd.Series(np.concatenate(keys))
        duplicated = hashes.duplicated(keep=False)
        if duplicated.any():
            raise ContractError(
                source,
                file,
                "unique_key",
                ",".join(contract.key),
                f"{int(duplicated.sum())} rows share {hashes[duplicated].nunique()} key value(s)",
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
            raise ContractError(
                source,
                file,
                "row_count_band",
                None,
                f"{staged.rows_read} rows is {ratio:.2f}x the last accepted import ({previous} rows); "
                f"accepted: {band.min_ratio}x to {band.max_ratio}x",
            )


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
