"""Bulk loads and set-based writes, per dialect: PostgreSQL `COPY`, one-transaction
`executemany` elsewhere, inserts that ignore existing keys, and updates of many rows by key in
one statement. Rows stream in bounded chunks."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection


def bulk_insert(conn: Connection, table: sa.Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    """Load rows inside the caller's transaction, as fast as the engine allows.

    Values must already be in the column's Python type (str, float, bool, date, datetime) or None.
    """
    if conn.dialect.name == "postgresql":
        return _copy_postgres(conn, table, columns, rows)
    stmt = table.insert()
    batch: list[dict[str, Any]] = []
    total = 0
    for row in rows:
        batch.append(dict(zip(columns, row, strict=True)))
        if len(batch) >= 20_000:
            conn.execute(stmt, batch)
            total += len(batch)
            batch = []
    if batch:
        conn.execute(stmt, batch)
        total += len(batch)
    return total


def _copy_postgres(conn: Connection, table: sa.Table, columns: Sequence[str], rows: Iterable[Sequence[Any]]) -> int:
    quoted = ", ".join(conn.dialect.identifier_preparer.quote(c) for c in columns)
    sql = f"COPY {conn.dialect.identifier_preparer.format_table(table)} ({quoted}) FROM STDIN WITH (FORMAT csv)"
    dbapi_conn = conn.connection.dbapi_connection
    assert dbapi_conn is not None
    total = 0
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")

    def rows_as_text() -> Iterable[str]:
        nonlocal total
        for row in rows:
            writer.writerow(["" if v is None else _copy_value(v) for v in row])
            total += 1
            if buffer.tell() > 4 << 20:
                yield buffer.getvalue()
                buffer.seek(0)
                buffer.truncate()
        if buffer.tell():
            yield buffer.getvalue()

    cursor = dbapi_conn.cursor()
    try:
        if hasattr(cursor, "copy"):  # psycopg 3: rows adapted in C, in its own text format
            text_sql = f"COPY {conn.dialect.identifier_preparer.format_table(table)} ({quoted}) FROM STDIN"
            with cursor.copy(text_sql) as copy:
                for row in rows:
                    copy.write_row(row)
                    total += 1
        else:  # psycopg2
            cursor.copy_expert(sql, _ChunkReader(rows_as_text()))
    finally:
        cursor.close()
    return total


class _ChunkReader:
    """A file-like view of an iterator of text chunks, so psycopg2 COPY streams too."""

    def __init__(self, chunks: Iterable[str]) -> None:
        self._chunks = iter(chunks)
        self._pending = ""

    def read(self, size: int | None = -1) -> str:
        want = size if size is not None and size >= 0 else None
        while want is None or len(self._pending) < want:
            try:
                self._pending += next(self._chunks)
            except StopIteration:
                break
        if want is None:
            out, self._pending = self._pending, ""
        else:
            out, self._pending = self._pending[:want], self._pending[want:]
        return out

    def readline(self, size: int | None = -1) -> str:
        return self.read(size)


def _copy_value(value: Any) -> Any:
    if isinstance(value, bool):
        return "t" if value else "f"
    return value


def load_csv_file(conn: Connection, table: sa.Table, path: Path, bool_columns: frozenset[str] = frozenset()) -> int:
    """Append a canonical CSV (header = column names, empty = NULL) to a table in the caller's
    transaction: PostgreSQL streams it to COPY untouched; other engines insert in large batches.
    """
    with path.open(encoding="utf-8", newline="") as fh:
        columns = next(csv.reader(fh))
    if conn.dialect.name == "postgresql":
        prep = conn.dialect.identifier_preparer
        cols = ", ".join(prep.quote(c) for c in columns)
        sql = f"COPY {prep.format_table(table)} ({cols}) FROM STDIN WITH (FORMAT csv, HEADER true)"
        cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
        try:
            with path.open("rb") as fh:
                if hasattr(cursor, "copy"):  # psycopg 3
                    with cursor.copy(sql) as copy:
                        while block := fh.read(1 << 20):
                            copy.write(block)
                else:  # psycopg2
                    cursor.copy_expert(sql, fh)
            return int(cursor.rowcount or 0)
        finally:
            cursor.close()
    import pandas as pd

    marks = "?" if conn.dialect.paramstyle == "qmark" else "%s"
    prep = conn.dialect.identifier_preparer
    sql = (
        f"INSERT INTO {prep.format_table(table)} ({', '.join(prep.quote(c) for c in columns)}) "
        f"VALUES ({', '.join([marks] * len(columns))})"
    )
    cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
    total = 0
    try:
        for chunk in pd.read_csv(path, dtype=str, keep_default_na=False, chunksize=100_000):
            for name in bool_columns & set(chunk.columns):
                chunk[name] = chunk[name].map({"true": 1, "false": 0, "": None})
            frame = chunk.astype(object).where(chunk != "", None)
            cursor.executemany(sql, list(frame.itertuples(index=False, name=None)))
            total += len(frame)
    finally:
        cursor.close()
    return total


def tune_bulk_transaction(conn: Connection) -> None:
    """Give this transaction's sorts and index builds room (PostgreSQL; reset at commit)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SET LOCAL work_mem = '256MB'")
        conn.exec_driver_sql("SET LOCAL maintenance_work_mem = '512MB'")


