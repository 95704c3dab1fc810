"""The night's set-based SQL on Snowflake, BigQuery and Trino: compiled by each engine's own
SQLAlchemy dialect (no connection, no server) and parsed by sqlglot as that engine's SQL.

What is compiled is every statement the night's code executes, not a copy of it: the segment
memberships and lifecycle stages (`compute_memberships`, UTC and customer-local windows), the
estimate and the console's live sizes, and the target lists with arbitration
(`build_target_lists`) for every shipped segment and campaign. They run against `Recorder`, which
stands where a Connection would: it keeps each statement and answers as an empty warehouse.

Each statement is rendered as that engine's server receives it:
- Snowflake: literal values (the dialect renders dates and times as text Snowflake casts), then the
  connector's client-side binding, which turns SQLAlchemy's `%%` back into `%`;
- BigQuery: literal values (typed: DATE '...', DATETIME '...'), then the DB-API's own formatting;
- Trino: `?` placeholders, as the client sends them (EXECUTE IMMEDIATE '<text>' USING <values>):
  the dialect renders a date literal as a bare string, which Trino would not compare with a DATE.

This proves compile and parse, not execution: no Snowflake, BigQuery or Trino ran these.
The per-engine spellings of `hash32` and `seconds_after` are checked further: their parsed
expression is evaluated by each function's documented semantics and must give Python's number.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Iterator
from functools import cache
from typing import Any, cast

import pytest
import sqlalchemy as sa
import sqlglot
from sqlalchemy.engine import Connection, Dialect
from sqlalchemy.exc import CompileError
from sqlalchemy.sql import ClauseElement, Executable
from sqlalchemy.sql.compiler import SQLCompiler
from sqlglot import exp

from campaign_orchestrator.console.checks import Checker
from campaign_orchestrator.definitions.loader import Definitions
from campaign_orchestrator.segments.compile import Inline
from campaign_orchestrator.segments.memberships import compute_memberships, estimate
from campaign_orchestrator.segments.sizes import SizeCache, rule_sizes
from campaign_orchestrator.segments.windows import LocalWindows
from campaign_orchestrator.targeting.arbitration import build_target_lists
from campaign_orchestrator.warehouse.engine import hash32 as python_hash32
from campaign_orchestrator.warehouse.sqlfuncs import bytewise, hash32, hash_bucket, seconds_after
from tests.conftest import ROOT

RUN = dt.date(2026, 11, 22)
NOW = dt.datetime(2026, 11, 22, 6, 0)
ENGINES = ["snowflake", "bigquery", "trino"]
# zones with and without DST on either side of UTC, so local windows compile their CASE
LOCAL = LocalWindows(RUN, ("Europe/Berlin", "Australia/Sydney", "America/New_York"), "UTC")


def dialect(engine: str) -> Dialect:
    """The engine's dialect as create_engine would make it: its DB-API's paramstyle and all."""
    if engine == "snowflake":
        from snowflake.sqlalchemy.snowdialect import SnowflakeDialect

        return SnowflakeDialect(dbapi=SnowflakeDialect.import_dbapi())
    if engine == "bigquery":
        from sqlalchemy_bigquery import BigQueryDialect

        return BigQueryDialect(dbapi=BigQueryDialect.import_dbapi())
    from trino.sqlalchemy.dialect import TrinoDialect

    return TrinoDialect(dbapi=TrinoDialect.import_dbapi())


def server_text(statement: ClauseElement, on: Dialect) -> str:
    """The statement's text as the engine's server receives it (see the module docstring)."""
    if on.name == "trino":
        return str(statement.compile(dialect=on, compile_kwargs={"render_postcompile": True}))
    sql = str(statement.compile(dialect=on, compile_kwargs={"literal_binds": True}))
    if on.name == "snowflake":
        from snowflake.connector._internal.binding_converters import ClientSideBindingConverter

        # snowflake-sqlalchemy turns interpolate_empty_sequences on for compiled statements
        return ClientSideBindingConverter.interpolate_query(sql, {}, interpolate_empty_sequences=True)
    from google.cloud.bigquery.dbapi.cursor import _format_operation

    return str(_format_operation(sql, None)[0])


def parsed(sql: str, engine: str) -> exp.Expr:
    """sqlglot's tree of one statement, or ParseError; a statement sqlglot only skims fails too."""
    trees = sqlglot.parse(sql, read=engine)
    assert len(trees) == 1 and trees[0] is not None, sql
    tree = trees[0]
    assert not isinstance(tree, exp.Command), f"sqlglot could not parse this as {engine} SQL: {sql}"
    return tree


