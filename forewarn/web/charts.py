"""Charts drawn on the server as inline SVG: no script, no CDN, nothing to install.

Why SVG from our own code rather than a JavaScript library: the console's pages allow no
script at all (``Content-Security-Policy: default-src 'none'``), which a chart library
would have to loosen, and a library vendored from npm would need a build step that a
fresh ``pip install -e .`` does not run. What makes SVG fast with 10 000+ points is that
the browser never sees them: each pixel column keeps only its lowest and highest value
(min/max decimation), so a week at one-minute resolution (10 080 points) becomes at most
two points per pixel — the line looks the same, spikes included — and the page stays
small (see docs/benchmarks.md for the measured weight and time).

Zoom without script: the plot is cut into vertical strips, each a link to the same page
over a shorter window centred on that strip.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

from markupsafe import Markup, escape

WIDTH = 960
HEIGHT = 240
_LEFT, _RIGHT, _TOP, _BOTTOM = 56, 150, 12, 26
ZOOM_STRIPS = 12


@dataclass(frozen=True)
class Level:
    """A horizontal line: a rule's effective level and where it comes from."""

    value: float
    label: str
    tone: str = "bad"
    """``bad`` (fires beyond it) or ``ok`` (clears back within it)."""


@dataclass(frozen=True)
class Span:
    """A shaded time range: an alert while it was open."""

    start: datetime
    end: datetime
    label: str
    tone: str = ""
    """An extra CSS class (a backtest shades the draft's alerts and the current rules'
    differently)."""


@dataclass(frozen=True)
class Point:
    at: datetime
    value: float


def decimate(points: Sequence[Point], start: datetime, end: datetime, columns: int) -> list[Point]:
    """At most two points per column (its lowest and highest, in time order)."""
    span = (end - start).total_seconds() or 1.0
    kept: list[Point] = []
    column = -1
    low: Point | None = None
    high: Point | None = None

    def flush() -> None:
        if low is None or high is None:
            return
        kept.extend(sorted({id(low): low, id(high): high}.values(), key=lambda p: p.at))

    for point in points:
        x = int((point.at - start).total_seconds() / span * columns)
        if x != column:
            flush()
            column, low, high = x, point, point
            continue
        assert low is not None
        assert high is not None
        if point.value < low.value:
            low = point
        if point.value > high.value:
            high = point
    flush()
    return kept


def _nice_ticks(low: float, high: float, count: int = 4) -> list[float]:
    if high <= low:
        high = low + 1
    raw = (high - low) / count
    magnitude = 10 ** math.floor(math.log10(raw))
    step = next(m * magnitude for m in (1, 2, 2.5, 5, 10) if m * magnitude >= raw)
    first = math.ceil(low / step) * step
    ticks = []
    value = first
    while value <= high + step * 1e-9:
        ticks.append(round(value, 10))
        value += step
    return ticks


def _time_label(moment: datetime, span: timedelta) -> str:
    return moment.strftime("%H:%M" if span <= timedelta(days=1) else "%m-%d %H:%M")


