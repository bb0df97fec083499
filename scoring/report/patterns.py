"""The report's "Segments and patterns" section: one card per pattern the model found.

Winning segments, emerging segments, anti-patterns and loss patterns each get a card
with their figures and a range bar of their win rate against the overall rate.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from icp_engine.scoring.report.charts import range_bar
from icp_engine.scoring.report.html import (
    MINUS,
    TIMES,
    bullets,
    cards,
    days,
    esc,
    interval,
    listed,
    missing,
    money,
    num,
    number,
    pct,
    points_text,
    section,
)

PATTERNS = (
    ("segments", "Winning segments", "No segments met the support threshold."),
    ("emerging", "Emerging segments", "No segment's share of recent wins rose significantly."),
    ("anti_patterns", "Anti-patterns", "No group of accounts wins far below the overall rate."),
    ("loss_patterns", "Loss patterns", "No loss reason is over-represented in a segment."),
)
_EXTRAS: dict[str, list[tuple[str, str, Any]]] = {
    "segments": [
        ("lift", "lift", lambda v: f"{float(v):.2f}{TIMES}"),
        ("acv_vs_avg", "deal size vs avg", lambda v: f"{float(v):.2f}{TIMES}"),
    ],
    "emerging": [
        ("recent_wins", "recent wins", num),
        ("before_wins", "wins before", num),
        ("recent_share", "share of recent wins", pct),
        ("before_share", "share before", pct),
        ("share_of_revenue", "share of revenue", pct),
        ("p_value", "p-value", lambda v: f"{float(v):.3f}"),
    ],
    "anti_patterns": [
        ("penalty", "penalty", lambda v: f"{MINUS}{points_text(v)} points"),
        ("cap_tier", "at most", lambda v: f"Tier {v}"),
    ],
    "loss_patterns": [
        ("share_in_segment", "share of its losses", pct),
        ("share_overall", "share of all losses", pct),
    ],
}

_CARD_CSS = {"segments": "good", "emerging": "new", "anti_patterns": "bad", "loss_patterns": "bad"}


def pattern_card(
    kind: str, item: dict[str, Any], overall: float | None, axis: tuple[float, float]
) -> str:
    """One segment, emerging segment, anti-pattern or loss pattern as a card.

    Its win rate and interval are drawn as a range bar against the overall win rate (on
    an axis shared by every card); an LLM's name, description and hypotheses, where
    present, are shown apart, as suggestions.
    """
    ci = item.get("win_rate_ci")
    lo, hi = (ci[0], ci[1]) if isinstance(ci, Sequence) and len(ci) == 2 else (None, None)
    figures: list[tuple[str, str]] = [
        ("accounts", num(item.get("support"), 0)),
        ("avg deal", money(item.get("acv"))),
        ("median cycle", days(item.get("cycle_days"))),
    ]
    for key, label, fmt in _EXTRAS.get(kind, []):
        value = item.get(key)
        if (isinstance(value, str) and value) or (not missing(value) and number(value)):
            figures.append((label, fmt(value)))
    figs = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in figures)
    bar = range_bar(number(lo), number(hi), number(item.get("win_rate")), overall, axis, pct)
    said = "Loss reason: " if kind == "loss_patterns" else ""
    reason = f"<p>{esc(said + str(item['reason']))}</p>" if item.get("reason") else ""
    traits = "".join(f'<span class="chip">{esc(t)}</span>' for t in listed(item.get("traits")))
    ai = ""
    if item.get("llm_name") or item.get("llm_description") or item.get("hypotheses"):
        hypotheses = [str(h) for h in listed(item.get("hypotheses"))]
        description = item.get("llm_description")
        ai = (
            f'<div class="ai"><strong>Suggested (LLM): </strong>{esc(item.get("llm_name") or "")}'
            f"{' — ' + esc(description) if description else ''}"
            f"{bullets(hypotheses) if hypotheses else ''}</div>"
        )
    name = str(item.get("name") or "(unnamed)")
    rule = str(item.get("rule") or "")
    rule = "" if rule.casefold() == name.casefold() else rule  # said once
    return (
        f'<div class="card {_CARD_CSS.get(kind, "")}"><h3>{esc(name)}</h3>'
        f'<div class="rule">{esc(rule)}</div>'
        f'<div><span class="big">{esc(pct(item.get("win_rate")))}</span> win rate '
        f'<span class="muted">({esc(interval(ci))})</span></div>{bar}'
        f'<dl class="figs">{figs}</dl>{reason}<div>{traits}</div>{ai}</div>'
    )


def patterns_section(model: dict[str, Any], overall: float | None) -> str:
    """Every pattern as a card, against the one overall win rate the page states."""
    groups = [
        (key, title, empty, [i for i in model.get(key) or [] if isinstance(i, dict)])
        for key, title, empty in PATTERNS
    ]
    ends = [overall] + [
        number(v)
        for *_, items in groups
        for item in items
        for v in [item.get("win_rate"), *(item.get("win_rate_ci") or [])]
    ]
    top = max([v for v in ends if v is not None] + [0.1])
    axis = (0.0, min(1.0, math.ceil(top * 10 - 1e-9) / 10))
    body = ""
    for key, title, empty, items in groups:
        found = [pattern_card(key, item, overall, axis) for item in items]
        inner = cards(found) if found else f'<p class="muted">{esc(empty)}</p>'
        body += f"<h3>{esc(title)}</h3>{inner}"
    lead = "Bars: the 95% interval of each group's win rate (dot: estimate) against the "
    lead += f"overall win rate (tick, {pct(overall)} {model.get('overall_note') or ''}".rstrip()
    lead += "); green above it, red below, grey: not clear."
    return section("patterns", "Segments and patterns", body, lead)