def analyze_tables(conn: Connection, tables: Iterable[sa.Table]) -> None:
    """Refresh planner statistics after a bulk load (PostgreSQL and SQLite; others keep their own)."""
    prep = conn.dialect.identifier_preparer
    for table in sorted(tables, key=lambda t: t.name):
        if conn.dialect.name in ("postgresql", "sqlite"):
            conn.exec_driver_sql(f"ANALYZE {prep.format_table(table)}")


def empty_table(conn: Connection, table: sa.Table) -> None:
    """Remove every row inside the caller's transaction (TRUNCATE where it is transactional)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql(f"TRUNCATE {conn.dialect.identifier_preparer.format_table(table)}")
    else:
        conn.execute(table.delete())


def is_empty(conn: Connection, table: sa.Table) -> bool:
    return conn.execute(sa.select(sa.literal(1)).select_from(table).limit(1)).first() is None


@contextmanager
def indexes_deferred(conn: Connection, table: sa.Table, empty: bool) -> Iterator[None]:
    """Load an empty PostgreSQL table without its indexes and build them once afterwards: the
    bulk-load advice of PostgreSQL's manual ("Populating a Database"). Elsewhere, or when the table
    already holds rows (a nightly increment), the indexes stay and take the rows as they come."""
    if not (empty and conn.dialect.name == "postgresql"):
        yield
        return
    prep = conn.dialect.identifier_preparer
    name = prep.format_table(table)
    pk_columns = [c.name for c in table.primary_key.columns]
    pk_name = str(table.primary_key.name or f"{table.name}_pkey")
    for index in table.indexes:
        conn.execute(sa.schema.DropIndex(index, if_exists=True))
    if pk_columns:
        conn.exec_driver_sql(f"ALTER TABLE {name} DROP CONSTRAINT IF EXISTS {prep.quote(pk_name)}")
    yield
    if pk_columns:
        cols = ", ".join(prep.quote(c) for c in pk_columns)
        conn.exec_driver_sql(f"ALTER TABLE {name} ADD CONSTRAINT {prep.quote(pk_name)} PRIMARY KEY ({cols})")
    for index in table.indexes:
        conn.execute(sa.schema.CreateIndex(index))


def insert_ignore_from(conn: Connection, table: sa.Table, source: sa.Table, columns: list[str]) -> None:
    """INSERT INTO table SELECT columns FROM source, skipping rows whose keys already exist."""
    select = sa.select(*(source.c[c] for c in columns))
    dialect = conn.dialect.name
    stmt: Any
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt = pg_insert(table).from_select(columns, select).on_conflict_do_nothing()
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        # SQLite needs a WHERE to tell the upsert clause from a join constraint.
        stmt = sqlite_insert(table).from_select(columns, select.where(sa.true())).on_conflict_do_nothing()
    else:
        stmt = table.insert().prefix_with("IGNORE").from_select(columns, select)
    conn.execute(stmt)


def bulk_insert_ignore(
    conn: Connection, table: sa.Table, columns: Sequence[str], rows: Sequence[Sequence[Any]]
) -> None:
    """insert_ignore for many rows given as tuples: on PostgreSQL a COPY into a temporary table
    and one INSERT ... SELECT ... ON CONFLICT DO NOTHING, which is several times faster than
    executemany; elsewhere insert_ignore."""
    if not rows:
        return
    if conn.dialect.name != "postgresql":
        insert_ignore(conn, table, [dict(zip(columns, row, strict=True)) for row in rows])
        return
    staging = sa.Table(
        f"staging_{table.name}",
        sa.MetaData(),
        *(sa.Column(c, table.c[c].type) for c in columns),
        prefixes=["TEMPORARY"],
        postgresql_on_commit="DROP",
    )
    conn.execute(sa.text(f"DROP TABLE IF EXISTS {staging.name}"))
    staging.create(conn)
    _copy_postgres(conn, staging, columns, rows)
    insert_ignore_from(conn, table, staging, list(columns))
    conn.execute(sa.text(f"DROP TABLE {staging.name}"))


def insert_ignore(conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
    """Insert rows whose unique keys are not present yet; rows that collide are skipped."""
    if not rows:
        return
    dialect = conn.dialect.name
    stmt: Any
    if dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt = pg_insert(table).on_conflict_do_nothing()
    elif dialect == "sqlite":
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(table).on_conflict_do_nothing()
    elif dialect in ("mysql", "mariadb"):
        stmt = table.insert().prefix_with("IGNORE")
    else:
        stmt = table.insert()
    conn.execute(stmt, rows)


def set_by_key(
    conn: Connection,
    table: sa.Table,
    key: str,
    rows: Sequence[Sequence[Any]],
    columns: Sequence[str],
    fixed: dict[str, Any] | None = None,
    where: Sequence[sa.ColumnElement[bool]] = (),
) -> int:
    """Set per-row values by key: `rows` are (key, value of columns[0], value of columns[1], ...).

    On PostgreSQL one UPDATE ... FROM unnest(arrays), whatever the number of rows (a few array
    parameters, not thousands of scalars); an executemany elsewhere. Returns rows updated."""
    if not rows:
        return 0
    fixed = fixed or {}
    if conn.dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import ARRAY

        names = [key, *columns]
        arrays = [
            sa.bindparam(f"a_{i}", [r[i] for r in rows], type_=ARRAY(table.c[n].type)) for i, n in enumerate(names)
        ]
        # Function, not sa.func: a package may register its own `unnest` for every engine
        # (sqlalchemy-bigquery's takes one argument, and great_expectations imports it)
        unnest: sa.sql.functions.Function[Any] = sa.sql.functions.Function("unnest", *arrays)
        v = unnest.table_valued(*(f"v_{n}" for n in names)).render_derived(name="v")
        result = conn.execute(
            table.update()
            .where(table.c[key] == v.c[f"v_{key}"], *where)
            .values(**{n: v.c[f"v_{n}"] for n in columns}, **fixed)
        )
        return int(result.rowcount or 0)
    stmt = table.update().where(table.c[key] == sa.bindparam("k_"), *where)
    result = conn.execute(
        stmt.values(**{n: sa.bindparam(f"v_{n}") for n in columns}, **fixed),
        [{"k_": r[0], **{f"v_{n}": r[i + 1] for i, n in enumerate(columns)}} for r in rows],
    )
    return int(result.rowcount or 0)
