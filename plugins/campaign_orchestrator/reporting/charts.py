"""The HTML report's charts, one function each, drawn by matplotlib as inline SVG.

Why this shape: every chart is a `matplotlib.figure.Figure` of its own, never pyplot, so nothing
global is touched and two reports can be drawn on two threads at once; the text is drawn as paths
(`svg.fonttype` "path"), so the page needs no font and looks the same everywhere. Matplotlib takes
a second to import, so it is imported on the first chart, never when the engine is imported (ruff
TID253 holds that). Each function takes the figures `chart_data` read (counts only) and returns
an `<svg>` element whose ids are prefixed with the chart's name, so several charts can share one
HTML document without their clip paths and glyphs meeting.
"""

from __future__ import annotations

import io
import math
import re
from collections.abc import Mapping, Sequence
from functools import cache
from typing import TYPE_CHECKING, Any

from campaign_orchestrator.reporting.chart_data import (
    DELIVERY_KINDS,
    DeliveryPoint,
    FunnelRow,
    MetricRow,
    SegmentPoint,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

WIDTH = 10.0  # inches; the page scales the SVG to its column
GREY = "#9e9e9e"
KIND_COLOURS = {
    "sent": "#2e7d32",
    "scheduled": "#1565c0",
    "pending": "#f9a825",
    "failed": "#c62828",
    "unknown": "#6a1b9a",
    "dead": "#424242",
    "held": "#ef6c00",
}
_ID = re.compile(r'\bid="([^"]+)"')
_ID_OR_REFERENCE = re.compile(r'(\bid="|href="#|url\(#)([^")]+)')


@cache
def _matplotlib() -> Any:
    """Matplotlib, imported on the first chart; text as paths, so the page needs no font."""
    import matplotlib

    matplotlib.rcParams["svg.fonttype"] = "path"  # the default; pinned here so a matplotlibrc cannot change it
    return matplotlib


def _dates() -> Any:
    """matplotlib.dates (untyped): date tick locators and formatters, date2num."""
    _matplotlib()
    import matplotlib.dates

    return matplotlib.dates


def _date_axis(ax: Axes, maxticks: int, whole_days: bool = False) -> None:
    """Dates on the x axis; `whole_days`: ticks on nights only (never 03:00 between two nights)."""
    dates = _dates()
    low, high = ax.get_xlim()
    if whole_days and high - low <= maxticks:
        locator = dates.DayLocator()
        ax.set_xlim(low - 0.25, high + 0.25)
    else:
        locator = dates.AutoDateLocator(maxticks=maxticks)
    ax.xaxis.set_major_locator(locator)
    ax.xaxis.set_major_formatter(dates.ConciseDateFormatter(locator))


def _figure(height: float, width: float = WIDTH) -> Figure:
    _matplotlib()
    from matplotlib.figure import Figure

    return Figure(figsize=(width, max(height, 1.5)), layout="constrained")


def to_svg(fig: Figure, name: str) -> str:
    """The figure as an `<svg>` element for an HTML page: no XML prologue, no metadata, ids scoped."""
    buffer = io.StringIO()
    fig.savefig(buffer, format="svg", metadata={"Date": None})
    text = buffer.getvalue()
    text = text[text.index("<svg") :]
    text = re.sub(r"\s*<metadata>.*?</metadata>", "", text, count=1, flags=re.S)
    ids = set(_ID.findall(text))
    text = _ID_OR_REFERENCE.sub(lambda m: m[1] + (f"{name}-{m[2]}" if m[2] in ids else m[2]), text)
    return text.replace("<svg ", f'<svg role="img" aria-label="{name} chart" ', 1)


def _colours(n: int) -> list[Any]:
    cmap = _matplotlib().colormaps["tab20" if n > 10 else "tab10"]
    return [cmap(i % cmap.N) for i in range(n)]


def _thousands(ax: Axes, axis: str = "x") -> None:
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    target = ax.xaxis if axis == "x" else ax.yaxis
    target.set_major_formatter(FuncFormatter(lambda v, _pos: f"{v:,.0f}"))
    target.set_major_locator(MaxNLocator(integer=True))


# ---------------------------------------------------------------- funnel


def funnel_chart(rows: Sequence[FunnelRow]) -> str:
    """Per campaign a horizontal waterfall: the segment, each exclusion reason taken off what is
    left, then targeted and delivered; every bar labelled with its count."""
    cols = 1 if len(rows) == 1 else 2
    lines = math.ceil(len(rows) / cols)
    tallest = max(3 + len(r.excluded) for r in rows)
    fig = _figure(height=lines * (0.32 * tallest + 0.9))
    axes = fig.subplots(lines, cols, squeeze=False)
    for ax, row in zip(axes.flat, rows, strict=False):
        _funnel_axes(ax, row)
    for ax in list(axes.flat)[len(rows) :]:
        ax.set_axis_off()
    return to_svg(fig, "funnel")


def _funnel_axes(ax: Axes, row: FunnelRow) -> None:
    labels, lefts, widths, colours = ["segment"], [0], [row.segment_size], ["#546e7a"]
    left = row.segment_size
    for reason, n in row.excluded.items():
        left -= n
        labels.append(reason.replace("_", " "))
        lefts.append(max(left, 0))
        widths.append(n)
        colours.append("#e57373")
    labels += ["targeted", "delivered"]
    lefts += [0, 0]
    widths += [row.targeted, row.delivered]
    colours += ["#1565c0", "#2e7d32"]
    ys = list(range(len(labels)))
    ax.barh(ys, widths, left=lefts, color=colours, height=0.7)
    top = max([*(a + b for a, b in zip(lefts, widths, strict=True)), 1])
    for y, x0, w in zip(ys, lefts, widths, strict=True):
        ax.text(x0 + w + top * 0.01, y, f"{w:,}", va="center", fontsize=8)
    ax.set_yticks(ys, labels, fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, top * 1.18)
    ax.set_title(row.campaign_id, fontsize=10, loc="left")
    _thousands(ax)
    ax.tick_params(axis="x", labelsize=7)
    ax.spines[["top", "right"]].set_visible(False)


# ---------------------------------------------------------------- segment sizes


def segment_sizes_chart(points: Sequence[SegmentPoint]) -> str:
    """Members per segment and night, one line each; for a single night, one bar per segment with
    how many entered and left since the run before."""
    if len({p.run_date for p in points}) == 1:
        return _segment_bars(points)
    date2num = _dates().date2num
    by_segment: dict[str, list[SegmentPoint]] = {}
    for p in points:
        by_segment.setdefault(p.segment_id, []).append(p)
    fig = _figure(height=4.5)
    ax = fig.add_subplot()
    for colour, (segment, series) in zip(_colours(len(by_segment)), sorted(by_segment.items()), strict=True):
        xs = [float(date2num(p.run_date)) for p in series]
        ax.plot(xs, [p.members for p in series], marker="o", markersize=3, color=colour, label=segment)
    _date_axis(ax, maxticks=10, whole_days=True)
    _thousands(ax, "y")
    ax.set_ylabel("members")
    ax.set_ylim(bottom=0)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return to_svg(fig, "segment_sizes")


def _segment_bars(points: Sequence[SegmentPoint]) -> str:
    ordered = sorted(points, key=lambda p: (-p.members, p.segment_id))
    fig = _figure(height=0.28 * len(ordered) + 1.2)
    ax = fig.add_subplot()
    ys = list(range(len(ordered)))
    ax.barh(ys, [p.members for p in ordered], color="#546e7a", height=0.7)
    top = max([p.members for p in ordered] + [1])
    for y, p in zip(ys, ordered, strict=True):
        ax.text(p.members + top * 0.01, y, f"{p.members:,} (+{p.entered:,} / -{p.exited:,})", va="center", fontsize=8)
    ax.set_yticks(ys, [p.segment_id for p in ordered], fontsize=8)
    ax.invert_yaxis()
    ax.set_xlim(0, top * 1.25)
    ax.set_xlabel(f"members on {ordered[0].run_date.isoformat()} (+entered / -left since the run before)")
    _thousands(ax)
    ax.spines[["top", "right"]].set_visible(False)
    return to_svg(fig, "segment_sizes")


# ---------------------------------------------------------------- send times


def send_times_chart(histogram: Mapping[str, Sequence[int]]) -> str:
    """Targeted messages per hour of the day in the customer's own time zone, stacked by campaign."""
    fig = _figure(height=4.2)
    ax = fig.add_subplot()
    hours = list(range(24))
    bottom = [0] * 24
    for colour, (campaign, counts) in zip(_colours(len(histogram)), histogram.items(), strict=True):
        ax.bar(hours, counts, bottom=bottom, color=colour, label=campaign, width=0.85)
        bottom = [a + b for a, b in zip(bottom, counts, strict=True)]
    ax.set_xticks(hours, [f"{h:02d}" for h in hours], fontsize=8)
    ax.set_xlim(-0.6, 23.6)
    ax.margins(y=0.08)
    ax.set_xlabel("local hour of the customer (their time zone; none or unknown: UTC)")
    ax.set_ylabel("messages")
    _thousands(ax, "y")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return to_svg(fig, "send_times")


# ---------------------------------------------------------------- delivery


def delivery_chart(points: Sequence[DeliveryPoint]) -> str:
    """Messages per UTC hour, stacked by what became of them (sent, scheduled, pending, failed, ...)."""
    import datetime as dt

    date2num = _dates().date2num
    hours = sorted({p.hour for p in points})
    kinds = [k for k in DELIVERY_KINDS if any(p.kind == k for p in points)]
    kinds += sorted({p.kind for p in points} - set(kinds))
    counts = {(p.hour, p.kind): p.messages for p in points}
    fig = _figure(height=4.2)
    ax = fig.add_subplot()
    xs = [float(date2num(h + dt.timedelta(minutes=30))) for h in hours]
    bottom = [0] * len(hours)
    for kind in kinds:
        values = [counts.get((h, kind), 0) for h in hours]
        ax.bar(xs, values, bottom=bottom, width=1 / 24 * 0.9, color=KIND_COLOURS.get(kind, GREY), label=kind)
        bottom = [a + b for a, b in zip(bottom, values, strict=True)]
    _date_axis(ax, maxticks=12)
    span = date2num(hours[-1]) - date2num(hours[0])
    if span < 0.5:  # a few hours: give them room
        middle = (date2num(hours[-1]) + date2num(hours[0])) / 2 + 1 / 48
        ax.set_xlim(middle - 0.3, middle + 0.3)
    ax.set_xlabel("hour (UTC)")
    ax.set_ylabel("messages")
    _thousands(ax, "y")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.01, 1), frameon=False)
    ax.spines[["top", "right"]].set_visible(False)
    return to_svg(fig, "delivery")