class _Row(tuple[Any, ...]):
    _mapping: dict[str, Any]


class _Answer:
    """What an empty warehouse answers: no rows; one row of NULLs where exactly one is demanded."""

    def __init__(self, statement: Any) -> None:
        self._statement = statement

    def __iter__(self) -> Iterator[Any]:
        return iter(())

    def all(self) -> list[Any]:
        return []

    def first(self) -> None:
        return None

    def scalar(self) -> None:
        return None

    def scalars(self) -> Iterator[Any]:
        return iter(())

    rowcount = 0

    def one(self) -> _Row:
        names = [c.key for c in self._statement.selected_columns]
        row = _Row([None] * len(names))
        row._mapping = dict.fromkeys(names)
        return row


class Recorder:
    """Stands where a Connection would: records every statement, answers as an empty warehouse."""

    def __init__(self, on: Dialect) -> None:
        self.dialect = on
        self.statements: list[ClauseElement] = []

    def execute(self, statement: Executable, parameters: Any = None) -> _Answer:
        assert isinstance(statement, ClauseElement)
        if parameters:  # an executemany: the statement with the first row's values
            first = parameters[0] if isinstance(parameters, list) else parameters
            assert isinstance(statement, sa.Insert), statement
            statement = statement.values(first)
        self.statements.append(statement)
        return _Answer(statement)

    def scalar(self, statement: Executable, parameters: Any = None) -> None:
        self.execute(statement, parameters)

    def exec_driver_sql(self, sql: str, *args: Any) -> None:
        raise AssertionError(f"driver SQL outside PostgreSQL and SQLite: {sql}")

    def connection(self) -> Connection:
        return cast(Connection, self)


@cache
def shipped() -> Definitions:
    definitions = Checker(ROOT / "data_contracts").check(ROOT / "marketing").definitions
    assert definitions is not None
    return definitions


def recorded(engine: str, work: Callable[[Connection], object]) -> list[ClauseElement]:
    recorder = Recorder(dialect(engine))
    work(recorder.connection())
    assert recorder.statements
    return recorder.statements


def refused(tree: exp.Expr, engine: str) -> list[str]:
    """What the engine's documentation refuses although sqlglot parses it (the cases met so far)."""
    found = []
    if engine == "bigquery":
        for limit in tree.find_all(exp.Limit):
            if isinstance(limit.expression, exp.Neg):
                found.append(f"BigQuery's LIMIT takes a non-negative count: {limit.sql('bigquery')}")
    return found


def problems_of(engine: str, statements: list[ClauseElement]) -> list[str]:
    """Each statement that does not compile, parse, or pass `refused`, with the reason."""
    on = dialect(engine)
    problems = []
    for statement in statements:
        try:
            sql = server_text(statement, on)
            problems += [f"{reason}\n{sql}" for reason in refused(parsed(sql, engine), engine)]
        except (CompileError, AssertionError, sqlglot.errors.ParseError) as exc:
            problems.append(f"{type(exc).__name__}: {exc}")
    return problems


def assert_every_statement_parses(engine: str, statements: list[ClauseElement]) -> None:
    problems = problems_of(engine, statements)
    assert problems == [], "\n\n".join(problems)


