"""Section 2 of `bench/bench_learn.py`, olist-funnel: the lead-origin effect."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import learn_data as ld
import numpy as np
import pandas as pd
from icp_engine.scoring.criteria import score_accounts
from icp_engine.scoring.features import build_features
from icp_engine.scoring.schema import IcpCriteria
from learn_rules import (
    conditions,
    criteria_rules,
    points_text,
    reported_rules,
    rule_text,
    uses,
)
from learn_runs import rate_table, run, train_figures
from learn_tables import ci, heading, notes, num, pct, show

OLIST_HORIZONS = (ld.OLIST_HORIZON_DAYS, 60, 180)


def bench_olist(data: Path) -> dict[str, Any]:
    heading("2. olist-funnel: the lead-origin effect")
    main_h = OLIST_HORIZONS[0]
    ds = ld.olist(data, horizon_days=main_h)
    notes(ds.rules)
    result, refusal, seconds = run(ds)
    figures: dict[str, Any] = {
        "facts": ds.facts,
        "horizon_days": main_h,
        "train": train_figures(result, refusal, seconds),
    }
    frame = ds.accounts[["account_id", "origin"]].copy()
    frame["won"] = ds.opportunities["is_won"].astype(bool).to_numpy()
    by_origin = rate_table(frame, "origin", "won")
    if result is None:
        notes([f"refused: {refusal}"])
        figures["pass"] = False
        return figures
    features = build_features(ds.accounts, ds.opportunities)
    scores = score_accounts(features, IcpCriteria.model_validate(result.criteria))["score"]
    mean_score = scores.groupby(frame["origin"].fillna("(missing)").to_numpy()).mean()
    origin_rules = [
        (w, r) for w, r in criteria_rules(result.criteria) if w != "segment" and uses(r, "origin")
    ]
    origin_found = [(w, r) for w, r in reported_rules(result) if uses(r, "origin")]
    claimed: dict[str, list[str]] = {}
    for where, entry in origin_found:
        for c in conditions(entry):
            if c.get("field") == "origin" and ("eq" in c or "in" in c):
                for v in c["in"] if "in" in c else [c["eq"]]:
                    claimed.setdefault(str(v), []).append(where)
            if c.get("field") == "origin" and c.get("is_null"):
                claimed.setdefault("(missing)", []).append(where)
    for row in by_origin:
        row["mean_learned_score"] = float(mean_score.get(row["value"], np.nan))
        row["claimed_in"] = sorted(set(claimed.get(row["value"], [])))
    show(
        "olist: win rate by origin (all 8,000 leads) and the learned criteria's mean score",
        ["origin", "leads", "won", "win rate", "Wilson 95% CI", "mean learned score", "claimed as"],
        [
            [
                r["value"],
                f"{r['n']:,}",
                r["won"],
                pct(r["rate"]),
                ci(r["ci"]),
                num(r["mean_learned_score"], ".1f"),
                ", ".join(r["claimed_in"]) or "-",
            ]
            for r in by_origin
        ],
    )
    order = [r["mean_learned_score"] for r in by_origin]
    rho = float(pd.Series(order).corr(pd.Series([r["rate"] for r in by_origin]), method="spearman"))
    show(
        "olist: learned criteria, segments and patterns on origin",
        ["where", "rule", "points", "support", "win rate [95% CI]"],
        [[f"criteria: {w}", rule_text(r, 70), points_text(r), "", ""] for w, r in origin_rules]
        + [
            [
                f"reported {w}",
                rule_text(e, 70),
                points_text(e) if w == "anti-pattern" else "",
                e.get("support", ""),
                f"{pct(e.get('win_rate'))} {ci(e.get('win_rate_ci'))}",
            ]
            for w, e in origin_found
        ],
        caption="reported anti-pattern points: how far below the average the learned "
        "criteria already score the group (or the penalty / cap written for it)",
    )
    sens = []
    for horizon in OLIST_HORIZONS:
        if horizon == main_h:
            r2, fig2 = result, figures["train"]
        else:
            r2, refusal2, sec2 = run(ld.olist(data, horizon_days=horizon))
            fig2 = train_figures(r2, refusal2, sec2)
        on_origin = r2 is not None and any(
            uses(r, "origin") for _, r in criteria_rules(r2.criteria)
        )
        sens.append(
            {
                "horizon_days": horizon,
                **{
                    k: fig2.get(k)
                    for k in (
                        "signal",
                        "holdout_auc",
                        "holdout_auc_ci",
                        "holdout_n_won",
                        "holdout_n_lost",
                        "features_used",
                    )
                },
                "origin_in_criteria": on_origin,
            }
        )
    show(
        "olist: sensitivity to the loss-dating horizon (lost closed_at = first contact + H)",
        [
            "H days",
            "holdout w / l",
            "holdout AUC [95% CI]",
            "signal",
            "origin in criteria",
            "features used",
        ],
        [
            [
                s["horizon_days"],
                f"{s['holdout_n_won']} / {s['holdout_n_lost']}",
                f"{num(s['holdout_auc'])} {ci(s['holdout_auc_ci'])}",
                s["signal"],
                "yes" if s["origin_in_criteria"] else "NO",
                ", ".join(s["features_used"] or []),
            ]
            for s in sens
        ],
    )
    leak_ds = ld.olist(data, horizon_days=main_h, leak=True)
    leak, _, leak_s = run(leak_ds)
    dropped = leak.criteria["learned"]["dropped_reasons"] if leak else {}
    leak_rows = [
        {
            "field": f,
            "used": leak is not None and f in leak.features_used,
            "reason": dropped.get(f, ""),
        }
        for f in ld.OLIST_WON_ONLY
    ]
    figures |= {
        "win_rate_by_origin": by_origin,
        "origin_rules": [
            {"where": w, "rule": rule_text(r, 200), "points": points_text(r)}
            for w, r in origin_rules
        ],
        "origin_patterns": [
            {
                "where": w,
                "rule": rule_text(e, 200),
                "support": e.get("support"),
                "win_rate": e.get("win_rate"),
                "win_rate_ci": e.get("win_rate_ci"),
            }
            for w, e in origin_found
        ],
        "spearman_rate_vs_score": rho,
        "horizon_sensitivity": sens,
        "leak_control": {"rows": leak_rows, "seconds": leak_s},
    }
    ok = bool(result.signal and origin_rules and "origin" in result.features_used)
    figures["pass"] = ok
    best, worst = max(by_origin, key=lambda r: r["rate"]), min(by_origin, key=lambda r: r["rate"])
    notes(
        [
            f"win rate by origin spans {pct(worst['rate'])} ({worst['value']}) to "
            f"{pct(best['rate'])} ({best['value']}); Spearman(win rate, mean learned score) "
            f"over origins = {rho:.2f}",
            "leak control (won-only firmographics mapped as traits): "
            + "; ".join(
                f"{r['field']}: {'USED' if r['used'] else 'dropped'}"
                + (f" ({r['reason'].split(':')[0]})" if r["reason"] else "")
                for r in leak_rows
            ),
            f"verdict: {'PASS' if ok else 'FAIL'}: signal {result.signal}, origin in the "
            f"learned criteria: {'yes' if origin_rules else 'no'}",
        ]
    )
    return figures
