"""Issue 9 evidence B: where the written score's lift goes against the planted oracle.

    python bench/learn_lift.py [--seeds 11,12,13] [--accounts 4000] [--scale-up]

Per seed of `tests/planted.py` (by default without the Scale-up SaaS segment, i.e. the
generator `bench/learn_judged.py` measured before that segment was planted), every
scorecard below is written as criteria and scored as `sync` scores it on a fresh draw of
the generator (seed + 1000) that none of them saw; each figure is the captured lift
(written AUC - 0.5) / (oracle AUC - 0.5) on that draw:

- `written`: the backtest's criteria, the learner fitted on the older 75% of outcomes
  (what `train` wrote until it refit on every outcome after the backtest);
- `C=x`, `alpha=0.05`, `no merge`: the same with one knob changed;
- `same levels, all`: its levels, rules and C kept, the weights refit on every outcome;
- `refit all`: the whole learner (binning, screening, C, merging, interactions) run again
  on every outcome (what `train` writes since issue-9-lift: validate, then refit);
- `truth 75%` / `truth all`: a logistic regression over the generator's own structure
  (size bands, industries, Healthcare x EMEA, Salesforce, pre-revenue, and Scale-up SaaS
  when planted) on the older 75% / on every outcome: what any learner could hope for
  from that much data.

Exits 0 always: it reports, it is not a test.
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from icp_engine.scoring.features import build_features  # noqa: E402
from icp_engine.scoring.learn import model as lm  # noqa: E402
from icp_engine.scoring.learn.binning import candidate_fields  # noqa: E402
from icp_engine.scoring.learn.holdout import criteria_document, pipeline, yaml_scores  # noqa: E402
from icp_engine.scoring.learn.outcomes import collect_outcomes  # noqa: E402
from icp_engine.scoring.learn.scorecard_yaml import criteria_groups, scorecard_terms  # noqa: E402
from icp_engine.scoring.learn.stats import auc  # noqa: E402
from icp_engine.scoring.learn.train import TrainSettings  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402

from tests import planted as pl  # noqa: E402


def _document(card: lm.Scorecard, rows: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    groups, anti, scale = criteria_groups(scorecard_terms(card), rows, y)
    return criteria_document(groups, anti, {"A": 3.0, "B": 2.0, "C": 1.0, "D": 0.0}, scale)


def _truth(accounts: pd.DataFrame, scale_up: bool) -> np.ndarray:
    """The generator's own traits, one column each (its structure, not its weights)."""
    employees = accounts["employees"].to_numpy(float)
    band = np.digitize(employees, [50, 501, 5001])
    industry = accounts["industry"].to_numpy(object)
    columns = [band == k for k in range(4)] + [industry == i for i in pl.INDUSTRIES]
    columns.append((industry == "Healthcare") & np.isin(accounts["country"].to_numpy(), pl.EMEA))
    columns.append(accounts["technologies"].fillna("").str.contains("Salesforce").to_numpy())
    columns.append((accounts["annual_revenue"] == 0).to_numpy())
    if scale_up:
        age = pl.NOW.year - accounts["year_started"].to_numpy(float)
        columns.append(
            (industry == "Technology/SaaS")
            & (employees >= 100)
            & (employees <= 300)
            & (age >= 3)
            & (age <= 10)
        )
    return np.column_stack(columns).astype(float)


