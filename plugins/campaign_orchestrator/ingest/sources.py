"""Where the nightly inputs come from, and reading them in chunks: CSV (plain or gzipped), Parquet,
or an SQL query against a source database.

Sources are declared in `data_contracts/sources.yaml`. Every reader yields raw chunks whose index
is the 0-based data row number (row_number = index + 1), so a quarantined row can be found again
in the file. Readers never hold a whole file in memory. The raw input of every run is archived
under `<archive>/<date>/raw/`, so a night can be replayed (`campaigns import --from-archive`).
"""

from __future__ import annotations

import csv
import datetime as dt
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import yaml
from pydantic import Field, ValidationError, model_validator

from campaign_orchestrator.definitions.base import StrictModel
from campaign_orchestrator.errors import CampaignError, InvalidInput
from campaign_orchestrator.warehouse.engine import create_warehouse_engine, redacted

if TYPE_CHECKING:  # imported where files are read: reading the configuration stays light
    import pandas as pd

CHUNK_ROWS = 200_000
REPLACEMENT_CHAR = "\ufffd"

UrlResolver = Callable[[str], str]


class SourceError(CampaignError, InvalidInput, RuntimeError):
    """A source cannot be read at all (missing, unreadable, unreachable): the import stops."""


class SourceSpec(StrictModel):
    format: Literal["csv", "parquet", "sql"] = "csv"
    path: str | None = Field(default=None, description="file under the sources folder; {date} is the run date")
    delimiter: str = Field(default=",", min_length=1, max_length=1)
    query: str | None = Field(default=None, description="SELECT for format sql; it may use :run_date")
    url: str | None = Field(default=None, description="SQLAlchemy URL of the source database (format sql)")
    connection_id: str | None = Field(default=None, description="or an Airflow connection id (format sql)")
    mode: Literal["replace", "append", "merge"] = "replace"
    required: bool = True

    @model_validator(mode="after")
    def _where(self) -> SourceSpec:
        if self.format == "sql":
            if not self.query or not (self.url or self.connection_id):
                raise ValueError("an sql source needs query and url or connection_id")
        elif not self.path:
            raise ValueError(f"a {self.format} source needs path")
        return self

    def file_path(self, folder: Path, run_date: dt.date) -> Path:
        assert self.path is not None
        return folder / self.path.format(date=run_date.isoformat())

    def describe(self, folder: Path, run_date: dt.date) -> str:
        """What to call the input in messages: a file name, or the source database (password hidden)."""
        if self.format == "sql":
            from campaign_orchestrator.warehouse.engine import redacted

            return f"query on {redacted(self.url) if self.url else 'connection ' + str(self.connection_id)}"
        return self.file_path(folder, run_date).name


class ListSpec(SourceSpec):
    """A static list (e.g. event attendees); its members land in `list_members` under the list's id."""

    mode: Literal["replace", "append"] = "replace"


class SourcesConfig(StrictModel):
    sources: dict[str, SourceSpec]
    lists: dict[str, ListSpec] = Field(default_factory=dict)

    def all(self) -> dict[str, SourceSpec]:
        """Every input by its import name: sources by name, lists as `list:<id>`."""
        out: dict[str, SourceSpec] = dict(self.sources)
        out.update({f"list:{name}": spec for name, spec in self.lists.items()})
        return out


def load_sources_config(path: Path) -> SourcesConfig:
    try:
        return SourcesConfig.model_validate(yaml.safe_load(path.read_text(encoding="utf-8")))
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        raise SourceError(f"{path}: {exc}") from None


@dataclass
class BadLines:
    """Rows the CSV parser could not split into the header's fields: quarantined, not dropped."""

    rows: list[tuple[int, str, str]] = field(default_factory=list)  # (row_number, why, raw text)


# ~50k profile rows a chunk: memory stays flat whatever the file size. A validating process's
# peak follows the chunk (the rows as pandas objects and the expectation suite's work on them):
# at 1M customers validate_source[events] peaked at 870 MB with 8 MiB blocks, 660 MB with 4 MiB
# and 520 MB with 2 MiB, in 37 s, 36 s and 44 s.
CSV_BLOCK_BYTES = 4 << 20