# ---------------------------------------------------------------- uplift


def uplift_chart(rows: Sequence[MetricRow], show_dates: bool = False) -> str:
    """Uplift in percentage points per campaign and variant with its 95% interval; significant
    results filled, others hollow, samples too small to judge in grey."""
    points = [(r, ci) for r in rows if (ci := r.interval()) is not None]
    fig = _figure(height=0.38 * len(points) + 1.4)
    ax = fig.add_subplot()
    labels = []
    for y, (row, (mid, low, high)) in enumerate(points):
        small = bool(row.values.get("too_small"))
        significant = bool(row.values.get("significant") or row.values.get("global_significant"))
        colour = GREY if small else ("#1565c0" if significant else "#5c6bc0")
        ax.errorbar(
            [mid * 100],
            [y],
            xerr=[[max(mid - low, 0) * 100], [max(high - mid, 0) * 100]],
            fmt="o",
            color=colour,
            markerfacecolor=colour if significant and not small else "white",
            capsize=4,
            elinewidth=1.5,
        )
        label = row.label + (f" ({row.run_date.isoformat()})" if show_dates else "")
        labels.append(label + (" - too small" if small else ""))
    ax.axvline(0, color="#616161", linewidth=1)
    ax.set_yticks(range(len(points)), labels, fontsize=8)
    ax.set_ylim(len(points) - 0.5, -0.5)
    ax.set_xlabel("uplift, percentage points (95% confidence interval)")
    ax.grid(axis="x", alpha=0.3)
    ax.spines[["top", "right"]].set_visible(False)
    return to_svg(fig, "uplift")


def uplift_points(rows: Sequence[MetricRow]) -> int:
    """How many rows the uplift chart can place (those with an uplift)."""
    return sum(1 for r in rows if r.interval() is not None)
