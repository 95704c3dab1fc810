"""The HTML report of a small real night: every chart drawn, the page self-contained and free of
personal data, what is not measured yet said in words, a failing chart named without costing the
night its JSON report; and in headless Chromium, every chart rendered with no request leaving."""

from __future__ import annotations

import json
import os
import re
from pathlib import Path

import pytest
import sqlalchemy as sa

from campaign_orchestrator.reporting import chart_data, charts
from campaign_orchestrator.reporting.html import (
    CHARTS,
    NO_MEASUREMENTS,
    BadDateRange,
    ChartsFailed,
    UnknownCampaign,
    build_html_report,
    render_html_report,
    write_html_report,
)
from campaign_orchestrator.run.context import Run
from campaign_orchestrator.run.stages import report_stage
from campaign_orchestrator.warehouse.tables import run_log
from tests.campaign_orchestrator.reporting.real_night import RUN_DATE, Night, run_night, set_metrics

CHROMIUM = Path("/usr/bin/chromium")
REQUIRE_BROWSER = os.environ.get("REQUIRE_BROWSER") == "1"
# The only URLs an SVG from matplotlib carries are XML namespace names, never fetched.
NAMESPACE = re.compile(r'xmlns(:\w+)?="http://www\.w3\.org/[^"]*"')


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory, repo: Path) -> Night:
    return run_night(tmp_path_factory.mktemp("report-night"), repo)


def figure(page: str, name: str) -> str:
    match = re.search(rf'<figure data-chart="{name}"[^>]*>.*?</figure>', page, flags=re.S)
    assert match, f"no figure for chart {name}"
    return match.group(0)


def test_the_night_writes_its_charts_next_to_its_json_report(night: Night):
    html_path = night.report.parent / "run_report.html"
    assert night.report.name == "run_report.json" and html_path.exists()
    page = html_path.read_text(encoding="utf-8")
    for name in CHARTS:
        assert f'<section id="{name}">' in page
    for name in ("funnel", "segment_sizes", "send_times", "delivery"):
        assert "<svg" in figure(page, name) and "<path" in figure(page, name), name
    with night.engine.connect() as conn:
        detail = conn.execute(
            sa.select(run_log.c.detail).where(run_log.c.run_id == "report-night", run_log.c.stage == "report")
        ).scalar_one()
    assert json.loads(detail)["html"] == str(html_path) and "html_error" not in json.loads(detail)


def test_the_funnel_adds_up_to_what_the_json_report_says(night: Night):
    report = json.loads(night.report.read_text(encoding="utf-8"))
    with night.engine.connect() as conn:
        rows = {r.campaign_id: r for r in chart_data.funnel_rows(conn, RUN_DATE, RUN_DATE)}
        one = chart_data.funnel_rows(conn, RUN_DATE, RUN_DATE, campaign="repeat_buyer_nudge")
    expected = {c: r for c, r in report["campaigns"].items() if r.get("segment_size") or r.get("delivered")}
    assert set(rows) == set(expected)
    for cid, row in rows.items():
        assert (row.segment_size, row.targeted, row.delivered) == (
            expected[cid]["segment_size"],
            expected[cid]["targeted"],
            expected[cid]["delivered"],
        )
        assert row.excluded == (expected[cid].get("excluded") or {})
    assert [r.campaign_id for r in one] == ["repeat_buyer_nudge"]


def test_the_page_is_self_contained_and_names_no_customer(night: Night):
    set_metrics(night.engine)
    page = render_html_report(night.engine, RUN_DATE)
    assert not re.search(r"<script|<link|<img|<iframe|\bsrc=|@import|url\((?!#)", page, flags=re.I)
    assert "http" not in NAMESPACE.sub("", page)
    assert page.count('<svg role="img"') == len(CHARTS)
    ids = re.findall(r'\bid="([^"]+)"', page)
    assert len(ids) == len(set(ids)), "two charts share an id"
    ids_in_page = [c for c in night.customer_ids() if c in page]
    assert ids_in_page == []
    assert "password" not in page.lower() and "sqlite:///" in page  # the warehouse, redacted


def test_until_metrics_are_computed_the_uplift_section_says_so(night: Night):
    set_metrics(night.engine, measured=False)
    page = render_html_report(night.engine, RUN_DATE)
    uplift = figure(page, "uplift")
    assert 'data-empty="true"' in uplift and NO_MEASUREMENTS in uplift and "<svg" not in uplift
    assert "<table" not in page.split('<section id="uplift">')[1]


def test_measured_uplift_has_its_intervals_and_a_table_per_campaign(night: Night):
    rows = set_metrics(night.engine)
    report = build_html_report(night.engine, RUN_DATE)
    assert report.failures == {}
    assert "<path" in figure(report.html, "uplift")
    campaigns = {r["campaign_id"] for r in rows}
    section = report.html.split('<section id="uplift">')[1]
    assert section.count("<table>") == len(campaigns)
    assert "all campaigns vs the global control group" in section and '<tr class="small">' in section
    assert "too few customers" in section


