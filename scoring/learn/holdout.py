"""The time-ordered holdout: the scorecard is fit on the older closes, written as YAML
criteria (points, penalties, tier caps, tier cut-offs) and that very document, evaluated
exactly as `sync` evaluates it (clipped to 0-100 and rounded like the score field), is
judged on the most recent closes. The document judged is the document written, so every
holdout figure describes what sellers will see. Beside it: the model behind it (its
log-odds on the same accounts), what flattening cost (rounding, clipping, caps), the
calibration fitted on the holdout, the tiers, and the comparison with the criteria in use
(the activation gate). A bootstrap over accounts gives every interval; the challenger
and the criteria in use are judged on the same resamples.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from icp_engine.scoring.criteria import ConditionEvaluator, score_accounts
from icp_engine.scoring.learn import patterns as lp
from icp_engine.scoring.learn.binning import encode, screen
from icp_engine.scoring.learn.features import Feature
from icp_engine.scoring.learn.model import Scorecard, add_value, challenger, fit_scorecard
from icp_engine.scoring.learn.scorecard_yaml import criteria_groups, place_tiers, scorecard_terms
from icp_engine.scoring.learn.screen import backward_screen
from icp_engine.scoring.learn.settings import TrainSettings
from icp_engine.scoring.learn.stats import (
    auc,
    bootstrap_aucs,
    brier,
    calibration_bins,
    interval,
    wilson,
)
from icp_engine.scoring.learn.stats import expected_calibration_error as ece
from icp_engine.scoring.learn.summary import (
    cap_rule,
    challenger_summary,
    platt,
    probability,
    spearman,
)
from icp_engine.scoring.schema import COMPUTED_FIELDS, IcpCriteria

MAX_CAPS = 3
"""Long-cycle anti-patterns written to the criteria (as tier caps); all are reported."""
GATE_MARGIN = 0.01
"""A new version is worse than the one in use when its holdout AUC is lower by more than
this, or when the paired bootstrap interval of the difference lies wholly below 0."""


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
    groups: dict[str, Any],
    anti: list[dict[str, Any]],
    tiers: dict[str, float],
    scale: dict[str, Any] | None = None,
) -> dict[str, Any]:
    document = {"version": 1, "criteria": groups, "tiers": tiers, "anti_patterns": anti}
    return document | ({"scale": scale} if scale else {})


def _frame_for(frame: pd.DataFrame, icp: IcpCriteria) -> pd.DataFrame:
    fields = {c.field for _, c, _ in icp.located_conditions({})} - set(COMPUTED_FIELDS)
    missing = sorted(fields - set(frame.columns))
    if missing:  # a manual criterion on a field this CRM lacks matches nobody
        frame = frame.assign(**dict.fromkeys(missing))
    return frame


def evaluate(frame: pd.DataFrame, document: dict[str, Any] | IcpCriteria, scale: int = 0) -> Any:
    """`sync`'s own scoring of every account under `document` (score, tier, ...)."""
    icp = document if isinstance(document, IcpCriteria) else IcpCriteria.model_validate(document)
    return score_accounts(_frame_for(frame, icp), icp, score_scale=scale)


def yaml_scores(frame: pd.DataFrame, document: dict[str, Any], scale: int = 0) -> np.ndarray:
    """The score `sync` would give each account under `document`."""
    return evaluate(frame, document, scale)["score"].to_numpy(float)


def raw_scores(frame: pd.DataFrame, document: dict[str, Any]) -> np.ndarray:
    """The score before it is clipped to 0-100 and rounded (to measure what those cost)."""
    icp = IcpCriteria.model_validate(document)
    evaluator = ConditionEvaluator(_frame_for(frame, icp))
    criteria = icp.all_criteria()
    total = sum(c.weight for _, _, c in criteria) or 1.0
    unit = 1.0 if icp.scale.weights == "points" else (100.0 - icp.scale.base) / total
    raw = np.full(len(frame), icp.scale.base)
    for _, _, c in criteria:
        raw += evaluator.all_of(c.conditions()) * unit * c.weight
    for a in icp.anti_patterns:
        raw -= evaluator.all_of(a.conditions()) * (a.penalty or 0.0)
    return raw


def figures(prob: np.ndarray, ranked: np.ndarray, boots: np.ndarray, yh: np.ndarray) -> dict:
    return {
        "auc": auc(ranked, yh),
        "auc_ci": interval(boots),
        "brier": brier(prob, yh),
        "ece": ece(prob, yh),
    }


