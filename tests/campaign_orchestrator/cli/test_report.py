"""`campaigns report --html` as a user runs it: the page written, and one clear line (exit non-zero)
for dates that do not make a range and for a campaign the warehouse does not have."""

from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner

from campaign_orchestrator.cli import main
from campaign_orchestrator.segments.memberships import compute_memberships
from campaign_orchestrator.targeting.arbitration import build_target_lists
from campaign_orchestrator.warehouse.engine import create_warehouse_engine, ensure_schema
from tests.builders import customer, definitions, deliver_target_list, load

DAY = dt.date(2026, 11, 22)


@pytest.fixture
def warehouse_url(tmp_path) -> str:
    """A night of one push campaign for twenty customers, targeted and delivered."""
    url = f"sqlite:///{tmp_path / 'w.sqlite'}"
    engine = create_warehouse_engine(url)
    ensure_schema(engine)
    ids = [f"C{i:03d}" for i in range(20)]
    load(engine, [customer(c) for c in ids], opted_in={"push": ids}, installs=[(c, "ios", True) for c in ids])
    defs = definitions([{"id": "welcome"}])
    with engine.begin() as conn:
        compute_memberships(conn, defs.rules(), defs.vocabulary, DAY)
        build_target_lists(conn, defs, DAY, dt.datetime(2026, 11, 22, 2, 0))
        deliver_target_list(conn, DAY, dt.datetime(2026, 11, 22, 2, 0))
    engine.dispose()
    return url


def report(url: str, *args: str):
    return CliRunner().invoke(main, ["report", "--warehouse", url, *args])


def test_report_writes_one_page_for_a_night_a_range_and_a_campaign(warehouse_url, tmp_path):
    for args in (
        ["--date", DAY.isoformat()],
        ["--from", "2026-11-20", "--to", DAY.isoformat()],
        ["--date", DAY.isoformat(), "--campaign", "welcome", "--segment", "everyone"],
    ):
        out = tmp_path / "pages" / f"{len(args)}.html"
        result = report(warehouse_url, *args, "--html", str(out))
        assert result.exit_code == 0, result.output
        assert f"wrote {out}" in result.output
        page = out.read_text(encoding="utf-8")
        assert page.startswith("<!DOCTYPE html>") and '<figure data-chart="funnel">' in page
        assert "C001" not in page  # counts, never customers


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--from", "2026-11-23", "--to", "2026-11-22"], "bad date range: 2026-11-23 is after 2026-11-22"),
        (["--from", "2025-01-01", "--to", "2026-11-22"], "a report covers at most 366"),
        (["--from", "2026-11-20"], "missing --to"),
        (["--to", "2026-11-20"], "missing --from"),
        ([], "missing --date"),
        (["--date", "2026-11-22", "--from", "2026-11-20"], "not both"),
        (["--date", "2026-11-31"], "expected YYYY-MM-DD"),
        (["--date", "2026-11-22", "--campaign", "welcom"], "unknown campaign 'welcom'"),
    ],
)
def test_dates_that_make_no_range_and_an_unknown_campaign_are_one_clear_line(warehouse_url, tmp_path, args, message):
    out = tmp_path / "r.html"
    result = report(warehouse_url, *args, "--html", str(out))
    assert result.exit_code != 0 and message in result.output, result.output
    assert "Traceback" not in result.output and not out.exists()
    if "welcom" in args:
        assert "campaigns there: welcome" in result.output
