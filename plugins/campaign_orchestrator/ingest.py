"""Importing the nightly source files into the warehouse through their data contracts.

All sources of a run load in one transaction: either every table is replaced (events are
appended, keyed by the import date so a re-run replaces its own batch) or, when any contract
breaks, none is and yesterday's data stays. Files stream in chunks, so memory stays flat.
Rejected rows go to `quarantine` with line numbers, every rule broken and the raw values.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pandas as pd
import sqlalchemy as sa
import yaml
from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.engine import Connection, Engine

from campaign_orchestrator.consent import refresh_preference_state
from campaign_orchestrator.contracts import Contract, ContractError
from campaign_orchestrator.tables import SOURCE_TABLES, events, import_log, quarantine
from campaign_orchestrator.warehouse import bulk_insert

log = logging.getLogger(__name__)

CHUNK_ROWS = 200_000


class SourceSpec(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    path: str = Field(description="file under the sources folder; {date} becomes the run date")
    format: Literal["csv"] = "csv"
    mode: Literal["replace", "append"] = "replace"
    required: bool = True


class SourcesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)
    sources: dict[str, SourceSpec]


def load_sources_config(path: Path) -> SourcesConfig:
    return SourcesConfig.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))


@dataclass
class SourceReport:
    source: str
    file: str
    rows_read: int = 0
    rows_loaded: int = 0
    quarantined: list[tuple[int, list[str], dict[str, Any]]] = field(default_factory=list)


@dataclass
class ImportReport:
    run_date: dt.date
    sources: list[SourceReport]

    def as_dict(self) -> dict[str, Any]:
        return {
            s.source: {
                "file": s.file,
                "rows_read": s.rows_read,
                "rows_loaded": s.rows_loaded,
                "rows_quarantined": len(s.quarantined),
            }
            for s in self.sources
        }


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _read_chunks(path: Path) -> Iterator[pd.DataFrame]:
    """Raw text chunks; the index is the 0-based data row number in the file (line = index + 2)."""
    reader = pd.read_csv(
        path, dtype=str, keep_default_na=False, chunksize=CHUNK_ROWS, compression="infer", encoding="utf-8"
    )
    offset = 0
    for chunk in reader:
        chunk.index = pd.RangeIndex(offset, offset + len(chunk))
        offset += len(chunk)
        yield chunk


def _header(path: Path) -> list[str]:
    return list(pd.read_csv(path, dtype=str, nrows=0, compression="infer").columns)


def _python_columns(frame: pd.DataFrame, contract: Contract, names: list[str]) -> list[list[Any]]:
    """Columns as Python values the DB drivers take: None for missing, date for dates."""
    out: list[list[Any]] = []
    for name in names:
        series = frame[name]
        kind = contract.columns[name].type
        if kind == "date":
            values = [None if pd.isna(v) else v.date() for v in series]
        elif kind == "datetime":
            values = [None if pd.isna(v) else v.to_pydatetime() for v in series]
        elif kind == "bool":
            values = [None if pd.isna(v) else bool(v) for v in series]
        elif kind == "int":
            values = [None if pd.isna(v) else int(v) for v in series]
        elif kind == "float":
            values = [None if pd.isna(v) else float(v) for v in series]
        else:
            values = series.tolist()
        out.append(values)
    return out


def _load_source(
    conn: Connection, source: str, spec: SourceSpec, path: Path, contract: Contract, run_date: dt.date
) -> SourceReport:
    table = SOURCE_TABLES[source]
    report = SourceReport(source=source, file=path.name)
    contract.check_header(_header(path), path.name)
    if spec.mode == "replace":
        conn.execute(table.delete())
    elif table is events:
        conn.execute(table.delete().where(table.c.import_date == run_date))
    names = [c for c in contract.columns if c in table.c]
    extra = {"import_date": run_date} if "import_date" in table.c else {}
    for chunk in _read_chunks(path):
        report.rows_read += len(chunk)
        checked = contract.validate_chunk(chunk, path.name)
        report.quarantined.extend(checked.quarantined)
        columns = _python_columns(checked.good, contract, names)
        if extra:
            columns.extend([[value] * len(checked.good) for value in extra.values()])
        report.rows_loaded += bulk_insert(conn, table, [*names, *extra], zip(*columns, strict=True))
    if report.rows_read == 0:
        raise ContractError(source, path.name, "file_not_empty", None, "the file has no data rows")
    share = len(report.quarantined) / report.rows_read
    if share > contract.max_quarantine_share:
        raise ContractError(
            source,
            path.name,
            "max_quarantine_share",
            None,
            f"{len(report.quarantined)} of {report.rows_read} rows ({share:.1%}) broke row rules; "
            f"the limit is {contract.max_quarantine_share:.1%}",
        )
    return report


def import_sources(
    engine: Engine,
    run_date: dt.date,
    sources_dir: Path,
    config: SourcesConfig,
    contracts: dict[str, Contract],
) -> ImportReport:
    """Validate and load every source in one transaction; raise ContractError and keep the old data."""
    reports: list[SourceReport] = []
    failure: ContractError | None = None
    try:
        with engine.begin() as conn:
            for source, spec in config.sources.items():
                if source not in SOURCE_TABLES:
                    raise ContractError(source, spec.path, "known_source", None, f"no table for source {source!r}")
                contract = contracts.get(source)
                if contract is None:
                    raise ContractError(source, spec.path, "contract_exists", None, "no data contract for this source")
                path = sources_dir / spec.path.format(date=run_date.isoformat())
                if not path.exists():
                    if spec.required:
                        raise ContractError(source, str(path.name), "file_exists", None, f"{path} does not exist")
                    continue
                try:
                    reports.append(_load_source(conn, source, spec, path, contract, run_date))
                except sa.exc.IntegrityError as exc:
                    raise ContractError(
                        source,
                        path.name,
                        "unique_key",
                        ",".join(contract.key) or None,
                        f"duplicate keys in the file ({type(exc.orig).__name__})",
                    ) from None
            refresh_preference_state(conn)
            _record(conn, run_date, reports, sources_dir, config)
    except ContractError as exc:
        failure = exc
    if failure is not None:
        # The load rolled back; keep what was learnt about bad rows so the data team can fix the export.
        with engine.begin() as conn:
            _record_quarantine(conn, run_date, reports)
        raise failure
    for rep in reports:
        log.info(
            "imported %s: %d read, %d loaded, %d quarantined",
            rep.source,
            rep.rows_read,
            rep.rows_loaded,
            len(rep.quarantined),
        )
    return ImportReport(run_date=run_date, sources=reports)


def _record_quarantine(conn: Connection, run_date: dt.date, reports: list[SourceReport]) -> None:
    conn.execute(quarantine.delete().where(quarantine.c.run_date == run_date))
    rows = [
        {
            "run_date": run_date,
            "source": r.source,
            "file": r.file,
            "line": idx + 2,
            "rules": json.dumps(rules),
            "raw": json.dumps(raw),
        }
        for r in reports
        for idx, rules, raw in r.quarantined
    ]
    if rows:
        conn.execute(quarantine.insert(), rows)


def _record(
    conn: Connection, run_date: dt.date, reports: list[SourceReport], sources_dir: Path, config: SourcesConfig
) -> None:
    _record_quarantine(conn, run_date, reports)
    conn.execute(import_log.delete().where(import_log.c.run_date == run_date))
    now = dt.datetime.now(dt.UTC).replace(tzinfo=None)
    conn.execute(
        import_log.insert(),
        [
            {
                "run_date": run_date,
                "source": r.source,
                "file": r.file,
                "sha256": _file_sha256(sources_dir / config.sources[r.source].path.format(date=run_date.isoformat())),
                "rows_read": r.rows_read,
                "rows_loaded": r.rows_loaded,
                "rows_quarantined": len(r.quarantined),
                "imported_at": now,
            }
            for r in reports
        ],
    )