def decompose(seed: int, n: int, scale_up: bool) -> dict[str, float]:
    accounts, opps, _ = pl.planted_crm(n, seed=seed, scale_up=scale_up)
    f_acc, f_opps, f_oracle = pl.planted_crm(n, seed=seed + 1000, scale_up=scale_up)
    as_of = pl.NOW.date()
    frame = build_features(accounts, opps, as_of=as_of)
    fresh = build_features(f_acc, f_opps, as_of=as_of)
    kinds, _ = candidate_fields(frame, dict(pl.FIELD_TYPES), ("type",))
    out = collect_outcomes(accounts, opps, pl.NOW, 730, "account", 90)
    acc = out.rows["account"].to_numpy(np.int64)
    y = out.rows["won"].to_numpy(bool)
    closed = out.rows["closed"].to_numpy(np.int64)
    f_out = collect_outcomes(f_acc, f_opps, pl.NOW, 730, "account", 90)
    f_rows = f_out.rows["account"].to_numpy(np.int64)
    f_y = f_out.rows["won"].to_numpy(bool)
    ids = f_acc["account_id"].to_numpy()[f_rows]
    oracle = auc(f_oracle["p_win"].reindex(ids).to_numpy(float), f_y)

    def captured(score: np.ndarray) -> float:
        return (auc(score, f_y) - 0.5) / (oracle - 0.5)

    def written(document: dict[str, Any]) -> float:
        return captured(yaml_scores(fresh, document)[f_rows])

    older = np.flatnonzero(closed < closed[round(len(closed) * 0.75)])
    every = np.arange(y.size)
    s = TrainSettings()
    kept, cands, _ = pipeline(frame, kinds, acc[older], y[older], s)

    def fresh_copy() -> tuple[list[Any], list[Any]]:  # fitting merges a feature's levels in place
        return copy.deepcopy(kept), copy.deepcopy(cands)

    card = lm.fit_scorecard(*fresh_copy(), acc[older], y[older], s.min_support)
    r = {"written": written(_document(card, acc[older], y[older])), "C": card.C}
    same = copy.deepcopy(card).fit(acc, y)
    r["same levels, all"] = written(_document(same, acc, y))
    for C in (0.3, 1.0, 3.0):
        other = lm.fit_scorecard(*fresh_copy(), acc[older], y[older], s.min_support, C=C)
        r[f"C={C:g}"] = written(_document(other, acc[older], y[older]))
    loose = TrainSettings(alpha=0.05)
    k2, c2, _ = pipeline(frame, kinds, acc[older], y[older], loose)
    card2 = lm.fit_scorecard(k2, c2, acc[older], y[older], s.min_support)
    r["alpha=0.05"] = written(_document(card2, acc[older], y[older]))
    merge = lm.merge_levels
    lm.merge_levels = lambda card, p0: False  # type: ignore[assignment]
    try:
        card3 = lm.fit_scorecard(*fresh_copy(), acc[older], y[older], s.min_support)
    finally:
        lm.merge_levels = merge
    r["no merge"] = written(_document(card3, acc[older], y[older]))
    k4, c4, _ = pipeline(frame, kinds, acc, y, s)
    r["refit all"] = written(_document(lm.fit_scorecard(k4, c4, acc, y, s.min_support), acc, y))
    truth, f_truth = _truth(accounts, scale_up), _truth(f_acc, scale_up)
    for tag, rows in (("truth 75%", older), ("truth all", every)):
        model = LogisticRegression(C=1.0, max_iter=2000).fit(truth[acc[rows]], y[rows])
        r[tag] = captured(model.decision_function(f_truth[f_rows]))
    return r


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="11,12,13")
    parser.add_argument("--accounts", type=int, default=4000)
    parser.add_argument("--scale-up", action="store_true", help="plant Scale-up SaaS too")
    args = parser.parse_args()
    rows = []
    for seed in (int(s) for s in args.seeds.split(",")):
        r = decompose(seed, args.accounts, args.scale_up)
        rows.append(r)
        print(f"seed {seed} (C chosen {r['C']:g}):")
        for key, value in r.items():
            if key != "C":
                print(f"   {key:<18} {value:.3f}")
        sys.stdout.flush()
    keys = [k for k in rows[0] if k != "C"]
    print("mean: " + ", ".join(f"{k} {np.mean([r[k] for r in rows]):.3f}" for k in keys))


if __name__ == "__main__":
    main()
