"""SQL constructs whose spelling differs per engine but whose result must not.

`seconds_after(first, second)` is the seconds between two naive-UTC DateTime columns.
`hash_bucket(expr, buckets)` is the deterministic random bucket used for holdouts and variants:
the first 32 bits of md5(expr) modulo `buckets`. PostgreSQL and MariaDB compute md5 natively;
SQLite gets the same function registered on connect (`warehouse.hash32`). Python's
`warehouse.hash32` is the reference the tests compare against.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import BigInteger, Float, Integer, String, literal
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.elements import ColumnElement
from sqlalchemy.sql.functions import FunctionElement


class hash32(FunctionElement[int]):
    type = BigInteger()
    name = "hash32"
    inherit_cache = True


@compiles(hash32)
def _hash32_default(element: hash32, compiler: Any, **kw: Any) -> str:
    # SQLite (and any engine without its own spelling below) calls the function registered on connect.
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


def hash_bucket(key: ColumnElement[Any], salt: str, buckets: int) -> ColumnElement[int]:
    """A stable bucket in [0, buckets) for key, salted so each campaign draws its own."""
    salted = literal(f"{salt}:", type_=String()).concat(key)
    return hash32(salted) % literal(buckets, type_=Integer())


class seconds_after(FunctionElement[float]):
    """Seconds from the first moment to the second (both naive UTC DateTime columns)."""

    type = Float()
    name = "seconds_after"
    inherit_cache = True


@compiles(seconds_after)
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


class bytewise(FunctionElement[str]):
    """A text key compared byte by byte, for grouping and partitioning only (never for display
    order): on PostgreSQL `COLLATE "C"`, which sorts without the locale's rules (a third faster
    on a million customer ids); elsewhere the column as it is. Groups are the same either way."""

    type = String()
    name = "bytewise"
    inherit_cache = True


@compiles(bytewise)
def _bytewise_default(element: bytewise, compiler: Any, **kw: Any) -> str:
    return str(compiler.process(element.clauses, **kw))


@compiles(bytewise, "postgresql")
def _bytewise_postgresql(element: bytewise, compiler: Any, **kw: Any) -> str:
    return f'({compiler.process(element.clauses, **kw)} COLLATE "C")'
