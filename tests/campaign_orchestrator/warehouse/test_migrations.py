"""Schema revisions on SQLite, PostgreSQL and MariaDB: a warehouse at the baseline holding a real
night keeps every row up to head, one made by create_all before revisions is adopted, the night
refuses a warehouse behind head, and the revisions build exactly the schema the code declares."""

from __future__ import annotations

import datetime as dt
import importlib.util
import itertools
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from click.testing import CliRunner
from sqlalchemy.engine import Engine

from campaign_devtools.demo_data import generate
from campaign_devtools.provider_sim import make_server
from campaign_orchestrator.cli.main import main
from campaign_orchestrator.clock import today
from campaign_orchestrator.connections import endpoint_from_fields, parse_connection
from campaign_orchestrator.errors import InvalidInput
from campaign_orchestrator.ingest.contracts import event_properties, load_contracts
from campaign_orchestrator.run import (
    Run,
    RunConfig,
    deliver_stage,
    delivery_shards,
    import_stage,
    metrics_stage,
    notices_stage,
    render_stage,
    segments_stage,
    targets_stage,
    validate_definitions,
)
from campaign_orchestrator.warehouse import migrate
from campaign_orchestrator.warehouse.engine import create_warehouse_engine, drop_schema, ensure_schema
from campaign_orchestrator.warehouse.event_properties import ensure_event_properties
from campaign_orchestrator.warehouse.migrate import BASELINE, SchemaBehind, SchemaUnknown, alembic_config
from campaign_orchestrator.warehouse.tables import metadata
from tests.conftest import _engines

ROOT = Path(__file__).resolve().parents[3]


