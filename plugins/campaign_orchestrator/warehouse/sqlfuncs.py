"""SQL constructs whose spelling differs per engine but whose result must not.

`seconds_after(first, second)` is the seconds between two naive-UTC DateTime columns.
`hash_bucket(expr, buckets)` is the deterministic random bucket used for holdouts and variants:
the first 32 bits of md5(expr) modulo `buckets`. PostgreSQL, MariaDB, Snowflake, BigQuery and
Trino compute md5 natively; SQLite gets the same function registered on connect
(`warehouse.hash32`). Python's `warehouse.hash32` is the reference the tests compare against
(`tests/campaign_orchestrator/warehouse/test_dialects.py` evaluates the Snowflake, BigQuery and
Trino spellings by their documented semantics).

Each construct has one spelling per engine it supports. On any other engine `hash32` and
`seconds_after` refuse to compile (CompileError naming the engine), so a new engine gets its
spelling here before a night runs there; `str()` of a statement still reads.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Float, Integer, String, literal
from sqlalchemy.exc import CompileError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement


def _unsupported(element: FunctionElement[Any], compiler: Any, **kw: Any) -> str:
    """No spelling for this engine: refuse, except for `str()` of a statement (dialect "default")."""
    if compiler.dialect.name == "default":
        return f"{element.name}({compiler.process(element.clauses, **kw)})"
    raise CompileError(
        f"{element.name} has no spelling for the {compiler.dialect.name} dialect (warehouse/sqlfuncs.py)"
    )


class hash32(FunctionElement[int]):
    type = BigInteger()
    name = "hash32"
    inherit_cache = True


compiles(hash32)(_unsupported)


@compiles(hash32, "sqlite")
def _hash32_sqlite(element: hash32, compiler: Any, **kw: Any) -> str:
    # the function registered on connect (warehouse.engine)
    return f"co_hash32({compiler.process(element.clauses, **kw)})"


@compiles(hash32, "postgresql")
def _hash32_postgresql(element: hash32, compiler: Any, **kw: Any) -> str:
    arg = compiler.process(element.clauses, **kw)
    return f"(('x' || lpad(substr(md5({arg}), 1, 8), 16, '0'))::bit(64)::bigint)"


@compiles(hash32, "mysql")
@compiles(hash32, "mariadb")
def _hash32_mysql(element: hash32, compiler: Any, **kw: Any) -> str:
    arg = compiler.process(element.clauses, **kw)
    return f"CAST(CONV(SUBSTRING(MD5({arg}), 1, 8), 16, 10) AS UNSIGNED)"


@compiles(hash32, "snowflake")
def _hash32_snowflake(element: hash32, compiler: Any, **kw: Any) -> str:
    # MD5 of the UTF-8 text as 32 hex digits; the format model reads the first 8 as hexadecimal
    arg = compiler.process(element.clauses, **kw)
    return f"TO_NUMBER(SUBSTR(MD5({arg}), 1, 8), 'XXXXXXXX')"


@compiles(hash32, "bigquery")
def _hash32_bigquery(element: hash32, compiler: Any, **kw: Any) -> str:
    # MD5 gives 16 bytes of the UTF-8 text; a '0x' string casts to INT64 as hexadecimal
    arg = compiler.process(element.clauses, **kw)
    return f"CAST(CONCAT('0x', SUBSTR(TO_HEX(MD5({arg})), 1, 8)) AS INT64)"


@compiles(hash32, "trino")
def _hash32_trino(element: hash32, compiler: Any, **kw: Any) -> str:
    # md5 takes varbinary: the text's UTF-8 bytes; to_hex gives upper-case hex, from_base reads it
    arg = compiler.process(element.clauses, **kw)
    return f"from_base(substr(to_hex(md5(to_utf8({arg}))), 1, 8), 16)"


def hash_bucket(key: ColumnElement[Any], salt: str, buckets: int) -> ColumnElement[int]:
    """A stable bucket in [0, buckets) for key, salted so each campaign draws its own."""
    salted = literal(f"{salt}:", type_=String()).concat(key)
    return hash32(salted) % literal(buckets, type_=Integer())


class seconds_after(FunctionElement[float]):
    """Seconds from the first moment to the second (both naive UTC DateTime columns)."""

    type = Float()
    name = "seconds_after"
    inherit_cache = True


compiles(seconds_after)(_unsupported)


@compiles(seconds_after, "sqlite")
def seconds_after_sqlite(element: seconds_after, compiler: Any, **kw: Any) -> str:
    first, second = (compiler.process(c, **kw) for c in element.clauses)
    return f"((julianday({second}) - julianday({first})) * 86400.0)"


@compiles(seconds_after, "postgresql")
def seconds_after_postgresql(element: seconds_after, compiler: Any, **kw: Any) -> str:
    first, second = (compiler.process(c, **kw) for c in element.clauses)
    return f"EXTRACT(EPOCH FROM ({second} - {first}))"


@compiles(seconds_after, "mysql")
@compiles(seconds_after, "mariadb")
def seconds_after_mysql(element: seconds_after, compiler: Any, **kw: Any) -> str:
    first, second = (compiler.process(c, **kw) for c in element.clauses)
    return f"(TIMESTAMPDIFF(MICROSECOND, {first}, {second}) / 1000000.0)"


@compiles(seconds_after, "snowflake")
def seconds_after_snowflake(element: seconds_after, compiler: Any, **kw: Any) -> str:
    # DateTime is TIMESTAMP_NTZ there: DATEDIFF(part, a, b) is b - a in whole parts
    first, second = (compiler.process(c, **kw) for c in element.clauses)
    return f"(DATEDIFF(microsecond, {first}, {second}) / 1000000.0)"


@compiles(seconds_after, "bigquery")
def seconds_after_bigquery(element: seconds_after, compiler: Any, **kw: Any) -> str:
    # DateTime is DATETIME there (not TIMESTAMP): DATETIME_DIFF(b, a, part) is b - a
    first, second = (compiler.process(c, **kw) for c in element.clauses)
    return f"(DATETIME_DIFF({second}, {first}, MICROSECOND) / 1000000.0)"


@compiles(seconds_after, "trino")
def seconds_after_trino(element: seconds_after, compiler: Any, **kw: Any) -> str:
    # timestamp(3) without a zone: date_diff(unit, a, b) is b - a; milliseconds are its finest unit
    first, second = (compiler.process(c, **kw) for c in element.clauses)
    return f"(CAST(date_diff('millisecond', {first}, {second}) AS DOUBLE) / 1000.0)"


class bytewise(FunctionElement[str]):
    """A text key compared byte by byte, for grouping and partitioning only (never for display
    order): on PostgreSQL `COLLATE "C"`, which sorts without the locale's rules (a third faster
    on a million customer ids); elsewhere the column as it is (Snowflake, BigQuery and Trino
    compare text by its bytes unless told otherwise). Groups are the same either way."""

    type = String()
    name = "bytewise"
    inherit_cache = True


@compiles(bytewise)
def _bytewise_default(element: bytewise, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


@compiles(bytewise, "postgresql")
def _bytewise_postgresql(element: bytewise, compiler: Any, **kw: Any) -> str:
    return f'({compiler.process(element.clauses, **kw)} COLLATE "C")'
