"""The time-ordered holdout: everything is fit on the older closes and the criteria it
yields are judged, as YAML evaluated exactly as `sync` evaluates it, on the most
recent ones. A bootstrap over accounts gives the AUC interval that decides the signal;
the gradient-boosting challenger is judged on the same rows with the same resamples."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from scoring.criteria import score_accounts
from scoring.learn_binning import encode, screen
from scoring.learn_features import Feature
from scoring.learn_model import challenger, fit_scorecard
from scoring.learn_screen import backward_screen
from scoring.learn_stats import auc, bootstrap_aucs, brier, calibration_bins, interval
from scoring.learn_stats import expected_calibration_error as ece
from scoring.learn_summary import challenger_summary, platt, probability, spearman
from scoring.learn_yaml import criteria_groups, scorecard_terms
from scoring.schema import COMPUTED_FIELDS, IcpCriteria

if TYPE_CHECKING:
    from scoring.learn import TrainSettings


def iso(ns: float) -> str:
    return pd.Timestamp(int(ns), tz="UTC").isoformat()


def window(closed: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    return {
        "start": iso(closed.min()),
        "end": iso(closed.max()),
        "n_won": int(y.sum()),
        "n_lost": int((~y).sum()),
    }


def pipeline(
    frame: pd.DataFrame, kinds: dict[str, str], rows: np.ndarray, y: np.ndarray, s: TrainSettings
) -> tuple[list[Feature], list[Feature], dict[str, str]]:
    """Encode every candidate on `rows`; (kept features, rule candidates, dropped reasons)."""
    encoded, dropped = encode(frame, kinds, rows, y.astype(float), s.min_support, s.alpha)
    kept, screened = screen(encoded, rows, y.astype(float), s.alpha, s.leak_auc)
    kept, redundant = backward_screen(kept, rows, y, s.alpha)
    leaks = {name for name, why in screened.items() if why.startswith("separates")}
    return kept, [f for f in encoded if f.name not in leaks], dropped | screened | redundant


def criteria_document(
    groups: dict[str, Any], anti: list[dict[str, Any]], tiers: dict[str, float]
) -> dict[str, Any]:
    return {"version": 1, "criteria": groups, "tiers": tiers, "anti_patterns": anti}


def yaml_scores(frame: pd.DataFrame, document: dict[str, Any]) -> np.ndarray:
    """The score `sync` would give each account under `document`."""
    icp = IcpCriteria.model_validate(document)
    fields = {c.field for _, c, _ in icp.located_conditions({})} - set(COMPUTED_FIELDS)
    missing = sorted(fields - set(frame.columns))
    if missing:  # a manual criterion on a field this CRM lacks matches nobody
        frame = frame.assign(**dict.fromkeys(missing))
    return score_accounts(frame, icp)["score"].to_numpy(float)


@dataclass
class Judged:
    """What the time-ordered split says about the scorecard."""

    holdout: dict[str, Any]
    train_window: dict[str, Any]
    challenger: dict[str, Any]
    calibration: list[dict[str, Any]]
    C: float
    signal: bool


def judge(
    frame: pd.DataFrame,
    kinds: dict[str, str],
    tiers: dict[str, float],
    acc: np.ndarray,
    y: np.ndarray,
    closed: np.ndarray,
    s: TrainSettings,
) -> Judged:
    """Fit everything on the older closes; judge the YAML it yields on the most recent."""
    cutoff = closed[min(round(len(closed) * (1 - s.holdout_share)), len(closed) - 1)]
    fit, hold = np.flatnonzero(closed < cutoff), np.flatnonzero(closed >= cutoff)
    yf, yh = y[fit], y[hold]
    both = fit.size and hold.size and 0 < yf.sum() < yf.size and 0 < yh.sum() < yh.size
    card = None
    scores = np.zeros(len(frame))
    cands: list[Feature] = []
    if both:
        kept, cands, _ = pipeline(frame, kinds, acc[fit], yf, s)
        card = fit_scorecard(kept, cands, acc[fit], yf, s.min_support)
        groups, anti = criteria_groups(scorecard_terms(card), acc[fit], yf)
        if any(groups.values()):
            scores = yaml_scores(frame, criteria_document(groups, anti, tiers))
    sh = scores[acc[hold]]
    model_h = card.logit(acc[hold]) if card else np.zeros(hold.size)
    ranked = [sh]
    hgb = None
    if s.challenger and cands:
        hgb = challenger(frame, cands, acc[fit], yf, acc[hold], s.seed)
        ranked.append(hgb)
    boots = bootstrap_aucs(ranked, yh, acc[hold], s.bootstrap, np.random.default_rng(s.seed))
    auc_h, ci = auc(sh, yh), interval(boots[0])
    a, b = platt(scores[acc[fit]], yf) if fit.size else (0.0, 0.0)
    prob = probability(sh, a, b)
    holdout = {
        "auc": auc_h,
        "auc_ci": ci,
        "brier": brier(prob, yh),
        "ece": ece(prob, yh),
        "n_won": int(yh.sum()),
        "n_lost": int((~yh).sum()),
        "window": {"start": iso(closed[hold].min()), "end": iso(closed[hold].max())},
        "model_auc": auc(model_h, yh),
        "rank_agreement": spearman(sh, model_h),
    }
    return Judged(
        holdout=holdout,
        train_window=window(closed[fit], yf),
        challenger=challenger_summary(hgb, boots, yh, auc_h, ci),
        calibration=calibration_bins(prob, yh),
        C=card.C if card else 1.0,
        signal=bool(np.isfinite(ci[0]) and ci[0] > 0.5 and sh.std() > 0),
    )