def header(path: Path, spec: SourceSpec) -> list[str]:
    """The file's column names; an empty file has none."""
    import pyarrow as pa
    import pyarrow.csv as pcsv

    try:
        reader = pcsv.open_csv(
            str(path),
            read_options=pcsv.ReadOptions(use_threads=False, block_size=1 << 16),
            parse_options=pcsv.ParseOptions(
                delimiter=spec.delimiter, newlines_in_values=True, invalid_row_handler=lambda _row: "skip"
            ),
            convert_options=pcsv.ConvertOptions(include_columns=[], include_missing_columns=False),
        )
    except (pa.ArrowInvalid, OSError, EOFError) as exc:
        if "Empty CSV file" in str(exc):
            return []
        if "UTF8" in str(exc) or "utf8" in str(exc).lower():
            return _header_lenient(path, spec)
        raise SourceError(f"{path.name}: the file cannot be read ({_parser_message(exc)})") from None
    names = [str(n).strip() for n in reader.schema.names]
    reader.close()
    return names


def _header_lenient(path: Path, spec: SourceSpec) -> list[str]:
    import gzip

    opener: Any = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rt", encoding="utf-8-sig", errors="replace", newline="") as fh:
        return [c.strip() for c in next(csv.reader(fh, delimiter=spec.delimiter), [])]


def _true_rows(start: int, count: int, skipped: set[int]) -> tuple[pd.Index, int]:
    """Data row numbers (0-based) of the next `count` parsed rows, stepping over skipped lines."""
    import numpy as np
    import pandas as pd

    if not skipped or max(skipped) < start:
        return pd.RangeIndex(start, start + count), start + count
    window = np.arange(start, start + count + len(skipped))
    rows = np.setdiff1d(window, np.fromiter(skipped, dtype=np.int64), assume_unique=True)[:count]
    return pd.Index(rows), int(rows[-1]) + 1 if len(rows) else start


def _csv_chunks(path: Path, spec: SourceSpec, bad: BadLines) -> Iterator[pd.DataFrame]:
    """Stream a CSV with Arrow's reader: every value as text, rows with the wrong field count
    reported to `bad` with their line and raw text. A file with invalid UTF-8 is read again as
    bytes and decoded with U+FFFD, so the contract can quarantine exactly those rows."""
    import pyarrow as pa

    names = header(path, spec)
    if not names:
        return
    try:
        yield from _arrow_csv(path, spec, bad, names, binary=False)
    except _NotUtf8:
        bad.rows.clear()
        yield from _arrow_csv(path, spec, bad, names, binary=True)
    except (pa.ArrowInvalid, OSError, EOFError) as exc:
        raise SourceError(f"{path.name}: the file cannot be parsed ({_parser_message(exc)})") from None


class _NotUtf8(Exception):
    """A source file whose bytes are not UTF-8 (reported with the line, not as a decode traceback)."""


def _arrow_csv(path: Path, spec: SourceSpec, bad: BadLines, names: list[str], binary: bool) -> Iterator[pd.DataFrame]:
    import pyarrow as pa
    import pyarrow.csv as pcsv

    skipped: set[int] = set()

    def on_invalid(row: Any) -> str:
        number = int(row.number) - 1 if row.number is not None else -1  # physical line incl. header -> data row
        why = f"field_count: expected {row.expected_columns} fields, saw {row.actual_columns}"
        bad.rows.append((number, why, str(row.text)[:10_000]))
        skipped.add(number - 1)
        return "skip"

    kind = pa.binary() if binary else pa.string()
    offset = 0
    reader = None
    try:
        # Opening reads the first block already, so decoding errors can surface here too.
        reader = pcsv.open_csv(
            str(path),
            read_options=pcsv.ReadOptions(use_threads=False, block_size=CSV_BLOCK_BYTES),
            parse_options=pcsv.ParseOptions(
                delimiter=spec.delimiter, newlines_in_values=True, invalid_row_handler=on_invalid
            ),
            convert_options=pcsv.ConvertOptions(
                column_types=dict.fromkeys(names, kind), strings_can_be_null=False, quoted_strings_can_be_null=False
            ),
        )
        for batch in reader:
            chunk = batch.to_pandas()
            if binary:
                for column in chunk.columns:
                    chunk[column] = chunk[column].map(lambda b: b.decode("utf-8", errors="replace"))
            chunk.columns = [str(c).strip() for c in chunk.columns]
            chunk.index, offset = _true_rows(offset, len(chunk), skipped)
            yield chunk
    except pa.ArrowInvalid as exc:
        if not binary and "UTF8" in str(exc):
            raise _NotUtf8 from None
        raise
    finally:
        if reader is not None:
            reader.close()


