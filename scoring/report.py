"""Outcome figures by tier, and the `icp report` page a sales leader reads.

Win rate, average deal size and median sales cycle per tier show whether the ICP
separates good accounts from poor ones: the top tier should win more, buy bigger and
close faster. `render_report` puts those figures beside what `icp train` learned (its
verdict, criteria, segments and patterns, calibration, challenger and tracking) in one
self-contained HTML file: inline CSS and SVG, no scripts, nothing fetched.

The page's sections live beside this module: `report_overview` (verdict, tiers,
criteria), `report_changes` (what changed), `report_checklist` (the SDR checklist),
`report_patterns` (segments and patterns) and `report_model_sections` (quality,
tracking, expansion, details), all built from the blocks in `report_html`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd

from scoring import report_html as h
from scoring.report_changes import changes_rows, changes_section
from scoring.report_charts import tier_colors
from scoring.report_checklist import (
    TierChecklist,
    checklist,
    checklist_section,
    conditions_text,
)
from scoring.report_health import health_section
from scoring.report_html import GROUP_LABELS
from scoring.report_model_sections import (
    details_section,
    expansion_section,
    quality_section,
    tracking_section,
)
from scoring.report_overview import criteria_section, tiers_section, verdict_section
from scoring.report_patterns import patterns_section
from scoring.schema import IcpCriteria

__all__ = [
    "GROUP_LABELS",
    "TierChecklist",
    "changes_rows",
    "checklist",
    "conditions_text",
    "render_report",
    "tier_summary",
]


def tier_summary(
    scored: pd.DataFrame, opportunities: pd.DataFrame, tier_order: list[str]
) -> pd.DataFrame:
    """One row per tier: accounts, share, closed deals, win rate, avg won deal, median cycle.

    Args:
        scored: `account_id` and `tier` per account.
        opportunities: canonical opportunities (is_closed, is_won, amount, created_at,
            closed_at) of those accounts.
        tier_order: tiers from best to worst, as rows of the result.
    """
    tiers = scored[["account_id", "tier"]].astype({"account_id": str})
    opps = opportunities.assign(account_id=opportunities["account_id"].astype(str))
    opps = opps.merge(tiers, on="account_id", how="inner")
    closed = opps.loc[opps["is_closed"].fillna(False).astype(bool)]
    won = closed.loc[closed["is_won"].fillna(False).astype(bool)]
    cycle = (won["closed_at"] - won["created_at"]).dt.total_seconds() / 86400.0
    won = won.assign(cycle_days=cycle.clip(lower=0))
    rows = []
    total = max(len(tiers), 1)
    for tier in tier_order:
        accounts = int((tiers["tier"] == tier).sum())
        tier_closed = closed.loc[closed["tier"] == tier]
        tier_won = won.loc[won["tier"] == tier]
        rows.append(
            {
                "tier": tier,
                "accounts": accounts,
                "share": accounts / total,
                "closed_deals": len(tier_closed),
                "won_deals": len(tier_won),
                "win_rate": len(tier_won) / len(tier_closed) if len(tier_closed) else np.nan,
                "avg_deal_size": float(tier_won["amount"].mean()) if len(tier_won) else np.nan,
                "median_cycle_days": float(tier_won["cycle_days"].median())
                if len(tier_won)
                else np.nan,
            }
        )
    return pd.DataFrame(rows)


def render_report(
    model: dict[str, Any],
    scored: pd.DataFrame,
    opportunities: pd.DataFrame,
    criteria: IcpCriteria,
    previous: dict[str, Any] | None,
    generated_at: datetime,
    sync_health: dict[str, Any] | None = None,
) -> str:
    """The whole report as one HTML document (the same input gives the same bytes).

    Args:
        model: the saved result of `icp train` (holdout, signal, segments, ...); any list
            may be empty and optional keys missing.
        scored: account_id, score, tier, segment of the current accounts.
        opportunities: canonical opportunities of those accounts.
        criteria: the active criteria the accounts were scored with.
        previous: the previous version's model, to say what changed; None for the first.
        generated_at: shown in the header; the only input that is not a figure.
        sync_health: the run history's figures (`sync.history.health`), for the
            "Sync health" section.
    """
    model = h.normalised(model)
    previous = None if previous is None else h.normalised(previous)
    order = [name for name, _ in criteria.tier_order()]
    colors = dict(zip(order, tier_colors(len(order)), strict=True))
    summary = tier_summary(scored, opportunities, order)
    everyone = tier_summary(scored.assign(tier="all"), opportunities, ["all"]).iloc[0]
    overall = next(
        (
            h.number(v)
            for v in (model.get("overall_win_rate"), model.get("base_rate"), everyone["win_rate"])
            if h.number(v) is not None
        ),
        None,
    )
    holdout = model.get("holdout") or {}
    sections = [
        ("verdict", "Verdict", verdict_section(model, holdout, summary, everyone, len(scored))),
        ("tiers", "By tier", tiers_section(summary, criteria, colors, overall)),
        ("changes", "What changed", changes_section(model, previous, criteria)),
        ("criteria", "Criteria", criteria_section(criteria)),
        ("checklist", "SDR checklist", checklist_section(criteria)),
        ("patterns", "Segments & patterns", patterns_section(model, overall)),
        ("quality", "Model quality", quality_section(model, holdout, scored, criteria, colors)),
        ("tracking", "Tracking", tracking_section(model, order, colors)),
        ("details", "Details", details_section(model)),
    ]
    sections.insert(-1, ("health", "Sync health", health_section(sync_health)))
    if model["expansion"]:
        sections.insert(-1, ("expansion", "Expansion", expansion_section(model["expansion"])))
    window = holdout.get("window") or {}
    meta = " · ".join(
        part
        for part in (
            f"model version {model['version']}" if model.get("version") is not None else "",
            _span("trained on", model.get("train_window")),
            _span("holdout", window),
            f"criteria: {model['criteria_file']}" if model.get("criteria_file") else "",
            f"generated {generated_at.strftime('%Y-%m-%d %H:%M %Z').strip()}",
        )
        if part
    )
    title = f"ICP report: {criteria.name or 'Ideal Customer Profile'}"
    return h.page(title, meta, sections)


def _span(label: str, window: Any) -> str:
    if not isinstance(window, dict) or not (window.get("start") or window.get("end")):
        return ""
    return f"{label} {window.get('start') or '…'} to {window.get('end') or '…'}"
