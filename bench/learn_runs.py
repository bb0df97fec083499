"""Running `train` for `bench/bench_learn.py`, and the figures the sections quote.

The figures of one `train` call, whether the proposed criteria equal the manual file,
win rates with Wilson intervals, and the holdout `train` uses, replayed.
"""

from __future__ import annotations

import time
from typing import Any

import learn_data as ld
import numpy as np
import pandas as pd
from icp_engine.scoring.learn.outcomes import collect_outcomes
from icp_engine.scoring.learn.stats import wilson
from icp_engine.scoring.learn.train import (
    NotEnoughOutcomes,
    TrainResult,
    TrainSettings,
    plain,
    train,
)
from learn_rules import criteria_rules, rule_text


def run(ds: ld.Dataset, **settings: Any) -> tuple[TrainResult | None, str | None, float]:
    """`train` on a data set: (result or None, refusal message or None, seconds)."""
    s = TrainSettings(lookback_days=ld.LOOKBACK_DAYS, **settings)
    _, manual = ld.csv_config()
    start = time.perf_counter()
    try:
        result = train(ds.accounts, ds.opportunities, manual, ds.field_types, ds.now, s)
    except NotEnoughOutcomes as refusal:
        return None, str(refusal), time.perf_counter() - start
    return result, None, time.perf_counter() - start


def train_figures(
    result: TrainResult | None, refusal: str | None, seconds: float
) -> dict[str, Any]:
    """The figures a closing note may quote, from one `train` call."""
    if result is None:
        return {"refused": refusal, "seconds": seconds}
    h = result.holdout
    return {
        "signal": result.signal,
        "holdout_auc": h["auc"],
        "holdout_auc_ci": h["auc_ci"],
        "holdout_n_won": h["n_won"],
        "holdout_n_lost": h["n_lost"],
        "holdout_window": h["window"],
        "n_won": result.criteria["learned"]["n_won"],
        "n_lost": result.criteria["learned"]["n_lost"],
        "challenger_auc": result.challenger.get("auc"),
        "challenger_clearly_better": result.challenger.get("clearly_better"),
        "features_used": result.features_used,
        "criteria": [
            {
                "where": w,
                "rule": rule_text(r, 200),
                "name": r["name"],
                "weight": r.get("weight"),
                "penalty": r.get("penalty"),
                "cap_tier": r.get("cap_tier"),
            }
            for w, r in criteria_rules(result.criteria)
            if w != "segment"
        ],
        "segments": len(result.segments),
        "anti_patterns": len(result.anti_patterns),
        "emerging": len(result.emerging),
        "loss_patterns": len(result.loss_patterns),
        "warnings": result.warnings,
        "seconds": seconds,
    }


def unchanged(result: TrainResult) -> bool:
    """The proposed criteria equal the manual file (the learned header aside)."""
    _, manual = ld.csv_config()
    proposed = {k: v for k, v in result.criteria.items() if k != "learned"}
    return proposed == plain(manual.model_dump(by_alias=True, exclude_none=True, mode="json"))


def rate_table(frame: pd.DataFrame, key: str, won: str) -> list[dict[str, Any]]:
    """Win rate per value of `key` with a Wilson 95% interval, most frequent first."""
    groups = frame.groupby(frame[key].fillna("(missing)"), sort=False)[won].agg(["sum", "size"])
    groups = groups.sort_values("size", ascending=False)
    low, high = wilson(groups["sum"].to_numpy(float), groups["size"].to_numpy(float))
    return [
        {
            "value": str(v),
            "n": int(r["size"]),
            "won": int(r["sum"]),
            "rate": r["sum"] / r["size"],
            "ci": [float(lo), float(hi)],
        }
        for (v, r), lo, hi in zip(groups.iterrows(), low, high, strict=True)
    ]


def holdout_rows(
    ds_accounts: pd.DataFrame, opps: pd.DataFrame, now: Any, s: TrainSettings
) -> tuple[np.ndarray, np.ndarray]:
    """The account rows and outcomes `train` holds out (its time-ordered split, replayed)."""
    out = collect_outcomes(ds_accounts, opps, now, s.lookback_days, s.unit, s.emerging_days)
    closed = out.rows["closed"].to_numpy(np.int64)
    cut = closed[min(round(len(closed) * (1 - s.holdout_share)), len(closed) - 1)]
    hold = closed >= cut
    return out.rows["account"].to_numpy(np.int64)[hold], out.rows["won"].to_numpy(bool)[hold]
