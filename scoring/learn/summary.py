"""Figures `icp train` reports beside the criteria: the challenger verdict, calibration
(Platt scaling from score to win probability), tiers, the score distribution and the
temporal patterns that are known only after the outcome (reported, never scored)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from icp_engine.scoring.learn.stats import auc, interval
from sklearn.linear_model import LogisticRegression


def platt(score: np.ndarray, y: np.ndarray) -> tuple[float, float]:
    """(intercept, slope) with P(win) = 1 / (1 + exp(-(intercept + slope * score)))."""
    if y.min() == y.max():
        rate = float(np.clip(y.mean(), 1e-6, 1 - 1e-6))
        return float(np.log(rate / (1 - rate))), 0.0
    model = LogisticRegression(C=1e6, max_iter=1000).fit((score / 100.0)[:, None], y)
    return float(model.intercept_[0]), float(model.coef_[0, 0] / 100.0)


def probability(score: np.ndarray, intercept: float, slope: float) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-(intercept + slope * np.asarray(score, dtype=float))))


def score_distribution(scores: np.ndarray, rows: np.ndarray, y: np.ndarray) -> list[dict[str, Any]]:
    """Accounts per 10-point band of the score, with the win rate of those with outcomes."""
    band = np.minimum((np.asarray(scores) // 10).astype(int), 9)
    row_band = band[rows]
    out = []
    for b in range(10):
        closed = row_band == b
        out.append(
            {
                "low": float(b * 10),
                "high": float(b * 10 + 10),
                "n": int((band == b).sum()),
                "closed": int(closed.sum()),
                "win_rate": float(y[closed].mean()) if closed.any() else None,
            }
        )
    return out


def challenger_summary(
    hgb: np.ndarray | None, boots: np.ndarray, yh: np.ndarray, base: float, ci: list[float]
) -> dict[str, Any]:
    info: dict[str, Any] = {
        "model": "HistGradientBoosting",
        "auc": None,
        "auc_ci": None,
        "clearly_better": False,
        "note": "not trained",
    }
    if hgb is None:
        return info
    diff = interval(boots[1] - boots[0])
    value = auc(hgb, yh)
    better = bool(np.isfinite(diff[0]) and diff[0] > 0)
    info |= {
        "auc": value,
        "auc_ci": interval(boots[1]),
        "auc_difference_ci": diff,
        "clearly_better": better,
        "note": (
            f"the black-box challenger ranks the holdout clearly better ({value:.3f} vs "
            f"{base:.3f}); it is reported only, never deployed: consider richer criteria"
            if better
            else f"no clear gain over the scorecard ({value:.3f} vs {base:.3f}, paired "
            f"difference interval [{diff[0]:.3f}, {diff[1]:.3f}])"
        ),
    }
    return info


def spearman(a: np.ndarray, b: np.ndarray) -> float | None:
    if np.std(a) == 0 or np.std(b) == 0:
        return None
    return float(pd.Series(a).corr(pd.Series(b), method="spearman"))


def cap_rule(entry: dict[str, Any], tier: str) -> dict[str, Any]:
    rule: dict[str, Any] = {"name": f"Long sales cycle: {entry['name']}"[:80]}
    rule |= entry["when"][0] if len(entry["when"]) == 1 else {"when": entry["when"]}
    return rule | {"cap_tier": tier, "description": entry["reason"]}


def summary_text(won: int, lost: int, window: dict[str, Any], holdout: dict[str, Any]) -> str:
    lo, hi = holdout["auc_ci"]
    return (
        f"Learned from {won} won and {lost} lost outcomes; trained on closes from "
        f"{window['start'][:10]} to {window['end'][:10]}, judged on the "
        f"{holdout['n_won'] + holdout['n_lost']} most recent (holdout AUC "
        f"{holdout['auc']:.2f}, 95% CI {lo:.2f}-{hi:.2f})."
    )


def tier_table(
    scores: np.ndarray, acc: np.ndarray, y: np.ndarray, tiers: dict[str, float]
) -> list[dict[str, Any]]:
    order = sorted(tiers.items(), key=lambda item: -item[1])
    out, upper = [], np.inf
    for name, low in order:
        hit = (scores >= low) & (scores < upper)
        closed = hit[acc]
        out.append(
            {
                "tier": name,
                "threshold": low,
                "share": float(hit.mean()),
                "closed": int(closed.sum()),
                "win_rate": float(y[closed].mean()) if closed.any() else None,
            }
        )
        upper = low
    return out


def temporal(rows: pd.DataFrame) -> dict[str, Any]:
    """Patterns known only after the outcome: reported, never used to score."""
    quarter = rows["date"].dt.tz_localize(None).dt.to_period("Q").astype(str)
    by_quarter = rows.groupby(quarter)["won"].agg(["mean", "size"])
    return {
        "win_rate_by_close_quarter": {
            q: {"win_rate": float(r["mean"]), "n": int(r["size"])} for q, r in by_quarter.iterrows()
        },
        "median_cycle_days": {
            "won": float(rows.loc[rows["won"], "cycle_days"].median()),
            "lost": float(rows.loc[~rows["won"], "cycle_days"].median()),
        },
    }
