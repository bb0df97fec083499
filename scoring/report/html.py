"""HTML building blocks for the ICP report: the page, its CSS, tiles, tables and cards.

Everything that takes text escapes it here (`esc`); functions whose argument names end
in `_html` take markup that is already safe. The CSS is inline, uses the system font
stack, and has a print layout, so the file opens and prints the same with no network.
The figure formats (`pct`, `money`, `num`, `points_text`, ...) serve every section.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Sequence
from datetime import date
from html import escape
from typing import Any

import numpy as np
from icp_engine.scoring.labels import format_points, human_date

MINUS, TIMES, EN_DASH = "\u2212", "\u00d7", "\u2013"
GROUP_LABELS = {"must_have": "Must have", "strong_signal": "Strong signal", "bonus": "Bonus"}

CSS = """
:root{--ink:#1f2933;--muted:#616e7c;--line:#e4e7eb;--bg:#f7f8fa;--good:#15803d;
--bad:#b91c1c;--warn:#b45309;--accent:#2563eb}
*{box-sizing:border-box}
body{margin:0;background:var(--bg);color:var(--ink);line-height:1.45;
font:14px/1.45 -apple-system,BlinkMacSystemFont,"Segoe UI",Roboto,Helvetica,Arial,sans-serif}
main{max-width:1100px;margin:0 auto;padding:24px}
header h1{margin:0 0 4px;font-size:26px}
.meta{color:var(--muted);font-size:12px}
nav{margin:12px 0 0;font-size:12px}nav a{color:var(--accent);margin-right:12px}
section{background:#fff;border:1px solid var(--line);border-radius:10px;padding:18px 22px;
margin:18px 0}
h2{font-size:18px;margin:0 0 10px}h3{font-size:15px;margin:14px 0 6px}
p.lead{color:var(--muted);margin:0 0 12px}
.verdict{border-left:8px solid var(--good)}.verdict.none{border-left-color:var(--warn)}
.verdict h2{font-size:22px}
.tiles{display:grid;grid-template-columns:repeat(auto-fit,minmax(130px,1fr));gap:10px;
margin-top:12px}
.tile{border:1px solid var(--line);border-radius:8px;padding:10px 12px}
.tile .v{font-size:24px;font-weight:700}.tile .k{color:var(--muted);font-size:12px}
.tile .s{color:var(--muted);font-size:11px}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(240px,1fr));gap:14px}
.cards{display:grid;grid-template-columns:repeat(auto-fill,minmax(320px,1fr));gap:12px}
.cards.narrow{grid-template-columns:repeat(auto-fill,minmax(220px,1fr))}
.weights td:nth-child(3){width:34%}
.card{border:1px solid var(--line);border-radius:8px;padding:12px 14px;break-inside:avoid}
.card h3{margin:0 0 4px}.card.bad{border-left:5px solid var(--bad)}
.card.good{border-left:5px solid var(--good)}.card.new{border-left:5px solid var(--accent)}
.rule{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:12px;color:var(--muted)}
.figs{display:grid;grid-template-columns:repeat(2,auto 1fr);gap:2px 10px;font-size:13px;
margin:6px 0}.big{font-size:22px;font-weight:700}
.chip{display:inline-block;background:#f1f5f9;border-radius:10px;padding:1px 8px;
margin:2px 4px 2px 0;font-size:12px}
.figs dt{color:var(--muted)}.figs dd{margin:0}
.ai{background:#eef4ff;border-radius:6px;padding:6px 8px;font-size:12px;margin-top:6px}
table{border-collapse:collapse;width:100%;font-size:13px}
th,td{text-align:left;padding:6px 8px;border-bottom:1px solid var(--line);vertical-align:top}
th{color:var(--muted);font-weight:600}td.n,th.n{text-align:right}
svg.chart{width:100%;height:auto;max-height:320px}svg.square{max-width:340px}
svg.range{width:220px;height:30px;vertical-align:middle;display:block}
.bar{display:flex;align-items:center;gap:8px}
.bar span.b{display:inline-block;height:12px;border-radius:3px;background:var(--good)}
.bar span.b.neg{background:var(--bad)}
.group{color:var(--muted);font-size:12px;text-transform:uppercase;letter-spacing:.04em}
.callout{border-radius:8px;padding:10px 12px;margin:8px 0;background:#fff7ed;
border:1px solid #fed7aa}
.callout.info{background:#eef4ff;border-color:#c7d7fe}
ul.check{list-style:none;padding-left:0;margin:4px 0}
ul.check li:before{content:"\\2610\\00a0";color:var(--muted)}
ul.flags li{color:var(--bad)}
.up{color:var(--good)}.down{color:var(--bad)}.muted{color:var(--muted)}
@media print{body{background:#fff}main{padding:0;max-width:none}nav{display:none}
section{border:0;padding:8px 0;break-inside:avoid-page}
*{-webkit-print-color-adjust:exact;print-color-adjust:exact}}
"""


_DICTS = ("holdout", "challenger", "tracking", "expansion", "holdout_model", "written")
_LISTS = (
    "calibration",
    "tiers",
    "dropped_features",
    "score_distribution",
    "segments",
    "emerging",
    "anti_patterns",
    "loss_patterns",
    "warnings",
    "features_used",
    "features_dropped",
)


def listed(value: Any) -> list[Any]:
    """A list as given, one text as a list of one, anything else as nothing."""
    if isinstance(value, str):
        return [value]
    return list(value) if isinstance(value, list | tuple) else []


def normalised(model: Any) -> dict[str, Any]:
    """A copy of a saved model whose known keys have the types the page expects.

    Missing or mistyped parts become empty (a dict, a list); `signal` is true only when
    it is a boolean true. The page then never fails on an odd or older model file.
    """
    out = dict(model) if isinstance(model, dict) else {}
    calibration = out.get("calibration")
    if isinstance(calibration, dict):  # {method, ece, bins}: the learned calibration
        out["calibration_fit"] = calibration
        out["calibration"] = calibration.get("bins")
    for key in _DICTS:
        out[key] = out[key] if isinstance(out.get(key), dict) else {}
    for key in _LISTS:
        out[key] = listed(out.get(key))
    signal = out.get("signal")
    out["signal"] = bool(signal) if isinstance(signal, bool | np.bool_) else False
    holdout = out["holdout"] = dict(out["holdout"])
    holdout["window"] = holdout["window"] if isinstance(holdout.get("window"), dict) else {}
    versions = [v for v in listed(out["tracking"].get("versions")) if isinstance(v, dict)]
    for i, version in enumerate(versions):
        rates = version.get("win_rate_by_tier")
        rates = rates if isinstance(rates, dict) else {}
        by_tier = {str(t): r for t, r in rates.items() if isinstance(r, dict)}
        versions[i] = {**version, "win_rate_by_tier": by_tier}
    out["tracking"] = {**out["tracking"], "versions": versions}
    return out


def esc(value: object) -> str:
    """Text as HTML: every value passes here before it reaches the page."""
    return escape(str(value), quote=True)


def number(value: Any) -> float | None:
    """A figure as a float; None when absent, NaN, or not a number at all."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return None
    result = float(value)
    return None if math.isnan(result) else result


def missing(value: Any) -> bool:
    return number(value) is None


def pct(value: Any, digits: int = 0) -> str:
    v = number(value)
    return "—" if v is None else f"{v:.{digits}%}"


def money(value: Any) -> str:
    """Deal sizes compactly: 950, 12.3k, 1.4M."""
    v = number(value)
    if v is None:
        return "—"
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "k")):
        if abs(v) >= size:
            return f"{v / size:.1f}{suffix}"
    return f"{v:.0f}"


def days(value: Any) -> str:
    v = number(value)
    return "—" if v is None else f"{v:.0f} d"


def num(value: Any, digits: int = 2) -> str:
    v = number(value)
    if v is None:
        return "—"
    if isinstance(value, numbers.Integral) or (digits == 0 and v.is_integer()):
        return f"{int(v):,}"
    return f"{v:.{digits}f}"


def interval(ci: Any, fmt: Any = pct) -> str:
    if isinstance(ci, Sequence) and len(ci) == 2 and not any(missing(v) for v in ci):
        return f"{fmt(ci[0])}{EN_DASH}{fmt(ci[1])}"
    return "—"


def page(title: str, meta: str, sections: Sequence[tuple[str, str, str]]) -> str:
    """The whole document: a header with a table of contents, then the sections.

    Args:
        title: the page title and heading.
        meta: the line under the heading.
        sections: (anchor, label in the contents, section markup) in page order.
    """
    links = "".join(f'<a href="#{esc(anchor)}">{esc(label)}</a>' for anchor, label, _ in sections)
    return (
        "<!DOCTYPE html>\n"
        f'<html lang="en"><head><meta charset="utf-8"><title>{esc(title)}</title>'
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<style>{CSS}</style></head><body><main><header><h1>{esc(title)}</h1>"
        f'<div class="meta">{esc(meta)}</div><nav>{links}</nav></header>'
        f"{''.join(markup for _, _, markup in sections)}</main></body></html>\n"
    )


def section(anchor: str, title: str, body_html: str, lead: str = "", css: str = "") -> str:
    intro = f'<p class="lead">{esc(lead)}</p>' if lead else ""
    klass = f' class="{esc(css)}"' if css else ""
    return f'<section id="{esc(anchor)}"{klass}><h2>{esc(title)}</h2>{intro}{body_html}</section>'


def tile(label: str, value: str, sub: str = "") -> str:
    small = f'<div class="s">{esc(sub)}</div>' if sub else ""
    return (
        f'<div class="tile"><div class="k">{esc(label)}</div>'
        f'<div class="v">{esc(value)}</div>{small}</div>'
    )


def table(headers: Sequence[str], rows: Iterable[Sequence[str]], numeric: set[int]) -> str:
    """A table of already-escaped cells; columns in `numeric` align right."""
    head = "".join(
        f'<th class="n">{esc(h)}</th>' if i in numeric else f"<th>{esc(h)}</th>"
        for i, h in enumerate(headers)
    )
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>"
            for i, c in enumerate(row)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def grid(items_html: Sequence[str]) -> str:
    return '<div class="grid">' + "".join(f"<div>{i}</div>" for i in items_html) + "</div>"


def cards(items_html: Sequence[str], css: str = "") -> str:
    return f'<div class="cards {esc(css)}">' + "".join(items_html) + "</div>"


def bullets(items: Iterable[str], css: str = "") -> str:
    klass = f' class="{esc(css)}"' if css else ""
    return f"<ul{klass}>" + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>"


def points_text(value: Any) -> str:
    """Points as the reasons written to the CRM show them: whole points (25), a tenth only
    below one point (0.4). One formatter, so a penalty reads the same everywhere."""
    return format_points(number(value) or 0.0)


def date_text(value: Any) -> str:
    """A date or timestamp as people write it: `7 Dec 2024`."""
    return human_date(value) or "—"


def weight_bar(points: float, most: float, negative: bool = False) -> str:
    """A horizontal bar as wide as `points` relative to `most`, with its figure."""
    width = 0.0 if most <= 0 else 100.0 * min(points / most, 1.0)
    sign = MINUS if negative else "+"
    klass = "b neg" if negative else "b"
    return (
        f'<div class="bar"><span class="{klass}" style="width:{width * 0.75:.1f}%"></span>'
        f"<span>{sign}{points_text(points)}</span></div>"
    )


def points_of(probability: Any) -> float | None:
    """A probability as points out of 100; None when it is not a figure."""
    value = number(probability)
    return None if value is None else value * 100


def ece_text(ece: Any) -> str:
    """A calibration error as points either way: ±1.5 pts."""
    points = points_of(ece)
    return "—" if points is None else f"±{points:.1f} pts"


def value_text(value: Any) -> str:
    """A criterion's value as said aloud: yes/no, 12,000, 2024-05-01."""
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, date):
        return human_date(value)
    return str(value)