def _baseline_module() -> Any:
    spec = importlib.util.spec_from_file_location("rev_0001", migrate.MIGRATIONS / "versions" / "0001_baseline.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BASELINE_REV = _baseline_module()
BASELINE_TABLES = sorted(BASELINE_REV.baseline_metadata().tables)


@pytest.fixture(params=["sqlite", "postgres", "mariadb"])
def empty(request: pytest.FixtureRequest) -> Iterator[Engine]:
    """A warehouse with none of our tables, on each engine."""
    engine = create_warehouse_engine(_engines(request))
    drop_schema(engine)
    yield engine
    drop_schema(engine)
    engine.dispose()


def upgrade_to(engine: Engine, revision: str) -> None:
    with engine.begin() as conn:
        command.upgrade(alembic_config(conn), revision)


def current(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return migrate.schema_state(conn).current


def rows(engine: Engine, tables: list[str]) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table, in a stable order (the tables as the warehouse has them now)."""
    reflected = sa.MetaData()
    out = {}
    with engine.connect() as conn:
        for name in tables:
            table = sa.Table(name, reflected, autoload_with=conn)
            out[name] = sorted((tuple(r) for r in conn.execute(sa.select(table))), key=repr)
    return out


def schema(engine: Engine) -> dict[str, Any]:
    """The warehouse's schema as the engine reports it: columns, keys, indexes, checks and views."""
    insp = sa.inspect(engine)
    out: dict[str, Any] = {}
    for name in sorted(insp.get_table_names()):
        out[name] = {
            "columns": sorted((c["name"], str(c["type"]), c["nullable"]) for c in insp.get_columns(name)),
            "pk": sorted(insp.get_pk_constraint(name)["constrained_columns"]),
            "indexes": sorted(
                (i["name"], tuple(i["column_names"]), bool(i["unique"]), str(i.get("dialect_options")))
                for i in insp.get_indexes(name)
            ),
            "unique": sorted((u["name"], tuple(u["column_names"])) for u in insp.get_unique_constraints(name)),
            "checks": sorted((c["name"], c["sqltext"]) for c in insp.get_check_constraints(name)),
        }
    out["views"] = {
        v: ([c["name"] for c in insp.get_columns(v)], insp.get_view_definition(v)) for v in insp.get_view_names()
    }
    return out


# ---------------------------------------------------------------- a real night, copied to a baseline warehouse


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """A real small night (generated export, the shipped definitions, the provider simulator) on a
    SQLite warehouse at head: every row of every baseline table, and the events' property columns."""
    tmp = tmp_path_factory.mktemp("night")
    run_date = today()
    generate(tmp / "export", customers=300, seed=19, as_of=run_date, bad_rows=2)
    server = make_server("127.0.0.1", 0, api_key="mig-key")
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    uri = f"http://:mig-key@127.0.0.1:{server.server_address[1]}"
    try:
        run = Run(_config(tmp, run_date, f"sqlite:///{tmp / 'head.sqlite'}"))
        validate_definitions(run)
        notices_stage(run)
        import_stage(run)
        segments_stage(run)
        targets_stage(run)
        render_stage(run)
        for shard in delivery_shards(run):
            deliver_stage(run, shard, lambda _conn_id: endpoint_from_fields(parse_connection(uri)), 1)
        metrics_stage(run)
        reflected = sa.MetaData()
        with run.engine.connect() as conn:
            tables = [sa.Table(name, reflected, autoload_with=conn) for name in BASELINE_TABLES]
            copied = {t.name: [dict(r) for r in conn.execute(sa.select(t)).mappings()] for t in tables}
        run.engine.dispose()
    finally:
        server.shutdown()
        server.server_close()
    return copied


def _config(tmp: Path, run_date: dt.date, url: str) -> RunConfig:
    return RunConfig(
        run_date=run_date,
        warehouse_url=url,
        config_dir=ROOT / "marketing",
        contracts_dir=ROOT / "data_contracts",
        sources_dir=tmp / "export",
        reports_dir=tmp / "reports",
        archive_dir=tmp / "archive",
    )


def _filler(column: sa.Column[Any]) -> Any:
    """One value of the column's type, for a table the night leaves empty (the inbox's, the console's)."""
    kind = column.type
    if column.name == "state":
        return "sent"
    for python_type, value in (
        (bool, True),
        (int, 7),
        (float, 1.5),
        (dt.datetime, dt.datetime(2026, 1, 2, 3, 4, 5)),
        (dt.date, dt.date(2026, 1, 2)),
    ):
        try:
            if issubclass(kind.python_type, python_type):
                return value
        except NotImplementedError:
            break
    return "x"[: getattr(kind, "length", None) or 1]


def load_night(engine: Engine, night: dict[str, Any]) -> None:
    """The night's rows into a warehouse at the baseline, each table as the warehouse has it; one
    made-up row in each table the night leaves empty, so every table is carried through."""
    ensure_event_properties(engine, event_properties(load_contracts(ROOT / "data_contracts")))
    reflected = sa.MetaData()
    with engine.begin() as conn:
        for name, table_rows in night.items():
            table = sa.Table(name, reflected, autoload_with=conn)
            conn.execute(table.insert(), table_rows or [{c.name: _filler(c) for c in table.c}])


def test_a_warehouse_at_the_baseline_holding_a_night_keeps_every_row_when_upgraded_to_head(empty, night):
    upgrade_to(empty, BASELINE)
    assert current(empty) == BASELINE
    load_night(empty, night)
    before = rows(empty, BASELINE_TABLES)
    for ledger_or_history in ("outbox", "delivery_batches", "run_log", "import_log", "preferences", "events"):
        assert before[ledger_or_history], f"the night left {ledger_or_history} empty"
    assert all(before.values()), [t for t, r in before.items() if not r]

    runner = CliRunner().invoke(main, ["db", "upgrade", "--warehouse", empty.url.render_as_string(False)])

    assert runner.exit_code == 0, runner.output
    assert f"before: {BASELINE}" in runner.output and f"after:  {migrate.head()} (head)" in runner.output
    assert current(empty) == migrate.head()
    after = rows(empty, BASELINE_TABLES)
    assert {t: len(r) for t, r in after.items()} == {t: len(r) for t, r in before.items()}
    assert after == before
    ensure_schema(empty)  # the night would now run


# ---------------------------------------------------------------- a warehouse from before revisions


def make_like_an_old_release(engine: Engine) -> None:
    """What create_all made before revisions: the baseline's tables and view, without the columns
    and index the old ensure_schema added later, without the console's table, and no version."""
    m = BASELINE_REV.baseline_metadata()
    m.remove(m.tables["definition_changes"])
    m.create_all(engine)
    with engine.begin() as conn:
        conn.exec_driver_sql(BASELINE_REV.view_ddl(conn.dialect, m))
        for table, columns in BASELINE_REV.ADDED_COLUMNS.items():
            for column in columns:
                conn.exec_driver_sql(f"ALTER TABLE {table} DROP COLUMN {column}")
        for index in m.tables["events"].indexes:
            if index.name in BASELINE_REV.ADDED_INDEXES["events"]:
                index.drop(conn)
        conn.exec_driver_sql(
            "INSERT INTO import_log (run_date, source, file, status, rows_read, rows_loaded, rows_quarantined,"
            " imported_at) VALUES ('2026-01-02', 'customers', 'customers.csv', 'published', 3, 3, 0,"
            " '2026-01-02 03:00:00')"
        )
        conn.exec_driver_sql(
            "INSERT INTO holdout_list (run_date, campaign_id, customer_id) VALUES ('2026-01-02', 'c1', 'C1')"
        )


def test_a_warehouse_made_before_revisions_is_refused_by_the_night_then_adopted_at_the_baseline_and_upgraded(empty):
    make_like_an_old_release(empty)
    with pytest.raises(SchemaBehind, match=r"no schema revision .* run `campaigns db upgrade --warehouse "):
        ensure_schema(empty)

    before, after = migrate.upgrade(empty)

    assert before.current is None and before.tables and after == migrate.head()
    insp = sa.inspect(empty)
    assert {"warnings"} <= {c["name"] for c in insp.get_columns("import_log")}
    assert {"control_group", "send_at"} <= {c["name"] for c in insp.get_columns("holdout_list")}
    assert "ix_events_name_ts" in {i["name"] for i in insp.get_indexes("events")}
    assert "definition_changes" in insp.get_table_names()
    with empty.connect() as conn:
        assert conn.execute(sa.text("SELECT source, rows_loaded, warnings FROM import_log")).all() == [
            ("customers", 3, None)
        ]
        assert conn.execute(sa.text("SELECT customer_id, control_group FROM holdout_list")).all() == [("C1", None)]
    adopted = schema(empty)
    drop_schema(empty)
    ensure_schema(empty)
    assert adopted == schema(empty)


# ---------------------------------------------------------------- the night refuses a warehouse behind head


def test_a_warehouse_behind_head_stops_the_night_with_one_line_naming_campaigns_db_upgrade(empty, tmp_path):
    upgrade_to(empty, BASELINE)
    url = empty.url.render_as_string(hide_password=False)
    expected = (
        f"the warehouse is at schema revision {BASELINE}, the code needs {migrate.head()}: "
        f"run `campaigns db upgrade --warehouse {migrate.command_url(empty.url)}`"
    )
    (tmp_path / "export").mkdir()

    folders = {"--config": ROOT / "marketing", "--contracts": ROOT / "data_contracts", "--sources": tmp_path / "export"}
    folders |= {"--reports": tmp_path / "reports", "--archive": tmp_path / "archive"}
    args = ["run", "--date", today().isoformat(), "--warehouse", url]
    args += [x for option, folder in folders.items() for x in (option, str(folder))]

    result = CliRunner().invoke(main, args)

    assert result.exit_code == 1
    assert f"Error: {expected}\n" in result.output
    assert "Traceback" not in result.output
    with pytest.raises(SchemaBehind) as raised:  # what each DAG task meets: failed at once, not retried
        validate_definitions(Run(_config(tmp_path, today(), url)))
    assert str(raised.value) == expected and isinstance(raised.value, InvalidInput)
    assert current(empty) == BASELINE
    with empty.connect() as conn:
        for table in ("run_log", "import_log", "outbox", "customers"):
            assert conn.scalar(sa.text(f"SELECT COUNT(*) FROM {table}")) == 0, table
    assert not (tmp_path / "reports").exists() and not (tmp_path / "archive").exists()


def test_campaigns_db_current_says_whether_the_warehouse_is_behind_and_upgrade_twice_changes_nothing(empty):
    url = empty.url.render_as_string(hide_password=False)
    runner = CliRunner()
    result = runner.invoke(main, ["db", "current", "--warehouse", url])
    assert result.exit_code == 0 and "current: none (an empty warehouse)" in result.output
    upgrade_to(empty, BASELINE)
    result = runner.invoke(main, ["db", "current", "--warehouse", url])
    assert f"current: {BASELINE}\nhead:    {migrate.head()}\n" in result.output
    assert f"behind by {len(migrate.revisions()) - 1} revision" in result.output
    assert "run `campaigns db upgrade --warehouse " in result.output
    assert runner.invoke(main, ["db", "upgrade", "--warehouse", url]).exit_code == 0
    again = runner.invoke(main, ["db", "upgrade", "--warehouse", url])
    assert again.exit_code == 0 and "already at head: nothing to do" in again.output
    assert "at head" in runner.invoke(main, ["db", "current", "--warehouse", url]).output


def test_an_empty_warehouse_is_created_at_head_and_one_at_an_unknown_revision_is_refused(empty):
    ensure_schema(empty)
    assert current(empty) == migrate.head()
    with empty.begin() as conn:
        conn.exec_driver_sql(f"UPDATE {migrate.VERSION_TABLE} SET version_num = '0999_from_the_future'")
    with pytest.raises(SchemaUnknown, match="0999_from_the_future, which this code does not know"):
        ensure_schema(empty)
    with pytest.raises(SchemaUnknown):
        migrate.upgrade(empty)


def test_the_version_table_is_our_own_and_the_upgrade_command_names_no_password():
    assert migrate.VERSION_TABLE != "alembic_version"
    assert migrate.command_url(sa.make_url("postgresql+psycopg://night:s3cret@db:5432/wh")) == (
        "postgresql+psycopg://night@db:5432/wh"
    )


# ---------------------------------------------------------------- the revisions build the declared schema


def test_the_revisions_build_exactly_the_schema_tables_py_declares(empty):
    upgrade_to(empty, "head")
    with empty.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True, "version_table": migrate.VERSION_TABLE})
        differences = compare_metadata(context, metadata)
    assert differences == [], "add a revision for these changes to tables.py (campaigns-dev db-revision)"
    migrated = schema(empty)
    drop_schema(empty)
    ensure_schema(empty)  # an empty warehouse is created from tables.py and views.py, stamped at head
    assert schema(empty) == migrated, "tables.py or views.py changed without a revision doing the same"


def test_the_revision_chain_is_linear_from_the_baseline():
    chain = migrate.revisions()
    assert chain[0] == BASELINE and chain[-1] == migrate.head()
    scripts = migrate.script_directory()
    for older, newer in itertools.pairwise(chain):
        assert scripts.get_revision(newer).down_revision == older
        assert newer[:4].isdigit() and int(newer[:4]) == int(older[:4]) + 1
    assert all(len(rev) <= 32 for rev in chain)  # alembic's version_num is VARCHAR(32)
