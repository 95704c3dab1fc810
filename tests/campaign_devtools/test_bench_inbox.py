"""The inbox bench's own parts: the loader on a few hundred customers (PostgreSQL), the floor app,
and the parser on a captured wrk output, so a change in wrk's format fails here, not the bench."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest
import requests
import sqlalchemy as sa

from campaign_devtools.bench.inbox.dataset import PUBLIC_MESSAGES, customer_id
from campaign_devtools.bench.inbox.loader import load
from campaign_devtools.bench.inbox.servers import floor_command, free_port, running
from campaign_devtools.bench.inbox.wrk import WrkError, parse
from campaign_orchestrator.clock import utcnow
from campaign_orchestrator.inbox.store import read_inbox
from campaign_orchestrator.warehouse.engine import create_warehouse_engine

ADMIN_URL = os.environ.get("WAREHOUSE_TEST_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres")
CUSTOMERS = 300
UTC_NOW = "(now() AT TIME ZONE 'UTC')"  # the store's columns are naive UTC

# wrk 4.1.0 (Debian 12) against the floor, 60 s, with the bench's script (wrk prints 60.08 s as 1.00m).
WRK_OUTPUT = """\
Running 1m test @ http://127.0.0.1:60383
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency    27.95ms   21.31ms 314.82ms   87.63%
    Req/Sec   612.95    181.01     1.37k    68.70%
  73747 requests in 1.00m, 344.32MB read
Requests/sec:   1227.44
Transfer/sec:      5.73MB
BENCH requests=73747 duration_us=60082201 p50_us=22059 p95_us=63612 p99_us=110962 max_us=314824 mean_us=27951.2 \
ok_2xx=73747 non_2xx=0 connect=0 read=0 write=0 timeout=0 sent_get=66269 sent_post=7511
BENCH_STATUS 200=73747
"""
WRK_ERRORS = """\
Running 5s test @ http://127.0.0.1:40001
  2 threads and 32 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   116.51ms   31.91ms 256.56ms   69.46%
    Req/Sec   136.77     32.06   222.00     72.73%
  1357 requests in 5.01s, 5.56MB read
  Socket errors: connect 0, read 2, write 0, timeout 1
  Non-2xx or 3xx responses: 7