def cross_fitted(score: np.ndarray, y: np.ndarray, seed: int) -> np.ndarray:
    """Platt probabilities for the holdout, each half calibrated on the other half, so the
    calibration error shown is not measured on the rows it was fitted on."""
    half = np.random.default_rng(seed).permutation(y.size) % 2 == 0
    out = np.empty(y.size)
    for fit in (half, ~half):
        if fit.sum() and (~fit).sum():
            a, b = platt(score[fit], y[fit])
            out[~fit] = probability(score[~fit], a, b)
    return out


def tier_rows(
    tiers: dict[str, float],
    tier: np.ndarray,
    y: np.ndarray,
    amount: np.ndarray,
    cycle: np.ndarray,
) -> list[dict[str, Any]]:
    """Per tier (best first) on the holdout: share, outcomes, win rate with its Wilson
    interval, ACV (mean won amount) and median won sales cycle."""
    out = []
    for name, low in sorted(tiers.items(), key=lambda item: -item[1]):
        hit = tier == name
        n, k = int(hit.sum()), int(y[hit].sum())
        lo, hi = wilson(np.array([k]), np.array([n]))
        won = hit & y
        values = amount[won][np.isfinite(amount[won]) & (amount[won] > 0)]
        days = cycle[won][np.isfinite(cycle[won])]
        out.append(
            {
                "tier": name,
                "threshold": float(low),
                "share": float(hit.mean()) if hit.size else 0.0,
                "closed": n,
                "won": k,
                "win_rate": k / n if n else None,
                "win_rate_ci": [float(lo[0]), float(hi[0])] if n else None,
                "acv": float(values.mean()) if values.size else None,
                "cycle_days": float(np.median(days)) if days.size else None,
            }
        )
    return out


def flattening_figures(
    frame: pd.DataFrame,
    document: dict[str, Any],
    card: Scorecard,
    tier_names: list[str],
    rows: np.ndarray,
    y: np.ndarray,
    scale: int,
    scored: pd.DataFrame | None = None,
) -> dict[str, Any]:
    """What writing the model as points cost on the outcomes `rows`: the model's AUC, the
    unrounded points' (before clipping to 0-100 and rounding), the written score's, the
    tiers', the share of the model's lift kept, scores cut off at 0 and 100."""
    scored = evaluate(frame, document, scale) if scored is None else scored
    written = scored["score"].to_numpy(float)[rows]
    model = card.logit(rows)
    raw = raw_scores(frame, document)[rows]
    order = {n: i for i, n in enumerate(tier_names)}
    tier_rank = -np.array([order[t] for t in scored["tier"].to_numpy(object)[rows]], dtype=float)
    model_auc, written_auc = auc(model, y), auc(written, y)
    return {
        "model_auc": model_auc,
        "unrounded_auc": auc(raw, y),
        "written_auc": written_auc,
        "tier_auc": auc(tier_rank, y),
        "lift_kept": lift_kept(written_auc, model_auc),
        "clipped_low": float((raw < -1e-9).mean()),
        "clipped_high": float((raw > 100 + 1e-9).mean()),
        "distinct_model": int(np.unique(np.round(model, 9)).size),
        "distinct_written": int(np.unique(written).size),
        "score_scale": scale,
    }


@dataclass
class Written:
    """One run of the learner on some outcomes: the scorecard and its criteria document."""

    card: Scorecard | None
    document: dict[str, Any] | None
    """Criteria, anti-patterns, tier caps, scale and tier cut-offs (no calibration yet)."""
    cands: list[Feature]
    dropped: dict[str, str]


def write_card(
    frame: pd.DataFrame,
    kinds: dict[str, str],
    tier_names: list[str],
    rows: np.ndarray,
    acc: np.ndarray,
    y: np.ndarray,
    amount: np.ndarray,
    cycle: np.ndarray,
    s: TrainSettings,
) -> Written:
    """The whole learner on the outcomes `rows` (binning, screening, C, interactions,
    merging, points, tier caps, tier cut-offs placed on those outcomes' scores)."""
    at, yr = acc[rows], y[rows]
    kept, cands, dropped = pipeline(frame, kinds, at, yr, s)
    card = fit_scorecard(kept, cands, at, yr, s.min_support)
    if s.objective == "expected_value":
        add_value(card, at, yr, amount[rows])
    groups, anti, scale = criteria_groups(scorecard_terms(card), at, yr)
    if not any(groups.values()):
        return Written(card, None, cands, dropped)
    second = tier_names[1] if len(tier_names) > 2 else tier_names[-1]
    patterns = lp.Patterns(frame, cands, at, yr, amount[rows], cycle[rows], s.min_support)
    caps = [cap_rule(e, second) for e in patterns.long_cycles()[:MAX_CAPS]]
    placeholder = {n: float(len(tier_names) - 1 - i) for i, n in enumerate(tier_names)}
    draft = criteria_document(groups, anti + caps, placeholder, scale)
    draft["tiers"] = place_tiers(
        yaml_scores(frame, draft, s.score_scale)[at], tier_names, s.tier_shares
    )
    return Written(card, draft, cands, dropped)