def _parser_message(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    if "quote" in text.lower() or "EOF inside string" in text:
        return f"{text}: the file is truncated or a quote is not closed"
    return text


def _parquet_chunks(path: Path) -> Iterator[pd.DataFrame]:
    import pandas as pd
    import pyarrow.parquet as pq

    try:
        parquet = pq.ParquetFile(path)
    except Exception as exc:  # pyarrow raises several types for a file that is not Parquet
        raise SourceError(f"{path.name}: not a readable Parquet file ({type(exc).__name__}: {exc})") from None
    offset = 0
    for batch in parquet.iter_batches(batch_size=CHUNK_ROWS):
        chunk = batch.to_pandas()
        chunk.index = pd.RangeIndex(offset, offset + len(chunk))
        offset += len(chunk)
        yield chunk


def _sql_chunks(spec: SourceSpec, run_date: dt.date, resolve_url: UrlResolver) -> Iterator[pd.DataFrame]:
    import pandas as pd
    import sqlalchemy as sa

    url = spec.url or resolve_url(str(spec.connection_id))
    engine = create_warehouse_engine(url)
    offset = 0
    try:
        with engine.connect().execution_options(stream_results=True) as conn:
            query = sa.text(str(spec.query))
            params = {"run_date": run_date} if ":run_date" in str(spec.query) else {}
            for chunk in pd.read_sql_query(query, conn, params=params, chunksize=CHUNK_ROWS):
                chunk.index = pd.RangeIndex(offset, offset + len(chunk))
                offset += len(chunk)
                yield chunk
    except sa.exc.OperationalError as exc:
        raise SourceError(
            f"the source database {redacted(url)} is unreachable ({type(exc.orig).__name__ if exc.orig else 'error'})"
        ) from None
    except sa.exc.SQLAlchemyError as exc:
        raise SourceError(f"the query on {redacted(url)} failed: {str(exc).splitlines()[0][:300]}") from None
    finally:
        engine.dispose()


def read_chunks(
    spec: SourceSpec, folder: Path, run_date: dt.date, bad: BadLines, resolve_url: UrlResolver
) -> Iterator[pd.DataFrame]:
    if spec.format == "sql":
        yield from _sql_chunks(spec, run_date, resolve_url)
    elif spec.format == "parquet":
        yield from _parquet_chunks(spec.file_path(folder, run_date))
    else:
        yield from _csv_chunks(spec.file_path(folder, run_date), spec, bad)


def archive_file(path: Path, archive_dir: Path) -> Path:
    """Keep a copy of the night's raw input. A copy, not a link: exporters often rewrite in place."""
    archive_dir.mkdir(parents=True, exist_ok=True)
    target = archive_dir / path.name
    if target.resolve() != path.resolve():
        shutil.copyfile(path, target)
    return target


class ArchiveWriter:
    """Writes the chunks of a query source as CSV, so a night read from a database can be replayed."""

    def __init__(self, target: Path) -> None:
        target.parent.mkdir(parents=True, exist_ok=True)
        self.target = target
        self._fh = target.open("w", encoding="utf-8", newline="")
        self._first = True

    def write(self, chunk: pd.DataFrame) -> None:
        chunk.to_csv(self._fh, header=self._first, index=False, quoting=csv.QUOTE_MINIMAL)
        self._first = False

    def close(self) -> None:
        self._fh.close()
