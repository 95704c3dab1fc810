"""The HTML report: one self-contained page of charts for a night or a range of nights
(`campaigns report --html FILE`, and `run_report.html` next to each night's `run_report.json`).

Why a page of its own: the JSON and Markdown reports are for machines and terminals; a marketer
wants to see the funnel, when messages reach customers in their own hours, how delivery went and
the uplift with its uncertainty. The page must open anywhere (a mail attachment, an artefact
store, a laptop offline), so it carries everything inline: each chart is SVG drawn by matplotlib
with its text as paths, one small <style>, no script, no font, no request. It shows counts and
rates only: no customer id, name or address can reach it, because `chart_data` reads aggregates.

A chart that cannot be drawn does not cost the page: its section says so, and the failure is
returned (`HtmlReport.failures`) or raised after the page is written (`ChartsFailed`), so a
night's report stage can log it and still keep its JSON report.
"""

from __future__ import annotations

import datetime as dt
import html
import logging
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.engine import Engine

from campaign_orchestrator.clock import utcnow
from campaign_orchestrator.errors import CampaignError, InvalidInput
from campaign_orchestrator.reporting import chart_data as data
from campaign_orchestrator.reporting import charts
from campaign_orchestrator.warehouse.engine import redacted
from campaign_orchestrator.warehouse.measurement_tables import ALL

log = logging.getLogger(__name__)

CHARTS = ("funnel", "segment_sizes", "send_times", "delivery", "uplift")
MAX_DAYS = 366
NO_MEASUREMENTS = "No measurements yet"

STYLE = """
body{font:15px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;color:#212121;margin:0;background:#fafafa}
header,main{max-width:1100px;margin:0 auto;padding:0 24px}
header{padding-top:20px;border-bottom:1px solid #ddd}
h1{font-size:24px;margin:0 0 4px}h2{font-size:19px;margin:28px 0 4px}h3{font-size:15px;margin:18px 0 4px}
dl{display:grid;grid-template-columns:max-content 1fr;gap:2px 14px;margin:8px 0 14px}dt{color:#616161}dd{margin:0}
section{background:#fff;border:1px solid #e0e0e0;border-radius:6px;padding:4px 18px 14px;margin:18px 0}
figure{margin:8px 0}figure svg{max-width:100%;height:auto;display:block}
.note{color:#616161;font-size:13px;margin:2px 0 8px}.empty{font-style:italic;color:#616161}
.error{color:#b71c1c;font-weight:600}
table{border-collapse:collapse;font-size:12px;margin:6px 0 12px}
th,td{border-bottom:1px solid #eee;padding:3px 8px;text-align:right;white-space:nowrap}
th:first-child,td:first-child{text-align:left}th{color:#424242;background:#f5f5f5}
td.small,tr.small td{color:#9e9e9e}
.wide{overflow-x:auto}
"""

# The metrics tables' columns: (campaign_metrics column, heading, how to show it).
TABLE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("treatment", "treatment", "count"),
    ("held_out", "held out", "count"),
    ("sent", "sent", "count"),
    ("delivered", "delivered", "count"),
    ("opened", "opened", "count"),
    ("clicked", "clicked", "count"),
    ("converted", "converted", "count"),
    ("conversion_rate", "rate", "percent"),
    ("held_out_rate", "holdout rate", "percent"),
    ("uplift", "uplift (95% CI)", "interval"),
    ("p_value", "p", "p"),
    ("global_uplift", "vs global (95% CI)", "interval"),
    ("significant", "significant", "flag"),
    ("srm_mismatch", "sample ratio off", "flag"),
    ("too_small", "too small", "flag"),
)


class BadDateRange(CampaignError, InvalidInput, ValueError):
    """The report's dates are backwards or span too long."""


class UnknownCampaign(CampaignError, InvalidInput, LookupError):
    """The report was asked for a campaign the warehouse has nothing of between the dates."""


class ChartsFailed(CampaignError):
    """The page was written, but some charts could not be drawn (their sections say why)."""

    def __init__(self, path: Path, failures: dict[str, str]) -> None:
        self.path, self.failures = path, failures
        shown = "; ".join(f"{name}: {error}" for name, error in failures.items())
        super().__init__(f"wrote {path}, but {len(failures)} chart(s) could not be drawn: {shown}")


@dataclass
class HtmlReport:
    html: str
    failures: dict[str, str] = field(default_factory=dict)  # chart -> "ErrorType: message"


def check_dates(date_from: dt.date, date_to: dt.date) -> None:
    if date_to < date_from:
        raise BadDateRange(f"bad date range: {date_from.isoformat()} is after {date_to.isoformat()}")
    if (date_to - date_from).days + 1 > MAX_DAYS:
        raise BadDateRange(
            f"bad date range: {date_from.isoformat()} to {date_to.isoformat()} is "
            f"{(date_to - date_from).days + 1} days; a report covers at most {MAX_DAYS}"
        )