def _inline(definitions: Definitions) -> Inline:
    lifecycles = definitions.lifecycle_specs()
    return Inline(
        segments=definitions.rules(),
        lifecycles={lc.id: lc.stages for lc in lifecycles},
        otherwise={lc.id: lc.otherwise for lc in lifecycles},
    )


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("windows", [None, LOCAL], ids=["utc", "customer_local"])
def test_the_membership_statements_of_every_shipped_segment_and_lifecycle_parse(
    engine: str, windows: LocalWindows | None
) -> None:
    d = shipped()
    statements = recorded(
        engine,
        lambda conn: compute_memberships(conn, d.rules(), d.vocabulary, RUN, d.lifecycle_specs(), windows),
    )
    inserts = [s for s in statements if isinstance(s, sa.Insert) and s.table.name == "segment_membership"]
    assert len(inserts) == len(d.segments)  # one INSERT ... SELECT per segment: every rule is in
    assert_every_statement_parses(engine, statements)


@pytest.mark.parametrize("engine", ENGINES)
@pytest.mark.parametrize("windows", [None, LOCAL], ids=["utc", "customer_local"])
def test_the_membership_statements_of_every_kind_of_rule_parse(engine: str, windows: LocalWindows | None) -> None:
    """Beyond the shipped rules: every node kind and operator of the rule language, as the
    membership tests' catalogue has them (all, any, not, segment, stage, list, app, bucket, each
    attribute and event operator, every aggregate, first/last and their values)."""
    from tests.campaign_orchestrator.segments.rule_examples import BASE, LIFECYCLES, RULES, vocab_for

    rules = {**BASE, **RULES}
    statements = recorded(
        engine, lambda conn: compute_memberships(conn, rules, vocab_for(rules), RUN, LIFECYCLES, windows)
    )
    assert_every_statement_parses(engine, statements)


@pytest.mark.parametrize("engine", ENGINES)
def test_the_estimate_statements_of_every_shipped_segment_parse(engine: str) -> None:
    d = shipped()

    def work(conn: Connection) -> None:
        for segment_id in d.segments:
            estimate(conn, segment_id, d.rules(), d.vocabulary, RUN, d.lifecycle_specs(), windows=LOCAL)

    assert_every_statement_parses(engine, recorded(engine, work))


SIZES_ON_BIGQUERY = (
    "segments/sizes.py fences its flags with OFFSET 0 (for PostgreSQL's planner); sqlalchemy-bigquery "
    "renders an offset without a limit as LIMIT -1 OFFSET 0, and BigQuery's LIMIT takes a non-negative count"
)


@pytest.mark.parametrize("engine", ENGINES)
def test_the_live_sizes_statements_of_every_shipped_segment_parse(engine: str) -> None:
    d = shipped()
    inline = _inline(d)

    def work(conn: Connection) -> None:
        for rule in d.rules().values():
            for part in ("all", "blocks"):
                rule_sizes(conn, rule, d.vocabulary, RUN, inline, LOCAL, cache=SizeCache(), part=part)

    problems = problems_of(engine, recorded(engine, work))
    if engine == "bigquery":  # known, and only that: once sizes.py is portable this fails, drop the xfail
        assert problems and all(p.startswith("BigQuery's LIMIT takes a non-negative count") for p in problems)
        pytest.xfail(SIZES_ON_BIGQUERY)
    assert problems == [], "\n\n".join(problems)


@pytest.mark.parametrize("engine", ENGINES)
def test_the_targeting_and_arbitration_statements_of_every_shipped_campaign_parse(engine: str) -> None:
    d = shipped()
    week = [RUN + dt.timedelta(days=i) for i in range(7)]  # weekly campaigns too
    covered = {c.id for day in week for c in d.active_campaigns(day)}
    assert covered == set(d.campaigns)
    statements: list[ClauseElement] = []
    for day in week:
        statements += recorded(engine, lambda conn, day=day: build_target_lists(conn, d, day, NOW))
    kinds = {(type(s).__name__, s.table.name) for s in statements if isinstance(s, sa.Insert)}
    assert {("Insert", t) for t in ("campaign_candidates", "arbitration", "target_list", "target_exclusions")} <= kinds
    assert_every_statement_parses(engine, statements)


# ------------------------------------------------------------ the per-engine functions

