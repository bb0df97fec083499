"""Outcome figures by tier, and the `icp report` page a sales leader reads.

Win rate, average deal size and median sales cycle per tier show whether the ICP
separates good accounts from poor ones: the top tier should win more, buy bigger and
close faster. `render_report` puts those figures beside what `icp train` learned (its
verdict, criteria, segments and patterns, calibration, challenger and tracking) in one
self-contained HTML file: inline CSS and SVG, no scripts, nothing fetched.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

import numpy as np
import pandas as pd

from scoring import report_html as h
from scoring.report_charts import (
    bar_chart,
    calibration_chart,
    histogram,
    tier_colors,
)
from scoring.schema import GROUPS, Condition, IcpCriteria

GROUP_LABELS = {"must_have": "Must have", "strong_signal": "Strong signal", "bonus": "Bonus"}


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
        ("verdict", "Verdict", _verdict(model, holdout, summary, everyone, len(scored))),
        ("tiers", "By tier", _tiers(summary, criteria, colors, overall)),
        ("changes", "What changed", _changes(model, previous, criteria)),
        ("criteria", "Criteria", _criteria(criteria)),
        ("checklist", "SDR checklist", _checklist(criteria)),
        ("patterns", "Segments & patterns", h.patterns_section(model, overall)),
        ("quality", "Model quality", _quality(model, holdout, scored, criteria, colors)),
        ("tracking", "Tracking", h.tracking_section(model, order, colors)),
        ("details", "Details", h.details_section(model)),
    ]
    if model["expansion"]:
        sections.insert(-1, ("expansion", "Expansion", h.expansion_section(model["expansion"])))
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


def _points_of(probability: Any) -> float | None:
    value = h.number(probability)
    return None if value is None else value * 100


def _ece_text(ece: Any) -> str:
    points = _points_of(ece)
    return "—" if points is None else f"±{points:.1f} pts"


def _verdict(
    model: dict[str, Any],
    holdout: dict[str, Any],
    summary: pd.DataFrame,
    everyone: pd.Series,
    accounts: int,
) -> str:
    auc, ci = holdout.get("auc"), holdout.get("auc_ci")
    deals = f"{h.num(holdout.get('n_won'), 0)} won and {h.num(holdout.get('n_lost'), 0)} lost"
    rated = summary.dropna(subset=["win_rate"])
    if model.get("signal"):
        headline = "The learned ICP has real lift"
        text = (
            f"On the most recent closed deals ({deals}), accounts it ranks higher win more: "
            f"AUC {h.num(auc)} (95% CI {h.interval(ci, h.num)}; 0.5 is a coin flip)."
        )
        css = "verdict"
    elif h.number(auc) is None:
        headline = "No real lift — criteria unchanged"
        text = "This model recorded no holdout figures, so it shows no measured lift and "
        text += "proposes no change to the criteria."
        css = "verdict none"
    else:
        headline = "No real lift — criteria unchanged"
        text = (
            f"On the most recent closed deals ({deals}) the model's AUC of {h.num(auc)} "
            f"(95% CI {h.interval(ci, h.num)}) cannot be told apart from a coin flip (0.5), "
            "so no change to the criteria is proposed."
        )
        css = "verdict none"
    if len(rated) >= 2:
        best, worst = rated.iloc[0], rated.iloc[-1]
        text += (
            f" Today Tier {best['tier']} wins {h.pct(best['win_rate'])} of its closed deals, "
            f"Tier {worst['tier']} {h.pct(worst['win_rate'])}."
        )
    challenger = model.get("challenger") or {}
    if challenger.get("clearly_better"):
        text += " A black-box challenger scores clearly better (see Model quality); it is "
        text += "reported, never deployed."
    warnings = model["warnings"]
    notes = "".join(f'<div class="callout">{h.esc(w)}</div>' for w in warnings)
    ratio = "—"
    if len(rated) >= 2 and rated.iloc[-1]["win_rate"] > 0:
        ratio = f"{rated.iloc[0]['win_rate'] / rated.iloc[-1]['win_rate']:.1f}{h.TIMES}"
    top = summary.iloc[0] if len(summary) else None
    tiles = [
        h.tile("Holdout AUC", h.num(auc), f"95% CI {h.interval(ci, h.num)}"),
        h.tile("Win rate", h.pct(everyone["win_rate"]), f"{everyone['closed_deals']:,} closed"),
        h.tile(
            "Best vs worst tier",
            ratio,
            f"{rated.iloc[0]['tier']} vs {rated.iloc[-1]['tier']}" if len(rated) >= 2 else "",
        ),
        h.tile("Avg won deal", h.money(everyone["avg_deal_size"])),
        h.tile("Median cycle", h.days(everyone["median_cycle_days"]), "won deals"),
        h.tile(
            "Accounts scored",
            f"{accounts:,}",
            f"Tier {top['tier']}: {h.pct(top['share'])}" if top is not None else "",
        ),
        h.tile(
            "Calibration error",
            _ece_text(holdout.get("ece")),
            f"Brier {h.num(holdout.get('brier'), 3)}",
        ),
    ]
    body = f'<p>{h.esc(text)}</p>{notes}<div class="tiles">{"".join(tiles)}</div>'
    return h.section("verdict", headline, body, css=css)


def _tiers(
    summary: pd.DataFrame, criteria: IcpCriteria, colors: dict[str, str], overall: float | None
) -> str:
    rows = [
        [
            f"<strong>{h.esc(r.tier)}</strong>",
            h.esc(h.num(criteria.tiers.get(str(r.tier)), 0)),
            h.esc(f"{r.accounts:,}"),
            h.esc(h.pct(r.share, 1)),
            h.esc(f"{r.closed_deals:,}"),
            h.esc(f"{r.won_deals:,}"),
            h.esc(h.pct(r.win_rate, 1)),
            h.esc(h.money(r.avg_deal_size)),
            h.esc(h.days(r.median_cycle_days)),
        ]
        for r in summary.itertuples()
    ]
    headers = ["Tier", "Score from", "Accounts", "Share", "Closed deals", "Won"]
    headers += ["Win rate", "Avg won deal", "Median cycle"]
    table = h.table(headers, rows, numeric={1, 2, 3, 4, 5, 6, 7, 8})
    labels = [str(t) for t in summary["tier"]]
    fills = [colors[t] for t in labels]

    def values(column: str) -> list[float | None]:
        return [h.number(v) for v in summary[column]]

    charts = [
        bar_chart("Win rate", labels, values("win_rate"), h.pct, fills, overall, "overall"),
        bar_chart("Average won deal", labels, values("avg_deal_size"), h.money, fills),
        bar_chart("Median cycle (days)", labels, values("median_cycle_days"), h.days, fills),
        bar_chart("Share of accounts", labels, values("share"), h.pct, fills),
    ]
    lead = "Closed deals of the accounts scored today, by the tier they are in now."
    return h.section("tiers", "Results by tier", table + h.grid(charts), lead)


def _changes(model: dict[str, Any], previous: dict[str, Any] | None, criteria: IcpCriteria) -> str:
    title = "What changed since the previous model"
    if previous is None:
        return h.section("changes", title, "<p>First model version: nothing to compare yet.</p>")
    rows = changes_rows(model, previous, criteria)
    if not rows:
        return h.section("changes", title, "<p>Nothing changed.</p>")
    body = h.table(["Change", "Before", "Now"], [[h.esc(c) for c in row] for row in rows], set())
    return h.section("changes", title, body)


def _criteria(criteria: IcpCriteria) -> str:
    items = criteria.all_criteria()
    total = sum(c.weight for _, _, c in items) or 1.0
    penalties = [a.penalty or 0.0 for a in criteria.anti_patterns]
    most = max([100.0 * c.weight / total for _, _, c in items] + penalties + [1.0])
    rows: list[list[str]] = []
    for group in GROUPS:
        members = [c for g, _, c in items if g == group]
        if members:
            rows.append([f'<span class="group">{h.esc(GROUP_LABELS[group])}</span>', "", ""])
        for c in members:
            rule = " and ".join(x.describe() for x in c.conditions())
            rows.append(
                [
                    h.esc(c.name),
                    f'<span class="rule">{h.esc(rule)}</span>',
                    h.weight_bar(100.0 * c.weight / total, most),
                ]
            )
    if criteria.anti_patterns:
        rows.append(['<span class="group">Anti-patterns</span>', "", ""])
    for a in criteria.anti_patterns:
        rule = " and ".join(x.describe() for x in a.conditions())
        cap = f" · caps at Tier {a.cap_tier}" if a.cap_tier else ""
        bar = h.weight_bar(a.penalty or 0.0, most, negative=True) if a.penalty else ""
        rows.append(
            [
                f'<span class="down">{h.esc(a.name)}</span>',
                f'<span class="rule">{h.esc(rule + cap)}</span>',
                bar,
            ]
        )
    lead = "Points out of 100: an account's score is the sum of the criteria it matches, "
    lead += "minus the penalties of anti-patterns."
    table = h.table(["Criterion", "Condition", "Points"], rows, set())
    return h.section(
        "criteria", "Criteria and weights", f'<div class="weights">{table}</div>', lead
    )


def _checklist(criteria: IcpCriteria) -> str:
    cards = []
    for tier in checklist(criteria):
        body = f"<p>{h.esc(tier.summary)}</p>"
        if tier.confirm:
            body += h.bullets(tier.confirm, "check")
        if tier.also:
            body += f'<p class="muted">{h.esc(tier.also)}</p>'
        if tier.flags:
            body += f"<strong>Red flags</strong>{h.bullets(tier.flags, 'flags')}"
        cards.append(f'<div class="card"><h3>Tier {h.esc(tier.tier)}</h3>{body}</div>')
    lead = "What to confirm on a first call, generated from the criteria."
    return h.section("checklist", "Qualification checklist", h.cards(cards, "narrow"), lead)


def _quality(
    model: dict[str, Any],
    holdout: dict[str, Any],
    scored: pd.DataFrame,
    criteria: IcpCriteria,
    colors: dict[str, str],
) -> str:
    calibration = calibration_chart(model.get("calibration") or [])
    ece = _points_of(holdout.get("ece"))
    note = (
        ""
        if ece is None
        else f"Predicted win probabilities are off by {ece:.1f} points on average (ECE)."
    )
    calib = calibration or '<p class="muted">No calibration figures.</p>'
    bins = model.get("score_distribution") or _score_bins(scored)
    thresholds = [(t, v, colors[t]) for t, v in criteria.tier_order()]
    dist = histogram(bins, thresholds) or '<p class="muted">No scores to show.</p>'
    body = (
        f'<div class="grid"><div><h3>Calibration</h3>{calib}<p class="muted">{h.esc(note)}</p>'
        f"</div><div><h3>Score distribution</h3>{dist}</div></div>"
        f"{h.challenger_block(model, holdout)}"
    )
    return h.section("quality", "Model quality", body)


def _score_bins(scored: pd.DataFrame) -> list[dict[str, float]]:
    if "score" not in scored or not len(scored):
        return []
    counts, edges = np.histogram(
        scored["score"].astype(float).clip(0, 100), bins=10, range=(0, 100)
    )
    return [
        {"low": float(edges[i]), "high": float(edges[i + 1]), "n": int(c)}
        for i, c in enumerate(counts)
    ]


# -- the SDR checklist --------------------------------------------------------------------


@dataclass(frozen=True)
class TierChecklist:
    """What an SDR confirms to put an account in one tier."""

    tier: str
    summary: str
    confirm: list[str]
    also: str
    flags: list[str]


def checklist(criteria: IcpCriteria) -> list[TierChecklist]:
    """Per tier, the shortest set of criteria worth its threshold, and the red flags.

    Must-haves come first (all of them when they do not reach the threshold on their own,
    else the fewest that do); the highest-weighted other criteria make up the rest. The
    red flags are the anti-patterns: their penalties, and caps that keep an account out.
    """
    items = criteria.all_criteria()
    total = sum(c.weight for _, _, c in items) or 1.0
    weighted = [(g, c, 100.0 * c.weight / total) for g, _, c in items]
    tiers = criteria.tier_order()
    rank = {name: i for i, (name, _) in enumerate(tiers)}
    result = []
    for i, (name, threshold) in enumerate(tiers):
        if threshold <= 0 or not weighted:
            text = f"Score under {h.points_text(tiers[i - 1][1])}: everything else." if i else ""
            text += " No qualification needed: nurture."
            result.append(TierChecklist(name, text.strip(), [], "", []))
            continue
        must = [w for w in weighted if w[0] == "must_have"]
        must_points = sum(p for _, _, p in must)
        if must_points >= threshold:
            path = _fewest(must, threshold)
        else:
            path = must + _fewest(
                [w for w in weighted if w[0] != "must_have"], threshold - must_points
            )
        path.sort(key=weighted.index)
        summary = (
            f"Score {h.points_text(threshold)}+: needs {h.points_text(threshold)} of 100 points."
        )
        reached = sum(p for _, _, p in path)
        if reached + 1e-9 < threshold:
            summary += f" Out of reach: all criteria together give {h.points_text(reached)}."
        confirm = [
            f"confirm {conditions_text(c.conditions())} (+{h.points_text(p)})" for _, c, p in path
        ]
        rest = [w for w in weighted if w not in path]
        also = "; ".join(
            f"{conditions_text(c.conditions())} (+{h.points_text(p)})" for _, c, p in rest
        )
        flags = []
        for anti in criteria.anti_patterns:
            effects = [f"{h.MINUS}{h.points_text(anti.penalty)} points"] if anti.penalty else []
            if anti.cap_tier is not None and rank.get(anti.cap_tier, -1) > i:
                effects.append(f"never above Tier {anti.cap_tier}")
            if effects:
                flags.append(
                    f"{conditions_text(anti.conditions())} ({anti.name}): {', '.join(effects)}"
                )
        result.append(
            TierChecklist(
                name, summary, confirm, f"Also adds points: {also}." if also else "", flags
            )
        )
    return result


def _fewest(weighted: list[tuple[str, Any, float]], need: float) -> list[tuple[str, Any, float]]:
    chosen: list[tuple[str, Any, float]] = []
    for item in sorted(weighted, key=lambda w: -w[2]):
        if sum(p for _, _, p in chosen) + 1e-9 >= need:
            break
        chosen.append(item)
    return chosen


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, date):
        return value.isoformat()
    return str(value)


def _either(values: list[Any]) -> str:
    texts = [_value(v) for v in values]
    return texts[0] if len(texts) == 1 else f"{', '.join(texts[:-1])} or {texts[-1]}"


def conditions_text(conditions: list[Condition]) -> str:
    """Conditions as an SDR would say them: "50-500 employees and industry is Media"."""
    parts = []
    for condition in conditions:
        label = condition.field.replace("_", " ")
        op, value = condition.operators()[0], condition.operand()
        many = value if isinstance(value, list) else [value]
        parts.append(
            {
                "eq": f"{label}: {_value(value)}"
                if isinstance(value, bool)
                else f"{label} is {_value(value)}",
                "in": f"{label} is {_either(many)}",
                "not_in": f"{label} is not {_either(many)}",
                "between": f"{_value(many[0])}-{_value(many[-1])} {label}",
                "gt": f"{label} above {_value(value)}",
                "gte": f"{label} {_value(value)} or more",
                "lt": f"{label} below {_value(value)}",
                "lte": f"{label} {_value(value)} or less",
                "is_null": f"{label} unknown" if value else f"{label} known",
                "contains": f"{label} include {_either(many)}",
            }[op]
        )
    return " and ".join(parts)


# -- what changed -------------------------------------------------------------------------


def changes_rows(
    model: dict[str, Any], previous: dict[str, Any], criteria: IcpCriteria
) -> list[tuple[str, str, str]]:
    """(change, before, now) rows: metrics, criteria added/removed/re-weighted, patterns."""
    rows: list[tuple[str, str, str]] = []
    if previous.get("version") is not None or model.get("version") is not None:
        rows.append(
            (
                "Model version",
                _value(previous.get("version", "—")),
                _value(model.get("version", "—")),
            )
        )
    before_auc = h.number((previous.get("holdout") or {}).get("auc"))
    now_auc = h.number((model.get("holdout") or {}).get("auc"))
    delta = ""
    if before_auc is not None and now_auc is not None:
        delta = f" ({now_auc - before_auc:+.2f})"
    rows.append(("Holdout AUC", h.num(before_auc), h.num(now_auc) + delta))
    lift = [_value(bool(m["signal"])) if "signal" in m else "—" for m in (previous, model)]
    rows.append(("Real lift", lift[0], lift[1]))
    if isinstance(previous.get("criteria"), dict | list):
        rows += _criteria_changes(previous["criteria"], criteria)
    else:
        rows.append(("Criteria", "not recorded by the previous model", "—"))
    for key, label in (
        ("segments", "Segment"),
        ("emerging", "Emerging segment"),
        ("anti_patterns", "Anti-pattern"),
        ("loss_patterns", "Loss pattern"),
    ):
        before, now = _names(previous.get(key)), _names(model.get(key))
        rows += [(f"{label} new: {n}", "—", "found") for n in sorted(now - before)]
        rows += [(f"{label} gone: {n}", "found", "—") for n in sorted(before - now)]
    return rows


def _names(items: Any) -> set[str]:
    return {str(i["name"]) for i in items or [] if isinstance(i, dict) and i.get("name")}


def _criteria_changes(before_data: Any, criteria: IcpCriteria) -> list[tuple[str, str, str]]:
    """Criteria added, removed, and re-weighted (their own weight or group changed)."""
    before = _weights(before_data)
    now = _weights(criteria.model_dump(by_alias=True, exclude_none=True))
    rows = _diff(
        "Criterion",
        {k: _weight_text(v) for k, v in before.items()},
        {k: _weight_text(v) for k, v in now.items()},
    )
    rows = [row for row in rows if " changed: " not in row[0]]
    for name in sorted(now.keys() & before.keys()):
        if now[name][:2] != before[name][:2]:
            row = (_weight_text(before[name]), _weight_text(now[name]))
            rows.append((f"Criterion re-weighted: {name}", *row))
    if isinstance(before_data, dict) and isinstance(before_data.get("tiers"), dict):
        old = {str(k): h.points_text(v) for k, v in before_data["tiers"].items()}
        rows += _diff(
            "Tier threshold", old, {k: h.points_text(v) for k, v in criteria.tiers.items()}
        )
    if isinstance(before_data, dict) and "anti_patterns" in before_data:
        old = {str(a.get("name")): _penalty_text(a) for a in before_data["anti_patterns"] or []}
        now_anti = {a.name: _penalty_text(a.model_dump()) for a in criteria.anti_patterns}
        rows += _diff("Anti-pattern rule", old, now_anti)
    return rows


def _diff(label: str, before: dict[str, str], now: dict[str, str]) -> list[tuple[str, str, str]]:
    """Rows for names added, removed, and changed (their texts differ)."""
    rows = [(f"{label} added: {n}", "—", now[n]) for n in sorted(now.keys() - before.keys())]
    rows += [(f"{label} removed: {n}", before[n], "—") for n in sorted(before.keys() - now.keys())]
    changed = sorted(n for n in now.keys() & before.keys() if now[n] != before[n])
    return rows + [(f"{label} changed: {n}", before[n], now[n]) for n in changed]


def _penalty_text(anti: Any) -> str:
    anti = anti if isinstance(anti, dict) else {}
    parts = [f"{h.MINUS}{h.points_text(anti['penalty'])}"] if anti.get("penalty") else []
    parts += [f"cap {anti['cap_tier']}"] if anti.get("cap_tier") else []
    return ", ".join(parts) or "—"


def _weights(data: Any) -> dict[str, tuple[str, float, float]]:
    """name -> (group, weight, points of 100) from a criteria file, its groups, or a list."""
    if isinstance(data, dict) and isinstance(data.get("criteria"), dict | list):
        data = data["criteria"]
    pairs: list[tuple[str, Any]] = []
    if isinstance(data, dict):
        pairs = [(g, c) for g in GROUPS for c in data.get(g) or []]
    elif isinstance(data, list):
        pairs = [(str(c.get("group", "")) if isinstance(c, dict) else "", c) for c in data]
    valid = [
        (g, str(c["name"]), float(c["weight"]))
        for g, c in pairs
        if isinstance(c, dict) and c.get("name") and h.number(c.get("weight")) is not None
    ]
    total = sum(w for _, _, w in valid) or 1.0
    return {name: (g, w, 100.0 * w / total) for g, name, w in valid}


def _weight_text(entry: tuple[str, float, float]) -> str:
    group, _, points = entry
    label = GROUP_LABELS.get(group, group)
    return f"+{h.points_text(points)}" + (f" ({label})" if label else "")