def lift_kept(written_auc: float, model_auc: float) -> float | None:
    """The share of the model's lift (AUC - 0.5) the written score keeps."""
    lift = model_auc - 0.5
    return (written_auc - 0.5) / lift if lift > 0 else None


@dataclass
class Judged:
    """What the time-ordered split says about the criteria written."""

    holdout: dict[str, Any]
    holdout_model: dict[str, Any]
    train_window: dict[str, Any]
    challenger: dict[str, Any]
    calibration: dict[str, Any]
    tiers: list[dict[str, Any]]
    C: float
    signal: bool
    document: dict[str, Any] | None = None
    """The learned criteria written (no segments or routing yet), judged on the holdout."""
    card: Scorecard | None = None
    dropped: dict[str, str] = field(default_factory=dict)
    flattening: dict[str, Any] = field(default_factory=dict)
    gate: dict[str, Any] | None = None
    fit_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    hold_rows: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    backtest_document: dict[str, Any] | None = None
    """The criteria fitted on the older outcomes: the document the holdout figures judge
    (`document` is the same learner refit on every outcome, see `refit`)."""
    written: dict[str, Any] = field(default_factory=dict)
    """The document written: the outcomes it was fit on and what writing it cost on them."""


def judge(
    frame: pd.DataFrame,
    kinds: dict[str, str],
    tier_names: list[str],
    acc: np.ndarray,
    y: np.ndarray,
    closed: np.ndarray,
    amount: np.ndarray,
    cycle: np.ndarray,
    s: TrainSettings,
    active: IcpCriteria | None = None,
) -> Judged:
    """Fit on the older closes, write the criteria, judge that document on the recent ones.

    Args:
        active: the criteria in use; judged on the same holdout for the activation gate.
    """
    cutoff = closed[min(round(len(closed) * (1 - s.holdout_share)), len(closed) - 1)]
    fit, hold = np.flatnonzero(closed < cutoff), np.flatnonzero(closed >= cutoff)
    yf, yh = y[fit], y[hold]
    both = fit.size and hold.size and 0 < yf.sum() < yf.size and 0 < yh.sum() < yh.size
    written = Written(None, None, [], {})
    if both:
        written = write_card(frame, kinds, tier_names, fit, acc, y, amount, cycle, s)
    card, document, cands, dropped = written.card, written.document, written.cands, written.dropped
    if document is not None:
        scored = evaluate(frame, document, s.score_scale)
        scores = scored["score"].to_numpy(float)
        tier = scored["tier"].to_numpy(object)
    else:
        scores = np.zeros(len(frame))
        tier = np.full(len(frame), tier_names[-1], dtype=object)
    sh = scores[acc[hold]]
    model_h = card.logit(acc[hold]) if card else np.zeros(hold.size)
    ranked = [sh, model_h]
    hgb = None
    if s.challenger and cands:
        hgb = challenger(frame, cands, acc[fit], yf, acc[hold], s.seed)
        ranked.append(hgb)
    active_h = None
    if active is not None and document is not None:
        active_h = evaluate(frame, active, s.score_scale)["score"].to_numpy(float)[acc[hold]]
        ranked.append(active_h)
    boots = bootstrap_aucs(ranked, yh, acc[hold], s.bootstrap, np.random.default_rng(s.seed))
    prob = cross_fitted(sh, yh, s.seed) if hold.size else np.zeros(0)
    a, b = platt(sh, yh) if hold.size else (0.0, 0.0)
    window_h = (
        {"start": iso(closed[hold].min()), "end": iso(closed[hold].max())} if hold.size else None
    )
    counts = {"n_won": int(yh.sum()), "n_lost": int((~yh).sum()), "window": window_h}
    holdout = figures(prob, sh, boots[0], yh) | counts
    holdout |= {"model_auc": auc(model_h, yh), "rank_agreement": spearman(sh, model_h)}
    model_prob = 1 / (1 + np.exp(-model_h))
    holdout_model = figures(model_prob, model_h, boots[1], yh) | counts
    holdout_model["model"] = "the scorecard's log-odds before it is written as points"
    auc_h, ci = holdout["auc"], holdout["auc_ci"]
    calibration = {
        "method": "platt",
        "intercept": a,
        "slope": b,
        "ece": holdout["ece"],
        "bins": calibration_bins(prob, yh),
        "note": "fitted on the holdout; the error is cross-fitted (each half on the other)",
    }
    if document is not None:
        document["calibration"] = {
            "method": "platt",
            "intercept": round(a, 6),
            "slope": round(b, 6),
            "ece": round(holdout["ece"], 4),
        }
    tiers = (
        tier_rows(document["tiers"], tier[acc[hold]], yh, amount[hold], cycle[hold])
        if document
        else []
    )
    flattening = {}
    if document is not None and card is not None:
        flattening = flattening_figures(
            frame, document, card, tier_names, acc[hold], yh, s.score_scale, scored
        )
    gate = None
    if active_h is not None:
        diff = boots[0] - boots[-1]
        lo, hi = interval(diff)
        delta = auc_h - auc(active_h, yh)
        worse = bool(delta < -GATE_MARGIN or (np.isfinite(hi) and hi < 0))
        gate = {
            "test": (
                "paired bootstrap over holdout accounts of AUC(new) - AUC(in use); worse when "
                f"the difference is below -{GATE_MARGIN} or its 95% interval lies below 0"
            ),
            "auc_new": auc_h,
            "auc_active": auc(active_h, yh),
            "difference": delta,
            "difference_ci": [lo, hi],
            "worse": worse,
        }
    challenger_boots = boots[[0, 2]] if hgb is not None else boots[:1]
    return Judged(
        holdout=holdout,
        holdout_model=holdout_model,
        train_window=window(closed[fit], yf) if fit.size else {},
        challenger=challenger_summary(hgb, challenger_boots, yh, auc_h, ci),
        calibration=calibration,
        tiers=tiers,
        C=card.C if card else 1.0,
        signal=bool(np.isfinite(ci[0]) and ci[0] > 0.5 and sh.std() > 0),
        document=document,
        card=card,
        dropped=dropped,
        flattening=flattening,
        gate=gate,
        fit_rows=fit,
        hold_rows=hold,
    )