KEYS = ["C0000137", "", "customer-1", "Zoë Ørsted", "客户", "emoji 🎉", "' OR 1=1 --"]


def _md5(value: Any) -> bytes:
    data = value if isinstance(value, bytes) else str(value).encode("utf-8")
    return hashlib.md5(data, usedforsecurity=False).digest()


def _cast(value: Any, to: exp.DataType) -> Any:
    if to.is_type(exp.DataType.Type.DOUBLE):
        return float(value)
    assert to.is_type(exp.DataType.Type.BIGINT), to
    text = str(value)  # BigQuery: a string '0x...' casts to INT64 as hexadecimal
    return int(text, 16) if text.lower().startswith("0x") else int(text)


def _to_number(node: exp.ToNumber, row: dict[str, Any]) -> int:
    text, model = evaluate(node.this, row), node.args["format"].name
    assert set(model) == {"X"} and len(text) <= len(model), (text, model)  # Snowflake: X = hex digit
    return int(text, 16)


_UNITS = {"MICROSECOND": dt.timedelta(microseconds=1), "MILLISECOND": dt.timedelta(milliseconds=1)}


def _diff(node: exp.Expr, row: dict[str, Any]) -> int:
    later, earlier = evaluate(node.this, row), evaluate(node.expression, row)
    return int((later - earlier) // _UNITS[node.text("unit").upper()])


# Each function as its engine's documentation says (sqlglot's tree names them alike across engines:
# Snowflake MD5 and BigQuery TO_HEX(MD5) are both MD5, the hex text; Trino md5 is MD5Digest).
_EVAL: dict[type[exp.Expr], Callable[[Any, dict[str, Any]], Any]] = {
    exp.Literal: lambda n, row: n.this if n.is_string else (int(n.this) if n.is_int else float(n.this)),
    exp.Column: lambda n, row: row[n.name],
    exp.Paren: lambda n, row: evaluate(n.this, row),
    exp.DPipe: lambda n, row: evaluate(n.this, row) + evaluate(n.expression, row),
    exp.Concat: lambda n, row: "".join(evaluate(e, row) for e in n.expressions),
    exp.MD5: lambda n, row: _md5(evaluate(n.this, row)).hex(),  # 32 lower-case hex digits
    exp.MD5Digest: lambda n, row: _md5(evaluate(n.this, row)),  # 16 bytes
    exp.Encode: lambda n, row: evaluate(n.this, row).encode(n.text("charset")),  # to_utf8
    exp.Hex: lambda n, row: evaluate(n.this, row).hex().upper(),  # Trino to_hex: upper case
    exp.Substring: lambda n, row: evaluate(n.this, row)[
        evaluate(n.args["start"], row) - 1 : evaluate(n.args["start"], row) - 1 + evaluate(n.args["length"], row)
    ],
    exp.ToNumber: _to_number,
    exp.Cast: lambda n, row: _cast(evaluate(n.this, row), n.to),
    exp.FromBase: lambda n, row: int(evaluate(n.this, row), evaluate(n.expression, row)),
    exp.Mod: lambda n, row: evaluate(n.this, row) % evaluate(n.expression, row),
    exp.Div: lambda n, row: evaluate(n.this, row) / evaluate(n.expression, row),
    exp.DateDiff: _diff,
    exp.DatetimeDiff: _diff,
}


def evaluate(node: exp.Expr, row: dict[str, Any]) -> Any:
    """The value of an expression over one row; a function not listed above fails the test."""
    assert type(node) in _EVAL, f"no semantics for {type(node).__name__}: {node.sql()}"
    return _EVAL[type(node)](node, row)


def _with_values(statement: ClauseElement, on: Dialect) -> str:
    """Trino: the `?` of the text replaced by the values, formatted by the client as it sends them
    after USING (parameters bind by position; none of these texts has a `?` inside a string)."""
    from trino.dbapi import Cursor

    compiled = cast(SQLCompiler, statement.compile(dialect=on, compile_kwargs={"render_postcompile": True}))
    params = compiled.construct_params()
    text = str(compiled)
    cursor = Cursor.__new__(Cursor)  # only its literal formatting is used, no connection
    for name in compiled.positiontup or []:
        text = text.replace("?", cursor._format_prepared_param(params[name]), 1)
    return text


def _selected(expression: sa.ColumnElement[Any], engine: str) -> exp.Expr:
    """The one expression `SELECT expression`, as the engine's server would evaluate it."""
    statement, on = sa.select(expression.label("v")), dialect(engine)
    tree = parsed(_with_values(statement, on) if engine == "trino" else server_text(statement, on), engine)
    assert isinstance(tree, exp.Select)
    (aliased,) = tree.expressions
    assert isinstance(aliased, exp.Alias)
    this: exp.Expr = aliased.this
    return this


@pytest.mark.parametrize("engine", ENGINES)
def test_hash32_and_the_bucket_give_pythons_numbers_so_holdouts_agree_across_engines(engine: str) -> None:
    key = sa.column("k", sa.String())
    raw = _selected(hash32(key), engine)
    bucket = _selected(hash_bucket(key, "holdout:winback_push", 10_000), engine)
    for value in KEYS:
        assert evaluate(raw, {"k": value}) == python_hash32(value)
        assert evaluate(bucket, {"k": value}) == (python_hash32(f"holdout:winback_push:{value}") or 0) % 10_000
    # unsigned: keys whose first bit is set (a signed 32-bit reading would make them negative)
    assert any((python_hash32(v) or 0) >= 2**31 for v in KEYS)


@pytest.mark.parametrize("engine", ENGINES)
def test_seconds_after_counts_the_seconds_between_two_moments(engine: str) -> None:
    expression = _selected(seconds_after(sa.column("a", sa.DateTime()), sa.column("b", sa.DateTime())), engine)
    a = dt.datetime(2026, 3, 29, 0, 59, 59, 500_000)  # across a DST change in Europe: naive UTC, no effect
    for later, seconds in [(a + dt.timedelta(hours=2, milliseconds=250), 7200.25), (a - dt.timedelta(seconds=90), -90)]:
        assert evaluate(expression, {"a": a, "b": later}) == pytest.approx(seconds)


@pytest.mark.parametrize("engine", ENGINES)
def test_bytewise_is_the_column_itself_there(engine: str) -> None:
    selected = _selected(bytewise(sa.column("k", sa.String())), engine)
    assert isinstance(selected, exp.Column) and selected.name == "k"


def test_set_by_key_builds_on_postgresql_with_the_dialect_packages_imported() -> None:
    """Importing sqlalchemy-bigquery (great_expectations does, wherever it is installed) registers
    an `unnest` of one argument for every engine; bulk.set_by_key's PostgreSQL UPDATE ... FROM
    unnest(a, b) must not go through that registry."""
    import sqlalchemy_bigquery  # noqa: F401
    from sqlalchemy.dialects import postgresql

    from campaign_orchestrator.warehouse.bulk import set_by_key
    from campaign_orchestrator.warehouse.tables import delivery_batches

    with pytest.raises(TypeError, match="single argument"):  # the registry as the package leaves it
        sa.func.unnest(sa.literal([1]), sa.literal([2]))
    recorder = Recorder(postgresql.dialect())
    set_by_key(recorder.connection(), delivery_batches, "batch_id", [("b1", "sent"), ("b2", "failed")], ["state"])
    (update,) = recorder.statements
    assert "FROM unnest(" in str(update.compile(dialect=postgresql.dialect()))


def test_an_engine_without_a_spelling_refuses_to_compile_and_str_still_reads() -> None:
    from sqlalchemy.dialects import mssql

    key = sa.column("k", sa.String())
    for construct in (hash32(key), seconds_after(key, key)):
        with pytest.raises(CompileError, match="no spelling for the mssql dialect"):
            sa.select(construct).compile(dialect=mssql.dialect())
    assert str(sa.select(hash32(key))) == "SELECT hash32(k) AS hash32_1"
