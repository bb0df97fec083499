"""The report's sections on the model itself, rather than on today's accounts.

Model quality (calibration, score distribution, the black-box challenger), tracking (how
earlier versions' predictions fared), the expansion scorecard, and the details (features
used and left out).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from icp_engine.scoring.labels import field_label
from icp_engine.scoring.report.charts import calibration_chart, grouped_bars, histogram, range_bar
from icp_engine.scoring.report.html import (
    esc,
    interval,
    listed,
    num,
    number,
    pct,
    points_of,
    section,
    table,
    tile,
    weight_bar,
)
from icp_engine.scoring.schema import IcpCriteria


def quality_section(
    model: dict[str, Any],
    holdout: dict[str, Any],
    scored: pd.DataFrame,
    criteria: IcpCriteria,
    colors: dict[str, str],
) -> str:
    calibration = calibration_chart(model.get("calibration") or [])
    found = model.get("calibration_fit")
    fit: dict[str, Any] = found if isinstance(found, dict) else {}
    ece = points_of(fit.get("ece") if fit.get("ece") is not None else holdout.get("ece"))
    method = {"platt": "Platt scaling", "isotonic": "isotonic regression"}.get(
        str(fit.get("method")), str(fit.get("method") or "")
    )
    note = (
        ""
        if ece is None
        else f"Predicted win probabilities are off by {ece:.1f} points on average (ECE)"
        + (
            (
                f" on the backtest's holdout; {method} calibrates the criteria written on every "
                "closed outcome."
                if model.get("written")
                else f", calibrated on the holdout by {method}."
            )
            if method
            else "."
        )
    )
    calib = calibration or '<p class="muted">No calibration figures.</p>'
    bins = model.get("score_distribution") or _score_bins(scored)
    thresholds = [(t, v, colors[t]) for t, v in criteria.tier_order()]
    dist = histogram(bins, thresholds) or '<p class="muted">No scores to show.</p>'
    body = (
        f'<div class="grid"><div><h3>Calibration</h3>{calib}<p class="muted">{esc(note)}</p>'
        f"</div><div><h3>Score distribution</h3>{dist}</div></div>"
        f"{challenger_block(model, holdout)}"
    )
    return section("quality", "Model quality", body)


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


def _one_decimal(value: float) -> str:
    return f"{value:.1f}"


def challenger_block(model: dict[str, Any], holdout: dict[str, Any]) -> str:
    challenger = model.get("challenger") or {}
    if not challenger:
        return ""
    rows = []
    for name, auc, ci in (
        (
            "Scorecard (backtest of the deployed learner)"
            if model.get("written")
            else "Scorecard (deployed criteria)",
            holdout.get("auc"),
            holdout.get("auc_ci"),
        ),
        (
            str(challenger.get("model") or "challenger"),
            challenger.get("auc"),
            challenger.get("auc_ci"),
        ),
    ):
        lo, hi = (ci[0], ci[1]) if isinstance(ci, list | tuple) and len(ci) == 2 else (None, None)
        bar = range_bar(number(lo), number(hi), number(auc), 0.5, (0.4, 1.0), _one_decimal)
        rows.append([esc(name), esc(num(auc)), esc(interval(ci, num)), bar])
    verdict = (
        "The challenger is clearly better. It is not deployed: scores stay explainable YAML. "
        "Look at which traits it relies on and consider adding them to the criteria."
        if challenger.get("clearly_better")
        else "The challenger is not clearly better: the explainable scorecard loses little."
    )
    said = str(challenger.get("note") or "")
    note = f" {said[:1].upper()}{said[1:]}" if said else ""
    grid_html = table(["Model", "AUC", "95% CI", "vs coin flip (tick at 0.5)"], rows, {1})
    return f'<h3>Challenger</h3>{grid_html}<div class="callout info">{esc(verdict + note)}</div>'


def tracking_section(model: dict[str, Any], order: list[str], colors: dict[str, str]) -> str:
    versions = [
        v for v in ((model.get("tracking") or {}).get("versions") or []) if isinstance(v, dict)
    ]
    title = "How earlier predictions fared"
    if not versions:
        text = "No deals scored by an earlier version have closed yet."
        return section("tracking", title, f'<p class="muted">{esc(text)}</p>')
    tiers = sorted(
        {t for v in versions for t in v.get("win_rate_by_tier") or {}},
        key=lambda t: (order.index(t) if t in order else len(order), t),
    )
    rows, values = [], []
    for v in versions:
        by_tier = v.get("win_rate_by_tier") or {}
        rates = [(by_tier.get(t) or {}).get("win_rate") for t in tiers]
        values.append([number(r) for r in rates])
        rows.append(
            [
                esc(version_label(v.get("version"))),
                esc(num(v.get("scored"), 0)),
                esc(num(v.get("closed_won"), 0)),
                esc(num(v.get("closed_lost"), 0)),
                esc(num(v.get("auc"))),
            ]
            + [esc(pct(r)) for r in rates]
        )
    series = [(f"Tier {t}", colors.get(t, "#9aa5b1")) for t in tiers]
    chart = grouped_bars(
        "Win rate by tier, per model version",
        [version_label(v.get("version")) for v in versions],
        series,
        values,
        pct,
    )
    headers = ["Version", "Scored", "Won since", "Lost since", "AUC"] + [f"Tier {t}" for t in tiers]
    grid_html = table(headers, rows, set(range(1, len(headers))))
    lead = "Scores each version wrote, against the deals that have closed since."
    return section("tracking", title, grid_html + chart, lead)


def version_label(value: Any) -> str:
    """`v3` for 3, `v0003` as it is; a named version (`manual`) as its name."""
    text = str(value)
    if text.startswith("v") or not text[:1].isdigit():
        return text
    return f"v{text}"


def expansion_section(expansion: dict[str, Any]) -> str:
    """The expansion scorecard: how well it ranks customers, and what it weighs."""
    tiles = [
        tile(
            "Expansion AUC",
            num(expansion.get("auc")),
            f"95% CI {interval(expansion.get('auc_ci'), num)}",
        ),
        tile("Customers", num(expansion.get("n_customers"), 0)),
        tile("Expanded", num(expansion.get("n_expanded"), 0)),
    ]
    body = f'<div class="tiles">{"".join(tiles)}</div>'
    if expansion.get("note"):
        body += f'<p class="muted">{esc(expansion["note"])}</p>'
    terms = [c for c in listed(expansion.get("criteria")) if isinstance(c, dict)]
    weights = [max(number(c.get("weight")) or 0.0, 0.0) for c in terms]
    shares = [100.0 * w / (sum(weights) or 1.0) for w in weights]
    rows = [
        [esc(c.get("name") or ""), weight_bar(share, max(shares))]
        for c, share in zip(terms, shares, strict=True)
    ]
    if rows:
        body += table(["What predicts expansion", "Points of 100"], rows, set())
    known = {"auc", "auc_ci", "n_customers", "n_expanded", "note", "criteria"}
    extra = [
        [esc(key.replace("_", " ")), esc(num(v) if isinstance(v, float) else v)]
        for key, v in sorted(expansion.items())
        if key not in known and isinstance(v, int | float | str | bool)
    ]
    if extra:
        body += table(["Figure", "Value"], extra, {1})
    lead = "A second scorecard: how likely an existing customer is to buy more."
    return section("expansion", "Expansion: existing customers", body, lead)


LEAK_WORDS = ("separates", "after the outcome", "records the outcome", "leak")
"""A drop reason with one of these words says the field gives the outcome away."""


def dropped_features(model: dict[str, Any]) -> list[tuple[str, str]]:
    """(field label, reason) for every feature `icp train` left out, leaks first.

    From `dropped_features` ([{field, reason}]) when the model has it, else from the
    criteria's `learned.dropped_reasons`, else the bare names of `features_dropped`.
    """
    found: dict[str, str] = {}
    for item in listed(model.get("dropped_features")):
        if isinstance(item, dict) and item.get("field"):
            found[str(item["field"])] = str(item.get("reason") or "")
    learned = (model.get("criteria") or {}).get("learned") or {}
    reasons = learned.get("dropped_reasons") if isinstance(learned, dict) else None
    for name, why in (reasons or {}).items() if isinstance(reasons, dict) else []:
        found.setdefault(str(name), str(why))
    for item in listed(model.get("features_dropped")):
        if isinstance(item, dict):
            found.setdefault(
                str(item.get("name", item.get("feature", ""))), str(item.get("reason") or "")
            )
        else:
            found.setdefault(str(item), "")
    rows = [(feature_label(name), why) for name, why in found.items() if name]
    return sorted(rows, key=lambda r: (not is_leak(r[1]), r[0].casefold()))


def is_leak(reason: str) -> bool:
    return any(word in reason.casefold() for word in LEAK_WORDS)


def feature_label(name: str) -> str:
    """`industry` -> `Industry`; `technologies=Slack` -> `Technologies: Slack`."""
    field, _, value = name.partition("=")
    label = field_label(field)
    return f"{label}: {value}" if value else label


def details_section(model: dict[str, Any]) -> str:
    used = [feature_label(str(f)) for f in listed(model.get("features_used"))]
    dropped = dropped_features(model)
    body = f"<h3>Features used ({len(used)})</h3><p>{esc(', '.join(used) or 'none recorded')}</p>"
    body += f"<h3>Features left out ({len(dropped)})</h3>"
    rows = [
        [
            f'<strong class="down">{esc(label)}</strong>' if is_leak(why) else esc(label),
            esc(("Leak: " if is_leak(why) else "") + (why or "no reason recorded")),
        ]
        for label, why in dropped
    ]
    body += table(["Feature", "Why it was left out"], rows, set()) if rows else "<p>none</p>"
    return section("details", "Details", body)