def test_dates_backwards_and_an_unknown_campaign_are_clear_errors(night: Night):
    with pytest.raises(BadDateRange, match="is after"):
        render_html_report(night.engine, RUN_DATE, RUN_DATE.replace(day=1))
    with pytest.raises(UnknownCampaign, match=r"unknown campaign 'no_such_campaign'.*winback_push"):
        render_html_report(night.engine, RUN_DATE, campaign="no_such_campaign")


def test_a_chart_that_fails_is_named_and_the_others_are_still_drawn(night: Night, tmp_path, monkeypatch):
    def broken(_points):
        raise RuntimeError("no ink")

    monkeypatch.setattr(charts, "delivery_chart", broken)
    with pytest.raises(ChartsFailed, match="delivery: RuntimeError: no ink") as failed:
        write_html_report(night.engine, tmp_path / "out" / "report.html", RUN_DATE)
    page = failed.value.path.read_text(encoding="utf-8")
    assert 'data-error="true"' in figure(page, "delivery") and "no ink" in figure(page, "delivery")
    assert "<svg" in figure(page, "funnel")


def test_the_report_stage_keeps_the_json_report_when_a_chart_fails(night: Night, monkeypatch):
    def broken(_histogram):
        raise ValueError("bad zone")

    monkeypatch.setattr(charts, "send_times_chart", broken)
    path = report_stage(Run(night.config))
    assert path == night.report and json.loads(path.read_text(encoding="utf-8"))["run_date"] == RUN_DATE.isoformat()
    with night.engine.connect() as conn:
        detail = conn.execute(
            sa.select(run_log.c.detail)
            .where(run_log.c.run_id == "report-night", run_log.c.stage == "report")
            .order_by(run_log.c.started_at.desc())
            .limit(1)
        ).scalar_one()
    recorded = json.loads(detail)
    assert recorded["status"] == "ok" and recorded["html_failed_charts"] == ["send_times"]
    assert "send_times: ValueError: bad zone" in recorded["html_error"]


# ---------------------------------------------------------------- in a browser


def chart_problems(page) -> list[str]:
    """What is wrong with the charts as Chromium renders them (empty when every one is drawn)."""
    problems = []
    for name in CHARTS:
        figures = page.locator(f'section#{name} figure[data-chart="{name}"]')
        if figures.count() != 1:
            problems.append(f"{name}: {figures.count()} figures")
            continue
        svg = figures.locator("svg")
        if svg.count() != 1:
            problems.append(f"{name}: no chart ({figures.inner_text()[:120]!r})")
            continue
        box = svg.bounding_box()
        if box is None or box["width"] < 300 or box["height"] < 100:
            problems.append(f"{name}: rendered {box}")
        if svg.locator("path").count() < 10:
            problems.append(f"{name}: {svg.locator('path').count()} paths")
    return problems


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        if REQUIRE_BROWSER:
            pytest.fail(f"REQUIRE_BROWSER=1 but {CHROMIUM} is missing: apt-get install -y chromium")
        pytest.skip(f"no {CHROMIUM} here (apt-get install -y chromium); REQUIRE_BROWSER=1 makes this a failure")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=["--no-sandbox"])
        yield browser
        browser.close()


def open_offline(browser, path: Path):
    """A page with `path` loaded, where any request that is not for a local file is refused and noted."""
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    left: list[str] = []

    def only_files(route):
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            left.append(route.request.url)
            route.abort()

    page.route("**/*", only_files)
    page.on(
        "request", lambda request: None if request.url.startswith(("file://", "data:")) else left.append(request.url)
    )
    page.goto(path.as_uri(), wait_until="load")
    return page, left


def test_in_chromium_every_chart_renders_and_nothing_leaves_for_the_network(night: Night, browser, tmp_path):
    from PIL import Image

    set_metrics(night.engine)
    path = write_html_report(night.engine, tmp_path / "report.html", RUN_DATE, segment_lookback_days=29)
    page, left = open_offline(browser, path)
    try:
        assert chart_problems(page) == []
        shot = tmp_path / "report.png"
        page.screenshot(path=str(shot), full_page=True)
    finally:
        page.close()
    assert left == []
    with Image.open(shot) as image:
        rgb = image.convert("RGB")
        colours = rgb.getcolors(maxcolors=1 << 24) or []
        assert rgb.height > 2000 and len(colours) > 64, (rgb.size, len(colours))


def test_in_chromium_a_missing_chart_is_noticed(night: Night, browser, tmp_path, monkeypatch):
    monkeypatch.setattr(charts, "uplift_chart", lambda *_a, **_k: "")
    set_metrics(night.engine)
    path = tmp_path / "report.html"
    path.write_text(render_html_report(night.engine, RUN_DATE), encoding="utf-8")
    page, _left = open_offline(browser, path)
    try:
        assert [p.split(":")[0] for p in chart_problems(page)] == ["uplift"]
    finally:
        page.close()