def build_html_report(
    engine: Engine,
    date_from: dt.date,
    date_to: dt.date | None = None,
    campaign: str | None = None,
    *,
    segments: Collection[str] | None = None,
    segment_lookback_days: int = 0,
    now: dt.datetime | None = None,
) -> HtmlReport:
    """The page for the run dates `date_from`..`date_to` (one night when `date_to` is None), for
    every campaign or one. `segments` narrows the segment chart (e.g. to a campaign's segment);
    `segment_lookback_days` starts it that many nights earlier, so a single night shows a trend.

    Raises BadDateRange, or UnknownCampaign naming the campaign and those the dates have."""
    date_to = date_to or date_from
    check_dates(date_from, date_to)
    if campaign is not None:
        with engine.connect() as conn:
            known = data.known_campaigns(conn, date_from, date_to)
        if campaign not in known:
            span = _span(date_from, date_to)
            listed = ", ".join(sorted(known)) or "none"
            raise UnknownCampaign(
                f"unknown campaign {campaign!r}: nothing of it in the warehouse for {span} (campaigns there: {listed})"
            )
    failures: dict[str, str] = {}
    page = _Page(engine, date_from, date_to, campaign, failures)
    segment_from = date_from - dt.timedelta(days=max(segment_lookback_days, 0))
    body = [
        page.section(
            "funnel",
            "Funnel: segment to delivered",
            "Per campaign: the segment's members, each exclusion reason taken off what is left, the target "
            "list and the messages delivered" + (" (summed over the nights)." if date_to > date_from else "."),
            lambda c: _drawn(charts.funnel_chart, data.funnel_rows(c, date_from, date_to, campaign)),
            "No campaign had a segment, a target list or a delivery on these dates.",
        ),
        page.section(
            "segment_sizes",
            "Segment sizes over time",
            f"Members per segment and night, {_span(segment_from, date_to)}.",
            lambda c: _drawn(charts.segment_sizes_chart, data.segment_points(c, segment_from, date_to, segments)),
            "No segment was computed on these dates.",
        ),
        page.section(
            "send_times",
            "Send times in the customers' local time",
            "Targeted messages per hour of the day in each customer's own time zone (none or unknown: UTC), "
            "stacked by campaign.",
            lambda c: _drawn(charts.send_times_chart, data.send_time_histogram(c, date_from, date_to, campaign)),
            "No target list on these dates.",
        ),
        page.section(
            "delivery",
            "Delivery over time",
            "Messages per hour (UTC) by what became of them: sent when handed over; scheduled when handed to "
            "the provider to send later (at the hour it sends them); pending, failed, unknown, dead and held "
            "at the hour they were due.",
            lambda c: _drawn(charts.delivery_chart, data.delivery_points(c, date_from, date_to, campaign)),
            "No delivery batch on these dates.",
        ),
        page.uplift_section(),
    ]
    head = _header(engine, date_from, date_to, campaign, now or utcnow(), failures)
    document = (
        '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>Campaign report {html.escape(_span(date_from, date_to))}</title>\n"
        f"<style>{STYLE}</style>\n</head>\n<body>\n{head}\n<main>\n" + "\n".join(body) + "\n</main>\n</body>\n</html>\n"
    )
    return HtmlReport(document, failures)


def render_html_report(
    engine: Engine,
    date_from: dt.date,
    date_to: dt.date | None = None,
    campaign: str | None = None,
    **options: Any,
) -> str:
    """The page as a string; a chart that failed says so in its section (see build_html_report)."""
    return build_html_report(engine, date_from, date_to, campaign, **options).html


def write_html_report(
    engine: Engine,
    path: Path,
    date_from: dt.date,
    date_to: dt.date | None = None,
    campaign: str | None = None,
    **options: Any,
) -> Path:
    """Write the page to `path` (folders made); raises ChartsFailed after writing if a chart failed."""
    report = build_html_report(engine, date_from, date_to, campaign, **options)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(report.html, encoding="utf-8")
    if report.failures:
        raise ChartsFailed(path, report.failures)
    return path


# ---------------------------------------------------------------- page parts


def _span(date_from: dt.date, date_to: dt.date) -> str:
    return date_from.isoformat() if date_from == date_to else f"{date_from.isoformat()} to {date_to.isoformat()}"


def _drawn(draw: Callable[[Any], str], rows: Any) -> str | None:
    return draw(rows) if rows else None