def time_series(
    points: Sequence[Point],
    start: datetime,
    end: datetime,
    *,
    title: str,
    unit: str = "",
    levels: Sequence[Level] = (),
    spans: Sequence[Span] = (),
    zoom: Callable[[datetime], str] | None = None,
    width: int = WIDTH,
    height: int = HEIGHT,
) -> Markup:
    """An SVG line chart of ``points`` between ``start`` and ``end``.

    ``levels`` are drawn as labelled dashed lines, ``spans`` as shaded bands, and with
    ``zoom`` (a function from a moment to a URL) each strip of the plot links to a closer
    look at that moment.
    """
    plot_w, plot_h = width - _LEFT - _RIGHT, height - _TOP - _BOTTOM
    shown = decimate(points, start, end, plot_w)
    values = [p.value for p in shown] + [level.value for level in levels]
    low, high = (min(values), max(values)) if values else (0.0, 1.0)
    pad = (high - low) * 0.08 or max(abs(high) * 0.1, 1.0)
    low, high = low - pad, high + pad
    span_s = (end - start).total_seconds() or 1.0

    def x(moment: datetime) -> float:
        return _LEFT + (moment - start).total_seconds() / span_s * plot_w

    def y(value: float) -> float:
        return _TOP + (high - value) / (high - low) * plot_h

    parts: list[str] = [
        f'<svg class="chart" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'preserveAspectRatio="xMinYMin meet" aria-label="{escape(title)}">',
        f"<title>{escape(title)}</title>",
        f'<rect x="{_LEFT}" y="{_TOP}" width="{plot_w}" height="{plot_h}" class="plot"/>',
    ]
    for band in spans:
        left = max(_LEFT, x(max(band.start, start)))
        right = min(_LEFT + plot_w, x(min(band.end, end)))
        if right > left:
            parts.append(
                f'<rect class="alert-span {band.tone}" x="{left:.1f}" y="{_TOP}" '
                f'width="{right - left:.1f}" '
                f'height="{plot_h}"><title>{escape(band.label)}</title></rect>'
            )
    for tick in _nice_ticks(low, high):
        ty = y(tick)
        parts.append(
            f'<line class="grid" x1="{_LEFT}" x2="{_LEFT + plot_w}" y1="{ty:.1f}" y2="{ty:.1f}"/>'
            f'<text class="axis" x="{_LEFT - 6}" y="{ty + 4:.1f}" text-anchor="end">{tick:g}</text>'
        )
    for n in range(6):
        moment = start + (end - start) * n / 5
        tx = x(moment)
        anchor = "start" if n == 0 else "end" if n == 5 else "middle"
        parts.append(
            f'<text class="axis" x="{tx:.1f}" y="{height - 8}" text-anchor="{anchor}">'
            f"{_time_label(moment, end - start)}</text>"
        )
    if shown:
        path = " ".join(
            f"{'M' if i == 0 else 'L'}{x(p.at):.1f},{y(p.value):.1f}" for i, p in enumerate(shown)
        )
        parts.append(f'<path class="series" d="{path}"/>')
    else:
        parts.append(
            f'<text class="axis" x="{_LEFT + plot_w / 2}" y="{_TOP + plot_h / 2}" '
            'text-anchor="middle">no readings in this window</text>'
        )
    for level in levels:
        ly = y(level.value)
        parts.append(
            f'<line class="level {level.tone}" x1="{_LEFT}" x2="{_LEFT + plot_w}" '
            f'y1="{ly:.1f}" y2="{ly:.1f}"/>'
            f'<text class="level-label {level.tone}" x="{_LEFT + plot_w + 6}" y="{ly + 4:.1f}">'
            f"{escape(level.label)}</text>"
        )
    if zoom is not None:
        strip = plot_w / ZOOM_STRIPS
        for n in range(ZOOM_STRIPS):
            centre = start + (end - start) * (n + 0.5) / ZOOM_STRIPS
            parts.append(
                f'<a href="{escape(zoom(centre))}" class="zoom"><rect x="{_LEFT + n * strip:.1f}" '
                f'y="{_TOP}" width="{strip:.1f}" height="{plot_h}">'
                f"<title>zoom in around {centre:%Y-%m-%d %H:%M} UTC</title></rect></a>"
            )
    parts.append("</svg>")
    # Every text above went through escape(); the rest is numbers we formatted.
    return Markup("".join(parts))  # noqa: S704


def bars(
    rows: Sequence[tuple[str, float | None]], *, title: str, unit: str = "", width: int = 480
) -> Markup:
    """Horizontal bars with their numbers beside them; None (no data) shows a dash."""
    row_h, label_w, number_w = 24, 170, 70
    height = max(1, len(rows)) * row_h + 8
    top = max((v for _, v in rows if v is not None), default=0.0) or 1.0
    plot_w = width - label_w - number_w
    parts = [
        f'<svg class="chart bars" viewBox="0 0 {width} {height}" width="100%" role="img" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>'
    ]
    for n, (label, value) in enumerate(rows):
        top_y = 4 + n * row_h
        bar = max(0.0, value or 0.0) / top * plot_w
        shown = "—" if value is None else f"{value:g}{unit}"
        parts.append(
            f'<text class="axis" x="{label_w - 6}" y="{top_y + 15}" text-anchor="end">'
            f"{escape(label[:28])}</text>"
            f'<rect class="bar" x="{label_w}" y="{top_y + 3}" width="{bar:.1f}" '
            f'height="{row_h - 8}"/>'
            f'<text class="number" x="{label_w + bar + 6:.1f}" y="{top_y + 15}">'
            f"{escape(shown)}</text>"
        )
    if not rows:
        parts.append(
            f'<text class="axis" x="{width / 2}" y="16" text-anchor="middle">no data</text>'
        )
    parts.append("</svg>")
    return Markup("".join(parts))  # noqa: S704 - labels escaped above
