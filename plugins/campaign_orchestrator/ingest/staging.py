"""What validating a source stages for publish: its counts (`StagedSource`), the canonical CSV of its
good rows, its quarantine and its line in `import_log`. Nothing here touches a live table.
"""

from __future__ import annotations

import datetime as dt
import json
from collections import Counter
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

if TYPE_CHECKING:
    import pandas as pd

from campaign_orchestrator.clock import utcnow
from campaign_orchestrator.connections import env_url_resolver
from campaign_orchestrator.ingest.contracts import Contract, event_properties
from campaign_orchestrator.ingest.sources import SourceSpec
from campaign_orchestrator.warehouse.event_properties import events_table
from campaign_orchestrator.warehouse.tables import SOURCE_TABLES, import_log, quarantine

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
    warnings: list[str] = field(default_factory=list)  # column names and counts, never values
    unknown_customers: int = 0  # child rows loaded although their customer does not exist ("count")
    rows_erased: int = 0  # rows of erased customers (tombstones): neither loaded nor quarantined
    checked_from: str = ""  # when validation read the tombstones (ISO): publish checks later ones

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ImportContext:
    run_date: dt.date
    sources_dir: Path
    archive_dir: Path  # the run's folder: <archive>/<date>
    from_archive: bool = False
    resolve_url: Callable[[str], str] = lambda conn_id: _no_resolver(conn_id)
    customers: SourceSpec | None = None  # tonight's customers source: what child rows must refer to
    # Sources whose row count may leave its band this once (an operator's `--accept-row-count`).
    accept_row_count: frozenset[str] = frozenset()

    @property
    def parameters(self) -> dict[str, Any]:
        """Suite parameters: `run_end` is the first instant after the run date (UTC, naive)."""
        return {"run_end": dt.datetime.combine(self.run_date + dt.timedelta(days=1), dt.time())}


def _no_resolver(conn_id: str) -> str:

    return env_url_resolver(conn_id)


def target_table(source: str, contract: Contract | None = None) -> sa.Table:
    """The live table a source loads into; for events, with a column per declared property."""
    if source == "events" and contract is not None:
        return events_table(event_properties({"events": contract}))
    return SOURCE_TABLES["lists" if source.startswith("list:") else source]


def max_lengths(table: sa.Table) -> dict[str, int]:
    return {c.name: int(c.type.length) for c in table.c if isinstance(c.type, sa.String) and c.type.length}


def extra_columns(source: str, table: sa.Table, run_date: dt.date) -> dict[str, Any]:
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


def _record_quarantine(conn: Connection, rows: list[dict[str, Any]]) -> None:
    if rows:
        conn.execute(quarantine.insert(), rows)


def log_status(engine: Engine, ctx: ImportContext, staged: StagedSource, status: str, error: str | None) -> None:
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
                warnings=json.dumps(staged.warnings) if staged.warnings else None,
            )
        )


class Quarantine:
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