class _Page:
    """The sections of one page; each reads its figures on a connection of its own, so a query
    or a chart that fails leaves the others whole."""

    def __init__(
        self, engine: Engine, date_from: dt.date, date_to: dt.date, campaign: str | None, failures: dict[str, str]
    ) -> None:
        self.engine, self.date_from, self.date_to, self.campaign = engine, date_from, date_to, campaign
        self.failures = failures

    def section(
        self,
        name: str,
        title: str,
        note: str,
        draw: Callable[[Any], str | None],
        empty: str | Callable[[], str],
        tail: Callable[[], str] = str,
    ) -> str:
        """`draw` returns the chart's SVG, or None when the dates have nothing to show: then `empty`
        says so. `tail` (called after `draw`) adds to the section, e.g. a table."""
        try:
            with self.engine.connect() as conn:
                svg = draw(conn)
        except Exception as exc:
            log.exception("chart %s could not be drawn", name)
            self.failures[name] = f"{type(exc).__name__}: {exc}"
            inner = f'<p class="error">This chart could not be drawn: {html.escape(self.failures[name])}</p>'
            return _section(name, title, note, inner, 'data-error="true"', tail())
        if svg is None:
            text = empty if isinstance(empty, str) else empty()
            return _section(name, title, note, f'<p class="empty">{html.escape(text)}</p>', 'data-empty="true"', tail())
        return _section(name, title, note, svg, "", tail())

    def uplift_section(self) -> str:
        """Uplift with its interval per campaign and variant, then the metrics tables; until metrics
        are computed for the dates, a sentence that says so in place of the chart."""
        rows: list[data.MetricRow] = []

        def draw(conn: Any) -> str | None:
            rows.extend(data.metric_rows(conn, self.date_from, self.date_to, self.campaign))
            if not charts.uplift_points(rows):
                return None
            return charts.uplift_chart(rows, show_dates=self.date_to > self.date_from)

        note = (
            "Absolute uplift in conversion rate against the campaign's holdout (campaign '*': every campaign "
            "against the global control group), with its 95% confidence interval. Filled points are significant; "
            "grey points had too few customers to judge (too small) and are shown for completeness only."
        )

        def empty() -> str:
            if rows:  # measured, but no campaign had a holdout or control group to measure against
                return "No uplift to show: the metrics of these dates have no control group to compare with."
            return (
                f"{NO_MEASUREMENTS}: campaign metrics have not been computed for "
                f"{_span(self.date_from, self.date_to)} (they need the engagement and conversions after the sends)."
            )

        return self.section(
            "uplift", "Uplift against control", note, draw, empty, lambda: _metrics_tables(rows) if rows else ""
        )


def _section(name: str, title: str, note: str, inner: str, attrs: str, tail: str = "") -> str:
    attrs = f" {attrs}" if attrs else ""
    return (
        f'<section id="{name}">\n<h2>{html.escape(title)}</h2>\n<p class="note">{html.escape(note)}</p>\n'
        f'<figure data-chart="{name}"{attrs}>\n{inner}\n</figure>\n{tail}</section>'
    )


def _header(
    engine: Engine,
    date_from: dt.date,
    date_to: dt.date,
    campaign: str | None,
    now: dt.datetime,
    failures: dict[str, str],
) -> str:
    items = [
        ("run date" if date_from == date_to else "run dates", _span(date_from, date_to)),
        ("campaign", campaign or "all"),
        ("generated", f"{now:%Y-%m-%d %H:%M} UTC"),
        ("warehouse", redacted(engine.url)),
    ]
    if failures:
        items.append(("charts not drawn", ", ".join(failures)))
    rows = "".join(f"<dt>{html.escape(k)}</dt><dd>{html.escape(v)}</dd>" for k, v in items)
    return f"<header>\n<h1>Campaign report {html.escape(_span(date_from, date_to))}</h1>\n<dl>{rows}</dl>\n</header>"


def _cell(value: Any, how: str, row: data.MetricRow, column: str) -> str:
    if how == "flag":
        return "yes" if value else ""
    if value is None:
        return ""
    if how == "count":
        return f"{int(value):,}"
    if how == "percent":
        return f"{float(value) * 100:.2f}%"
    if how == "p":
        return f"{float(value):.3f}"
    low, high = row.values.get(f"{column}_low"), row.values.get(f"{column}_high")
    interval = f" [{float(low) * 100:+.2f}, {float(high) * 100:+.2f}]" if low is not None and high is not None else ""
    return f"{float(value) * 100:+.2f} pp{interval}"


def _metrics_tables(rows: Sequence[data.MetricRow]) -> str:
    """One compact table per campaign: a line per variant (and night, over several)."""
    parts = ['<h3 id="metrics">Campaign metrics</h3>']
    by_campaign: dict[str, list[data.MetricRow]] = {}
    for row in rows:
        by_campaign.setdefault(row.campaign_id, []).append(row)
    several_days = len({r.run_date for r in rows}) > 1
    for cid, group in by_campaign.items():
        title = "all campaigns vs the global control group" if cid == ALL else cid
        heads = ["variant", *(["night"] if several_days else []), *(h for _, h, _ in TABLE_COLUMNS)]
        lines = []
        for row in group:
            cls = ' class="small"' if row.values.get("too_small") else ""
            cells = [
                row.variant if row.variant != ALL else "all",
                *([row.run_date.isoformat()] if several_days else []),
            ]
            cells += [_cell(row.values.get(col), how, row, col) for col, _, how in TABLE_COLUMNS]
            lines.append(f"<tr{cls}>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
        parts.append(
            f'<h3>{html.escape(title)}</h3>\n<div class="wide"><table>\n<tr>'
            + "".join(f"<th>{html.escape(h)}</th>" for h in heads)
            + "</tr>\n"
            + "\n".join(lines)
            + "\n</table></div>"
        )
    if any(r.values.get("too_small") for r in rows):
        parts.append('<p class="note">Greyed lines had too few customers for their figures to mean much.</p>')
    return "\n".join(parts) + "\n"
