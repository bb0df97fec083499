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

import json
import re
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
from icp_engine.scoring.learn.outcomes import collect_outcomes
from icp_engine.scoring.report import html as h
from icp_engine.scoring.report.changes import changes_rows, changes_section
from icp_engine.scoring.report.charts import tier_colors
from icp_engine.scoring.report.checklist import (
    TierChecklist,
    checklist,
    checklist_section,
    conditions_text,
)
from icp_engine.scoring.report.health import health_section
from icp_engine.scoring.report.html import GROUP_LABELS
from icp_engine.scoring.report.model_sections import (
    details_section,
    dropped_features,
    expansion_section,
    is_leak,
    quality_section,
    tracking_section,
    version_label,
)
from icp_engine.scoring.report.overview import criteria_section, tiers_section, verdict_section
from icp_engine.scoring.report.patterns import patterns_section
from icp_engine.scoring.schema import IcpCriteria

_ISO_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}(?:T[0-9:.]+(?:Z|[+-]\d{2}:\d{2})?)?\b")

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
    scored: pd.DataFrame,
    opportunities: pd.DataFrame,
    tier_order: list[str],
    unit: str = "deal",
) -> pd.DataFrame:
    """One row per tier: accounts, share, closed deals, win rate, avg won deal, median cycle.

    Args:
        scored: `account_id` and `tier` per account.
        opportunities: canonical opportunities (is_closed, is_won, amount, created_at,
            closed_at) of those accounts.
        tier_order: tiers from best to worst, as rows of the result.
        unit: `deal`: the win rate is won / closed deals; `account` (what the report
            uses, like `icp train`): `closed_deals` and `won_deals` count accounts with a
            closed deal and accounts with a won one, and the win rate is their ratio.
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
        n_closed, n_won = len(tier_closed), len(tier_won)
        if unit == "account":
            n_closed = tier_closed["account_id"].nunique()
            n_won = tier_won["account_id"].nunique()
        rows.append(
            {
                "tier": tier,
                "accounts": accounts,
                "share": accounts / total,
                "closed_deals": n_closed,
                "won_deals": n_won,
                "win_rate": n_won / n_closed if n_closed else np.nan,
                "avg_deal_size": float(tier_won["amount"].mean()) if len(tier_won) else np.nan,
                "median_cycle_days": float(tier_won["cycle_days"].median())
                if len(tier_won)
                else np.nan,
            }
        )
    return pd.DataFrame(rows)


def outcome_summary(
    scored: pd.DataFrame,
    opportunities: pd.DataFrame,
    tier_order: list[str],
    model: dict[str, Any],
) -> pd.DataFrame | None:
    """`tier_summary`'s table over the outcomes `icp train` counts (new business closed in
    its look-back window, per account or per deal as it trained), by today's tier.

    So the overall win rate this gives is the one every segment and pattern of the model
    is compared with: one figure, one definition. None when nothing was trained.
    """
    learned = (model.get("criteria") or {}).get("learned") or {}
    if not isinstance(learned, dict) or not learned.get("trained_at"):
        return None
    try:
        now = pd.Timestamp(str(learned["trained_at"])).to_pydatetime()
        lookback = int(learned.get("lookback_days") or 730)
    except (TypeError, ValueError):
        return None
    unit = "deal" if learned.get("unit") == "deal" else "account"
    ids = scored[["account_id"]].astype(str).reset_index(drop=True)
    rows = collect_outcomes(ids, opportunities, now, lookback, unit).rows
    tier = scored["tier"].astype(str).to_numpy()[rows["account"].to_numpy(np.int64)]
    frame = rows.assign(tier=tier)
    total = max(len(scored), 1)
    out = []
    for name in tier_order:
        accounts = int((scored["tier"].astype(str) == name).sum()) if name != "all" else total
        part = frame if name == "all" else frame.loc[frame["tier"] == name]
        won = part.loc[part["won"].astype(bool)]
        out.append(
            {
                "tier": name,
                "accounts": accounts,
                "share": accounts / total,
                "closed_deals": len(part),
                "won_deals": len(won),
                "win_rate": len(won) / len(part) if len(part) else np.nan,
                "avg_deal_size": float(won["amount"].mean()) if len(won) else np.nan,
                "median_cycle_days": float(won["cycle_days"].median()) if len(won) else np.nan,
            }
        )
    return pd.DataFrame(out)


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
    summary = outcome_summary(scored, opportunities, order, model)
    whole = outcome_summary(scored.assign(tier="all"), opportunities, ["all"], model)
    if summary is None or whole is None:  # nothing trained: every closed deal, per account
        summary = tier_summary(scored, opportunities, order, unit="account")
        whole = tier_summary(scored.assign(tier="all"), opportunities, ["all"], unit="account")
    everyone = whole.iloc[0]
    overall, overall_note = overall_win_rate(model, everyone)
    model["overall_note"] = overall_note
    model["anti_patterns"] = merged_patterns(model["anti_patterns"], criteria)
    leaks = [f"{label}: {why}" for label, why in dropped_features(model) if is_leak(why)]
    if leaks:
        model["warnings"] = [
            *model["warnings"],
            "Left out because they give the outcome away (leaks): " + "; ".join(leaks) + ".",
        ]
    if model.get("activated") is False and model.get("version") and model.get("signal"):
        model["warnings"] = [
            *model["warnings"],
            f"The learned version {version_label(model['version'])} is a candidate, not in use: "
            "the accounts below are scored with the criteria in use (run icp mappings activate "
            f"{version_label(model['version'])} to make it live).",
        ]
    holdout = model.get("holdout") or {}
    sections = [
        (
            "verdict",
            "Verdict",
            verdict_section(model, holdout, summary, everyone, len(scored), overall),
        ),
        (
            "tiers",
            "By tier",
            tiers_section(
                summary, criteria, colors, overall, model["tiers"], bool(model["written"])
            ),
        ),
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
            f"model version {version_label(model['version'])}"
            if model.get("version") is not None
            else "",
            _span("learned criteria refit on", model["written"].get("window")),
            _span(
                "backtest fitted on" if model["written"] else "trained on",
                model.get("train_window"),
            ),
            _span("holdout", window),
            f"criteria: {model['criteria_file']}" if model.get("criteria_file") else "",
            f"generated {h.date_text(generated_at)}",
        )
        if part
    )
    name = _ISO_DATE.sub(lambda m: h.date_text(m.group(0)), criteria.name or "")
    title = f"ICP report: {name or 'Ideal Customer Profile'}"
    return h.page(title, meta, sections)


def _span(label: str, window: Any) -> str:
    if not isinstance(window, dict) or not (window.get("start") or window.get("end")):
        return ""
    start = h.date_text(window.get("start")) if window.get("start") else "…"
    end = h.date_text(window.get("end")) if window.get("end") else "…"
    return f"{label} {start} to {end}"


def overall_win_rate(model: dict[str, Any], everyone: pd.Series) -> tuple[float | None, str]:
    """The one overall win rate the page states, and what it counts.

    Won / closed outcomes of the accounts scored now, counted as `icp train` counts them
    (`outcome_summary`): the rate every segment and pattern is compared with.
    """
    learned = (model.get("criteria") or {}).get("learned") or {}
    unit = "deals" if isinstance(learned, dict) and learned.get("unit") == "deal" else "accounts"
    start = (model.get("train_window") or {}).get("start")
    end = (model.get("holdout") or {}).get("window", {}).get("end")
    since = f" closed {h.date_text(start)} to {h.date_text(end)}" if start and end else ""
    rate = h.number(everyone.get("win_rate"))
    if isinstance(learned, dict) and learned.get("trained_at"):
        return rate, f"of {h.num(everyone.get('closed_deals'), 0)} new-business {unit}{since}"
    return rate, f"of {h.num(everyone.get('closed_deals'), 0)} accounts with a closed deal"


def merged_patterns(items: list[Any], criteria: IcpCriteria) -> list[dict[str, Any]]:
    """Anti-patterns with one card per group of accounts: a group found twice (low win
    rate, and long cycles) is merged, its reasons kept; the penalty and tier cap shown
    are those of the criteria in use, as the criteria table shows them."""
    in_use: dict[str, Any] = {}
    for anti in criteria.anti_patterns:
        key = _key([c.model_dump(by_alias=True, exclude_none=True) for c in anti.conditions()])
        known = in_use.get(key)
        in_use[key] = (
            anti
            if known is None
            else known.model_copy(
                update={
                    "penalty": known.penalty or anti.penalty,
                    "cap_tier": known.cap_tier or anti.cap_tier,
                }
            )
        )
    merged: dict[str, dict[str, Any]] = {}
    for item in items:
        if not isinstance(item, dict):
            continue
        key = _key(item.get("when")) if item.get("when") else f"name:{item.get('name')}"
        if key in merged:
            first = merged[key]
            reasons = [r for r in (first.get("reason"), item.get("reason")) if r]
            first["reason"] = "; ".join(dict.fromkeys(reasons)) or None
            continue
        entry = dict(item)
        entry.pop("penalty", None)
        rule = in_use.get(key)
        if rule is not None:
            if rule.penalty:
                entry["penalty"] = rule.penalty
            if rule.cap_tier:
                entry["cap_tier"] = rule.cap_tier
        merged[key] = entry
    return list(merged.values())


def _key(when: Any) -> str:
    """The same conditions give the same key, however their numbers were written (0, 0.0)."""

    def same(value: Any) -> Any:
        if isinstance(value, list):
            return [same(v) for v in value]
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
        return value

    conditions = [c for c in (when if isinstance(when, list) else []) if isinstance(c, dict)]
    texts = (
        json.dumps({k: same(v) for k, v in c.items()}, sort_keys=True, default=str)
        for c in conditions
    )
    return json.dumps(sorted(texts))