Requests/sec:    270.87
Transfer/sec:      1.11MB
BENCH requests=1357 duration_us=5009736 p50_us=113380 p95_us=172622 p99_us=213418 max_us=256563 mean_us=116507.6 \
ok_2xx=1350 non_2xx=7 connect=0 read=2 write=0 timeout=1 sent_get=1248 sent_post=142
BENCH_STATUS 200=1350 401=3 500=4
"""


@pytest.fixture(scope="module")
def bench_url() -> Iterator[str]:
    """A private database (not the shared co_test_*), dropped and created for this module."""
    name = f"bench_inbox_test_{os.environ.get('PYTEST_XDIST_WORKER', 'main')}"
    admin = sa.create_engine(ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name}"))
            conn.execute(sa.text(f"CREATE DATABASE {name}"))
    except sa.exc.OperationalError:
        admin.dispose()
        pytest.skip("PostgreSQL is not reachable here")
    yield sa.make_url(ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    with admin.connect() as conn:
        conn.execute(sa.text(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
    admin.dispose()


def _count(engine: sa.Engine, sql: str) -> int:
    with engine.connect() as conn:
        return int(conn.scalar(sa.text(sql)) or 0)


@pytest.mark.postgres
def test_the_loader_loads_once_and_the_feeds_show_the_messages(bench_url):
    first = load(bench_url, CUSTOMERS)
    assert first.loaded and first.customers == CUSTOMERS and first.messages == 3 * CUSTOMERS + PUBLIC_MESSAGES
    engine = create_warehouse_engine(bench_url)
    try:
        assert _count(engine, "SELECT count(*) FROM customers WHERE timezone IS NOT NULL") == CUSTOMERS
        assert _count(engine, "SELECT count(*) FROM preference_state WHERE channel = 'in_app'") == CUSTOMERS
        assert _count(engine, "SELECT count(*) FROM inapp_messages") == first.messages
        assert _count(engine, "SELECT count(*) FROM inapp_messages WHERE customer_id IS NULL") == PUBLIC_MESSAGES
        live = f"start_at <= {UTC_NOW} AND end_at > {UTC_NOW}"
        assert _count(engine, f"SELECT count(*) FROM inapp_messages WHERE NOT ({live})") == 0
        assert 0 < _count(engine, "SELECT count(*) FROM inapp_messages WHERE daily_cap IS NOT NULL") < first.messages
        assert _count(engine, "SELECT count(*) FROM inapp_states") > 0
        per_customer = "SELECT {} FROM (SELECT count(*) n FROM inapp_messages GROUP BY customer_id) x WHERE {}"
        assert _count(engine, per_customer.format("count(*)", "n NOT BETWEEN 2 AND 4")) == 1  # the public group
        with engine.connect() as conn:
            inbox = read_inbox(conn, customer_id(0), utcnow())
        assert len(inbox.messages) >= 2 + PUBLIC_MESSAGES and inbox.timezone is not None
        assert inbox.messages[0].content["layout"] == "MOBILE_FEED"
    finally:
        engine.dispose()
    again = load(bench_url, CUSTOMERS)
    assert not again.loaded and again.messages == first.messages
    assert load(bench_url, CUSTOMERS, reload=True).loaded


@pytest.mark.postgres
def test_the_floor_reads_the_feed_and_inserts_an_event(bench_url, tmp_path):
    """The floor as the bench runs it: its own uvicorn process, started and stopped by servers.running."""
    load(bench_url, CUSTOMERS)
    port, feed = free_port(), f"/v1/customers/{customer_id(1)}/feed"
    with running("floor", floor_command(port, bench_url, 1), {}, port, feed, {}, tmp_path / "floor.log") as floor:
        rows = requests.get(floor.base_url + feed, timeout=10).json()
        assert len(rows) >= 2 + PUBLIC_MESSAGES
        mine = next(r for r in rows if r["customer_id"] == customer_id(1))
        body = {"events": [{"id": "e-1", "message_id": mine["message_id"], "type": "read"}]}
        answer = requests.post(f"{floor.base_url}/v1/customers/{customer_id(1)}/events", json=body, timeout=10)
        assert answer.status_code == 200
    assert floor.process.poll() is not None  # stopped with its workers
    engine = create_warehouse_engine(bench_url)
    try:
        assert _count(engine, "SELECT count(*) FROM engagement_events WHERE event_id = 'e-1'") == 1
    finally:
        engine.dispose()


def test_the_parser_reads_a_captured_wrk_output():
    r = parse(WRK_OUTPUT)
    assert (r.requests, r.duration_s, r.requests_per_s, r.errors) == (73747, 60.082, 1227.4, 0)
    assert (r.p50_ms, r.p95_ms, r.p99_ms, r.max_ms) == (22.059, 63.612, 110.962, 314.824)
    assert r.statuses == {200: 73747} and (r.sent_get, r.sent_post) == (66269, 7511)
    e = parse(WRK_ERRORS)
    assert e.errors == 10 and e.socket_errors == {"connect": 0, "read": 2, "write": 0, "timeout": 1}
    assert e.statuses == {200: 1350, 401: 3, 500: 4}


@pytest.mark.parametrize(
    "broken",
    [
        WRK_OUTPUT.replace("Requests/sec:", "Requests per second:"),  # wrk's summary changed
        WRK_OUTPUT.replace("73747 requests in", "73746 requests in"),  # the summary and the script disagree
        WRK_OUTPUT.replace("in 1.00m,", "in 1.05m,"),
        WRK_OUTPUT.replace(" p99_us=110962", ""),  # the script lost a percentile
        WRK_OUTPUT.replace("BENCH_STATUS 200=73747\n", ""),
        WRK_ERRORS.replace("read 2,", "read 3,"),
    ],
)
def test_the_parser_refuses_an_output_it_does_not_recognise(broken):
    with pytest.raises(WrkError):
        parse(broken)
