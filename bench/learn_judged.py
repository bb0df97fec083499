"""Issue 9 evidence: is what `icp train` reports what `icp sync` writes?

    python bench/learn_judged.py DATA_DIR [--only olist,maven,ravenstack,planted]
                                 [--seeds 11,12,13] [--accounts 4000] [--json]

DATA_DIR holds `olist-funnel/`, `maven-crm/` and `ravenstack/` (e.g. `../shared/data`).

For each data set it trains as `icp train` does (the bundled `mappings/icp.yaml` as the
hand-written ICP), then, independently of the learner's own figures, scores every
account with the criteria document it returned, through `scoring.criteria.score_accounts`
(what `sync` writes, score rounded to whole points), and replays the time-ordered
holdout from `train`'s outcome rule and the holdout window it reports. Printed per set:

- reported holdout AUC (`holdout.auc`) vs the AUC, on those same holdout outcomes, of
  the criteria the backtest judged (`backtest_criteria`: fitted on the older outcomes;
  before the refit, the written criteria themselves) scored as sync scores them, and the
  model behind it (`holdout_model.auc`, or the older `holdout.model_auc`); the share of
  the model's lift (AUC - 0.5) that score keeps;
- since train refits on every outcome once the backtest has judged the learner: the
  written criteria's holdout AUC (in-sample, so not a fair figure) and the share of its
  own model's lift the written score keeps on every outcome (`written.flattening`);
- scores cut off at 0 or 100 (a raw score outside 0-100 would be clipped) and tier counts;
- tier shares, win rates and ACV on the holdout, as the written tiers assign them;
- three sample reasons as written (the best-, middle- and worst-scored holdout accounts);
- planted data only: the oracle's AUC on the same holdout (the generator's true win
  probability) and the written score's captured lift, (AUC - 0.5) / (oracle AUC - 0.5);
  and the same on a fresh draw of the generator (seed + 1000) that no version of the
  learner saw: the fair comparison between learners that refit on the holdout and
  learners that do not.

It only uses `train`, `collect_outcomes`, `score_accounts` and the criteria schema, so
it runs unchanged against an older checkout (`PYTHONPATH=OLD_CHECKOUT`) for a before/after.
Exits 0 always: it reports, it is not a test.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "bench")]
if str(ROOT) not in sys.path:
    sys.path.append(str(ROOT))

import learn_data as ld  # noqa: E402
import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402
from icp_engine.scoring.criteria import score_accounts  # noqa: E402
from icp_engine.scoring.features import build_features  # noqa: E402
from icp_engine.scoring.learn.outcomes import collect_outcomes  # noqa: E402
from icp_engine.scoring.learn.stats import auc  # noqa: E402
from icp_engine.scoring.learn.train import NotEnoughOutcomes, TrainSettings, train  # noqa: E402
from icp_engine.scoring.schema import IcpCriteria  # noqa: E402


def judge_written(
    name: str,
    accounts: pd.DataFrame,
    opportunities: pd.DataFrame,
    field_types: dict[str, str],
    now: Any,
    oracle: pd.Series | None = None,
    fresh: tuple[pd.DataFrame, pd.DataFrame, pd.Series] | None = None,
    **settings: Any,
) -> dict[str, Any]:
    """Train, then score the returned document as sync does and judge it on the holdout."""
    _, manual = ld.csv_config()
    s = TrainSettings(**({"lookback_days": ld.LOOKBACK_DAYS} | settings))
    try:
        result = train(accounts, opportunities, manual, field_types, now, s)
    except NotEnoughOutcomes as refusal:
        return {"set": name, "refused": str(refusal)}
    out = collect_outcomes(accounts, opportunities, now, s.lookback_days, s.unit, s.emerging_days)
    start = pd.Timestamp(result.holdout["window"]["start"]).value
    rows = out.rows[out.rows["closed"].to_numpy(np.int64) >= start]
    acc = rows["account"].to_numpy(np.int64)
    y = rows["won"].to_numpy(bool)
    amount = rows["amount"].to_numpy(float)
    icp = IcpCriteria.model_validate(result.criteria)
    scored = score_accounts(build_features(accounts, opportunities), icp, reasons_length=255)
    score = scored["score"].to_numpy(float)[acc]
    tier = scored["tier"].to_numpy(object)[acc]
    model = (getattr(result, "holdout_model", None) or {}).get("auc") or result.holdout.get(
        "model_auc"
    )
    written = auc(score, y)
    backtest_doc = getattr(result, "backtest_criteria", None)  # validate, then refit
    backtest = written
    if backtest_doc:
        icp_b = IcpCriteria.model_validate(backtest_doc)
        judged = score_accounts(build_features(accounts, opportunities), icp_b)
        backtest = auc(judged["score"].to_numpy(float)[acc], y)
    refit = (getattr(result, "written", None) or {}).get("flattening") or {}
    figures: dict[str, Any] = {
        "set": name,
        "signal": result.signal,
        "holdout_n": int(y.size),
        "holdout_n_reported": result.holdout["n_won"] + result.holdout["n_lost"],
        "reported_auc": result.holdout["auc"],
        "written_auc": written,
        "model_auc": model,
        "backtest_auc": backtest,
        "lift_kept": (backtest - 0.5) / (model - 0.5) if model and model > 0.5 else None,
        "refit": bool(backtest_doc),
        "written_lift_kept": refit.get("lift_kept"),
        "flattening": getattr(result, "flattening", None),
        "at_0": float((score == 0).mean()),
        "at_100": float((score == 100).mean()),
        "distinct_scores": int(np.unique(score).size),
        "tiers": [],
        "reasons": [],
        "activated_gate": getattr(result, "gate", None),
        "warnings": result.warnings,
    }
    for t, low in icp.tier_order():
        hit = tier == t
        won = hit & y
        paid = amount[won][np.isfinite(amount[won])]
        figures["tiers"].append(
            {
                "tier": t,
                "from": low,
                "share": float(hit.mean()),
                "closed": int(hit.sum()),
                "win_rate": float(y[hit].mean()) if hit.any() else None,
                "acv": float(paid.mean()) if paid.size else None,
            }
        )
    order = np.argsort(-score, kind="stable")
    if order.size:
        for i in (order[0], order[order.size // 2], order[-1]):
            figures["reasons"].append(
                f"{score[i]:g} ({tier[i]}): {scored['reasons'].to_numpy(object)[acc[i]]}"
            )
    if oracle is not None:
        ids = accounts["account_id"].to_numpy()[acc]
        o = auc(oracle.reindex(ids).to_numpy(float), y)
        figures["oracle_auc"] = o
        figures["captured_lift"] = (written - 0.5) / (o - 0.5)
    if fresh is not None:  # a new draw of the generator: no row of it was seen in training
        f_acc, f_opps, f_oracle = fresh
        f_out = collect_outcomes(f_acc, f_opps, now, s.lookback_days, s.unit, s.emerging_days)
        rows_f = f_out.rows["account"].to_numpy(np.int64)
        y_f = f_out.rows["won"].to_numpy(bool)
        f_scores = score_accounts(build_features(f_acc, f_opps), icp)["score"].to_numpy(float)
        ids = f_acc["account_id"].to_numpy()[rows_f]
        o = auc(f_oracle.reindex(ids).to_numpy(float), y_f)
        w = auc(f_scores[rows_f], y_f)
        figures |= {
            "fresh_written_auc": w,
            "fresh_oracle_auc": o,
            "fresh_captured_lift": (w - 0.5) / (o - 0.5),
            "fresh_n": int(y_f.size),
        }
    return figures


def show(f: dict[str, Any]) -> None:
    print(f"\n== {f['set']}")
    if "refused" in f:
        print(f"   refused: {f['refused']}")
        return

    def n(v: Any, d: int = 3) -> str:
        return "-" if v is None else f"{v:.{d}f}"

    print(
        f"   signal {f['signal']}; holdout {f['holdout_n']} outcomes (train says "
        f"{f['holdout_n_reported']}); AUC reported {n(f['reported_auc'])}, backtest criteria "
        f"as sync scores them {n(f['backtest_auc'])}, model {n(f['model_auc'])}; lift kept "
        f"{n(f['lift_kept'], 3)}"
    )
    if f["refit"]:
        print(
            f"   written criteria (refit on every outcome, so the holdout is in-sample): "
            f"holdout AUC {n(f['written_auc'])}; lift kept against its own model on every "
            f"outcome {n(f['written_lift_kept'], 3)}"
        )
    if "oracle_auc" in f:
        print(
            f"   oracle AUC {n(f['oracle_auc'])}; captured lift (written vs oracle) "
            f"{n(f['captured_lift'], 3)}"
        )
    if "fresh_n" in f:
        print(
            f"   fresh draw ({f['fresh_n']} outcomes never trained on): written AUC "
            f"{n(f['fresh_written_auc'])}, oracle {n(f['fresh_oracle_auc'])}, captured lift "
            f"{n(f['fresh_captured_lift'], 3)}"
        )
    print(
        f"   scores at 0: {f['at_0']:.1%}, at 100: {f['at_100']:.1%}; "
        f"{f['distinct_scores']} distinct scores on the holdout"
    )
    for t in f["tiers"]:
        rate = "-" if t["win_rate"] is None else f"{t['win_rate']:.1%}"
        acv = "-" if t["acv"] is None else f"{t['acv']:,.0f}"
        print(
            f"   tier {t['tier']} (from {t['from']:g}): {t['share']:.1%} of holdout "
            f"({t['closed']}), win rate {rate}, ACV {acv}"
        )
    for r in f["reasons"]:
        print(f"   reason {r}")
    gate = f.get("activated_gate")
    if gate:
        print(
            f"   gate vs the bundled ICP: new {n(gate['auc_new'])} vs in use "
            f"{n(gate['auc_active'])}: {'worse' if gate['worse'] else 'not worse'}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("data", type=Path)
    parser.add_argument("--only", default="olist,maven,ravenstack,planted")
    parser.add_argument("--seeds", default="11,12,13")
    parser.add_argument("--accounts", type=int, default=4000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    only = set(args.only.split(","))
    results: list[dict[str, Any]] = []

    def done(figures: dict[str, Any]) -> None:
        results.append(figures)
        show(figures)
        sys.stdout.flush()

    if "olist" in only:
        ds = ld.olist(args.data)
        done(judge_written("olist", ds.accounts, ds.opportunities, ds.field_types, ds.now))
    if "maven" in only:
        ds = ld.maven(args.data)
        done(
            judge_written(
                "maven (per deal)",
                ds.accounts,
                ds.opportunities,
                ds.field_types,
                ds.now,
                unit="deal",
            )
        )
    if "ravenstack" in only:
        ds = ld.ravenstack(args.data)
        done(judge_written("ravenstack", ds.accounts, ds.opportunities, ds.field_types, ds.now))
    if "planted" in only:
        sys.path.append(str(ROOT))
        from tests import planted as pl

        for seed in (int(s) for s in args.seeds.split(",")):
            accounts, opps, oracle = pl.planted_crm(args.accounts, seed=seed)
            f_acc, f_opps, f_oracle = pl.planted_crm(args.accounts, seed=seed + 1000)
            done(
                judge_written(
                    f"planted seed {seed}",
                    accounts,
                    opps,
                    pl.FIELD_TYPES,
                    pl.NOW,
                    oracle=oracle["p_win"],
                    fresh=(f_acc, f_opps, f_oracle["p_win"]),
                    lookback_days=730,
                )
            )
    if args.json:
        print(json.dumps(results, default=str))


if __name__ == "__main__":
    main()