REFIT_NOTE = (
    "time-ordered backtest: the learner fitted on the older outcomes and judged on the most "
    "recent ones; the criteria written are the same learner refit on every closed outcome"
)


def refit(
    judged: Judged,
    frame: pd.DataFrame,
    kinds: dict[str, str],
    tier_names: list[str],
    acc: np.ndarray,
    y: np.ndarray,
    closed: np.ndarray,
    amount: np.ndarray,
    cycle: np.ndarray,
    s: TrainSettings,
) -> Judged:
    """Validate, then refit on everything: once the holdout has judged the learner (the
    backtest), the learner runs again on every closed outcome and that document is the
    one written, so the most recent quarter, the closest to the accounts scored next,
    informs the criteria. The holdout figures, the tiers on the holdout, the calibration
    error and the activation gate stay those of the backtest (like with like); the
    written document's tier cut-offs are placed and its win probability is calibrated
    (Platt) on every outcome. Without signal, or when the refit keeps no criterion, the
    backtest's document stays.
    """
    if not judged.signal or judged.document is None:
        return judged
    every = np.arange(y.size)
    final = write_card(frame, kinds, tier_names, every, acc, y, amount, cycle, s)
    if final.document is None or final.card is None:
        return judged
    document = final.document
    scored = evaluate(frame, document, s.score_scale)
    a, b = platt(scored["score"].to_numpy(float)[acc], y)
    document["calibration"] = {
        "method": "platt",
        "intercept": round(a, 6),
        "slope": round(b, 6),
        "ece": round(judged.holdout["ece"], 4),
    }
    judged.calibration = judged.calibration | {
        "intercept": a,
        "slope": b,
        "note": "fitted on every closed outcome for the criteria written; the error shown is "
        "the backtest's on the holdout, cross-fitted (each half on the other)",
    }
    flat = flattening_figures(
        frame, document, final.card, tier_names, acc, y, s.score_scale, scored
    )
    judged.written = {
        "fit_on": "every closed outcome",
        "window": window(closed, y),
        "C": final.card.C,
        "flattening": flat,
        "note": REFIT_NOTE,
    }
    judged.backtest_document = judged.document
    judged.document, judged.card, judged.dropped = document, final.card, final.dropped
    judged.C = final.card.C
    return judged
