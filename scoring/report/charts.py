"""Inline SVG charts for the ICP report: drawn here, no JavaScript, no fonts, no network.

Every function returns one `<svg>` element as text (or "" when there is nothing to draw).
Coordinates are rounded to one decimal and every label is escaped, so the same figures
always give the same bytes. Sizes are set by `viewBox`; the page's CSS scales them.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Sequence
from html import escape
from typing import TypeGuard

INK, MUTED, GRID, ACCENT = "#1f2933", "#616e7c", "#e4e7eb", "#2563eb"
GOOD, BAD, NEUTRAL = "#15803d", "#b91c1c", "#9aa5b1"
_TIER_PALETTE = ("#166534", "#2f9e68", "#84b547", "#d4a017", "#d97706", "#c2410c")


def tier_colors(count: int) -> list[str]:
    """One colour per tier, best first: greens to ambers, the lowest tier grey."""
    if count <= 1:
        return [_TIER_PALETTE[0]] * count
    best = [_TIER_PALETTE[min(i, len(_TIER_PALETTE) - 1)] for i in range(count - 1)]
    return [*best, NEUTRAL]


def _n(value: float) -> str:
    text = f"{value:.1f}"
    return text[:-2] if text.endswith(".0") else text


def _ok(value: object) -> TypeGuard[float]:
    """A usable figure: a real number, not NaN (strings and None are not)."""
    return (
        isinstance(value, numbers.Real)
        and not isinstance(value, bool)
        and not math.isnan(float(value))
    )


def _size(value: object) -> float:
    return float(value) if _ok(value) and float(value) > 0 else 0.0


def _svg(width: float, height: float, title: str, body: list[str], css: str = "chart") -> str:
    return (
        f'<svg class="{css}" viewBox="0 0 {_n(width)} {_n(height)}" role="img" '
        f'style="max-width:{_n(width * 1.5)}px" '
        f'aria-label="{escape(title)}"><title>{escape(title)}</title>{"".join(body)}</svg>'
    )


def _text(
    x: float,
    y: float,
    text: str,
    *,
    anchor: str = "middle",
    size: float = 11,
    fill: str = INK,
    weight: str = "normal",
) -> str:
    bold = ' font-weight="bold"' if weight == "bold" else ""
    # a white halo keeps a label readable where it crosses a line or a bar
    return (
        f'<text x="{_n(x)}" y="{_n(y)}" text-anchor="{anchor}" font-size="{_n(size)}" '
        f'fill="{fill}"{bold} stroke="#fff" stroke-width="3" paint-order="stroke">'
        f"{escape(text)}</text>"
    )


def _line(
    x1: float,
    y1: float,
    x2: float,
    y2: float,
    stroke: str = GRID,
    *,
    dash: bool = False,
    width: float = 1,
) -> str:
    dashed = ' stroke-dasharray="4 3"' if dash else ""
    return (
        f'<line x1="{_n(x1)}" y1="{_n(y1)}" x2="{_n(x2)}" y2="{_n(y2)}" '
        f'stroke="{stroke}" stroke-width="{_n(width)}"{dashed}/>'
    )


def _rect(x: float, y: float, w: float, h: float, fill: str, rx: float = 2) -> str:
    return (
        f'<rect x="{_n(x)}" y="{_n(y)}" width="{_n(max(w, 0))}" height="{_n(max(h, 0))}" '
        f'rx="{_n(rx)}" fill="{fill}"/>'
    )


def bar_chart(
    title: str,
    labels: Sequence[str],
    values: Sequence[float | None],
    fmt: Callable[[float], str],
    colors: Sequence[str],
    reference: float | None = None,
    reference_label: str = "",
    x_label: str = "tier",
) -> str:
    """Vertical bars, one per label, the value written above each; missing values say n/a.

    Args:
        title: the chart's heading (drawn, and its accessible name).
        labels: category names under the bars.
        values: heights; None or NaN draws no bar.
        fmt: formats a value for its label.
        colors: one fill per bar.
        reference: an optional dashed horizontal line (the overall figure).
        reference_label: its caption.
        x_label: the caption of the horizontal axis (what the labels are).
    """
    width, height, top, bottom, left = 260.0, 194.0, 34.0, 38.0, 8.0
    known = [float(v) for v in values if _ok(v)]
    scale = max([*known, reference if _ok(reference) else 0.0, 0.0]) * 1.12 or 1.0
    plot_h = height - top - bottom
    slot = (width - 2 * left) / max(len(labels), 1)
    body = [_text(left, 16, title, anchor="start", size=12, weight="bold")]
    body.append(_line(left, height - bottom, width - left, height - bottom, MUTED))
    for i, (label, value) in enumerate(zip(labels, values, strict=True)):
        x = left + i * slot + slot * 0.18
        bar_w = slot * 0.64
        if not _ok(value):
            body.append(_text(x + bar_w / 2, height - bottom - 4, "n/a", size=10, fill=MUTED))
        else:
            h = plot_h * float(value) / scale
            y = height - bottom - h
            body.append(_rect(x, y, bar_w, h, colors[i % len(colors)]))
            body.append(_text(x + bar_w / 2, y - 4, fmt(float(value)), size=10))
        body.append(_text(x + bar_w / 2, height - bottom + 15, label, size=11))
    body.append(_text(width / 2, height - 4, x_label, size=10, fill=MUTED))
    if reference is not None and _ok(reference):
        y = height - bottom - plot_h * reference / scale
        body.append(_line(left, y, width - left, y, INK, dash=True))
        # the caption sits in the title row, never on a bar's figure: "- - overall 47%"
        caption = f"{reference_label} {fmt(float(reference))}".strip()
        body.append(
            _line(
                width - left - 8 * len(caption) * 0.62 - 22,
                12,
                width - left - 8 * len(caption) * 0.62 - 6,
                12,
                INK,
                dash=True,
            )
        )
        body.append(_text(width - left, 16, caption, anchor="end", size=9, fill=MUTED))
    return _svg(width, height, title, body)


def calibration_chart(points: Sequence[dict[str, float]]) -> str:
    """Predicted win probability vs the observed win rate, with the diagonal of perfection.

    Args:
        points: `predicted`, `observed` (0-1) and `n` (deals in the bin) per bin.
    """
    points = [
        p
        for p in points
        if isinstance(p, dict) and _ok(p.get("predicted")) and _ok(p.get("observed"))
    ]
    if not points:
        return ""
    size, pad = 300.0, 42.0
    span = size - pad - 12

    def x(v: float) -> float:
        return pad + span * min(max(v, 0.0), 1.0)

    def y(v: float) -> float:
        return size - pad - span * min(max(v, 0.0), 1.0)

    body = []
    for tick in (0.0, 0.25, 0.5, 0.75, 1.0):
        body.append(_line(x(tick), y(0), x(tick), y(1)))
        body.append(_line(x(0), y(tick), x(1), y(tick)))
        body.append(_text(x(tick), size - pad + 14, f"{tick:.0%}", size=9, fill=MUTED))
        body.append(_text(pad - 4, y(tick) + 3, f"{tick:.0%}", anchor="end", size=9, fill=MUTED))
    body.append(_line(x(0), y(0), x(1), y(1), MUTED, dash=True))
    ordered = sorted(points, key=lambda p: float(p["predicted"]))
    path = " ".join(f"{_n(x(p['predicted']))},{_n(y(p['observed']))}" for p in ordered)
    body.append(f'<polyline points="{path}" fill="none" stroke="{ACCENT}" stroke-width="2"/>')
    biggest = max(_size(p.get("n")) for p in ordered) or 1.0
    for p in ordered:
        r = 3 + 6 * math.sqrt(_size(p.get("n")) / biggest)
        body.append(
            f'<circle cx="{_n(x(p["predicted"]))}" cy="{_n(y(p["observed"]))}" r="{_n(r)}" '
            f'fill="{ACCENT}" fill-opacity="0.75"/>'
        )
    body.append(_text(x(0.5), size - 6, "predicted win probability", size=10, fill=MUTED))
    body.append(
        f'<text x="12" y="{_n(y(0.5))}" transform="rotate(-90 12 {_n(y(0.5))})" '
        f'text-anchor="middle" font-size="10" fill="{MUTED}">observed win rate</text>'
    )
    return _svg(size, size, "Calibration: predicted vs observed win rate", body, "chart square")


def histogram(
    bins: Sequence[dict[str, float]], thresholds: Sequence[tuple[str, float, str]]
) -> str:
    """Accounts per score band as bars (coloured by tier), win rate per band as dots.

    Args:
        bins: `low`, `high`, `n` and optionally `win_rate` per band.
        thresholds: (tier, lowest score, colour) from the best tier down.
    """
    bins = [b for b in bins if isinstance(b, dict) and _ok(b.get("low")) and _ok(b.get("high"))]
    if not bins:
        return ""
    width, height, pad_l, pad_r, top, bottom = 560.0, 250.0, 52.0, 52.0, 40.0, 34.0
    low = min(float(b["low"]) for b in bins)
    high = max(float(b["high"]) for b in bins)
    span = (high - low) or 1.0
    plot_w, plot_h = width - pad_l - pad_r, height - top - bottom
    most = max(_size(b.get("n")) for b in bins) or 1.0

    def x(v: float) -> float:
        return pad_l + plot_w * (v - low) / span

    def color(v: float) -> str:
        for _, threshold, fill in thresholds:
            if v >= threshold:
                return fill
        return NEUTRAL

    body = [_line(pad_l, height - bottom, width - pad_r, height - bottom, MUTED)]
    rates: list[str] = []
    for b in bins:
        x0, x1 = x(float(b["low"])), x(float(b["high"]))
        h = plot_h * _size(b.get("n")) / most
        body.append(_rect(x0 + 1, height - bottom - h, x1 - x0 - 2, h, color(float(b["low"])), 1))
        rate = b.get("win_rate")
        if rate is not None and _ok(rate):
            rates.append(f"{_n((x0 + x1) / 2)},{_n(height - bottom - plot_h * float(rate))}")
    for v in sorted({float(b["low"]) for b in bins} | {high}):
        body.append(_text(x(v), height - bottom + 13, _n(v), size=9, fill=MUTED))
    last: tuple[float, int] | None = None  # a label too close to the previous one goes up a row
    for name, threshold, _ in sorted(thresholds, key=lambda t: t[1]):
        if low < threshold < high:
            at = x(threshold)
            row = 1 if last is not None and last[1] == 0 and at - last[0] < 52 else 0
            last = (at, row)
            label_y = top - 6 - 13 * row
            body.append(_line(at, label_y + 3, at, height - bottom, INK, dash=True))
            body.append(_text(at, label_y, f"{name} ≥ {_n(threshold)}", size=9))
    if rates:
        body.append(f'<polyline points="{" ".join(rates)}" fill="none" stroke="{ACCENT}"/>')
        body += [
            f'<circle cx="{pt.split(",")[0]}" cy="{pt.split(",")[1]}" r="3" fill="{ACCENT}"/>'
            for pt in rates
        ]
        for tick in (0.0, 0.5, 1.0):
            yy = height - bottom - plot_h * tick
            body.append(
                _text(width - pad_r + 4, yy + 3, f"{tick:.0%}", anchor="start", size=9, fill=ACCENT)
            )
    body.append(_text(pad_l + plot_w / 2, height - 4, "ICP score", size=10, fill=MUTED))
    body.append(_text(pad_l - 4, top + 8, _n(most), anchor="end", size=9, fill=MUTED))
    body.append(_text(pad_l - 4, height - bottom, "0", anchor="end", size=9, fill=MUTED))
    mid = top + plot_h / 2
    body.append(
        f'<text x="14" y="{_n(mid)}" transform="rotate(-90 14 {_n(mid)})" '
        f'text-anchor="middle" font-size="10" fill="{MUTED}">accounts</text>'
    )
    if rates:
        right = width - 10
        body.append(
            f'<text x="{_n(right)}" y="{_n(mid)}" transform="rotate(90 {_n(right)} {_n(mid)})" '
            f'text-anchor="middle" font-size="10" fill="{ACCENT}">win rate</text>'
        )
    return _svg(width, height, "Score distribution: accounts per band, win rate per band", body)


def range_bar(
    low: float | None,
    high: float | None,
    point: float | None,
    reference: float | None,
    axis: tuple[float, float] = (0.0, 1.0),
    fmt: Callable[[float], str] = str,
) -> str:
    """A small interval bar: green above the reference, red below, grey when it overlaps.

    Args:
        low: the interval's lower end; high: its upper end; point: the estimate.
        reference: the figure to compare against (the overall win rate), drawn as a tick.
        axis: the values at the left and right ends, written under them.
        fmt: formats the axis ends and the reference.
    """
    width, height, pad = 220.0, 30.0, 16.0
    lo_axis, hi_axis = axis
    span = (hi_axis - lo_axis) or 1.0

    def x(v: float) -> float:
        return pad + (width - 2 * pad) * (min(max(v, lo_axis), hi_axis) - lo_axis) / span

    fill = NEUTRAL
    if _ok(low) and _ok(reference) and low > reference:
        fill = GOOD
    elif _ok(high) and _ok(reference) and high < reference:
        fill = BAD
    body = [_rect(pad, 9, width - 2 * pad, 2, GRID, 1)]
    body.append(_text(pad, 27, fmt(lo_axis), size=8, fill=MUTED))
    body.append(_text(width - pad, 27, fmt(hi_axis), size=8, fill=MUTED))
    if _ok(low) and _ok(high):
        body.append(_rect(x(low), 5, x(high) - x(low), 10, fill, 2))
    if _ok(point):
        body.append(f'<circle cx="{_n(x(point))}" cy="10" r="3.5" fill="{INK}"/>')
    if _ok(reference):
        body.append(_line(x(reference), 1, x(reference), 19, INK, width=1.5))
        body.append(_text(x(reference), 27, fmt(reference), size=8, fill=INK))
    title = "estimate and interval against the reference (tick)"
    return _svg(width, height, title, body, "range")


def grouped_bars(
    title: str,
    groups: Sequence[str],
    series: Sequence[tuple[str, str]],
    values: Sequence[Sequence[float | None]],
    fmt: Callable[[float], str],
) -> str:
    """Bars grouped by `groups` (model versions), one bar per series (tier) in each.

    Args:
        title: the chart's heading.
        groups: group labels along the bottom.
        series: (name, colour) per bar within a group; listed in a legend.
        values: values[group][series], None for missing.
        fmt: formats a value for its label.
    """
    if not groups or not series:
        return ""
    width, height, top, bottom, left = max(300.0, 90.0 * len(groups)), 200.0, 40.0, 24.0, 8.0
    known = [float(v) for row in values for v in row if _ok(v)]
    scale = (max(known) if known else 1.0) * 1.12 or 1.0
    plot_h = height - top - bottom
    slot = (width - 2 * left) / len(groups)
    bar_w = slot * 0.8 / len(series)
    body = [_text(left, 14, title, anchor="start", size=12, weight="bold")]
    for j, (name, fill) in enumerate(series):
        body.append(_rect(left + j * 60, 22, 9, 9, fill, 1))
        body.append(_text(left + j * 60 + 12, 30, name, anchor="start", size=9))
    body.append(_line(left, height - bottom, width - left, height - bottom, MUTED))
    for i, group in enumerate(groups):
        x0 = left + i * slot + slot * 0.1
        for j, (_, fill) in enumerate(series):
            value = values[i][j] if j < len(values[i]) else None
            if not _ok(value):
                continue
            h = plot_h * float(value) / scale
            body.append(_rect(x0 + j * bar_w, height - bottom - h, bar_w - 2, h, fill, 1))
            body.append(
                _text(
                    x0 + j * bar_w + bar_w / 2 - 1,
                    height - bottom - h - 3,
                    fmt(float(value)),
                    size=8,
                )
            )
        body.append(_text(x0 + slot * 0.4, height - 8, group, size=10))
    return _svg(width, height, title, body)
