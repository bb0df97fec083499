"""Section 3 of `bench/bench_learn.py`, ravenstack: churn, loss reasons and expansion."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import learn_data as ld
from learn_rules import rule_text
from learn_runs import rate_table, run, train_figures, unchanged
from learn_tables import ci, heading, notes, num, pct, show


def bench_ravenstack(data: Path) -> dict[str, Any]:
    heading("3. ravenstack: churn, loss reasons and expansion")
    ds = ld.ravenstack(data)
    notes(ds.rules)
    result, refusal, seconds = run(ds)
    fig = train_figures(result, refusal, seconds)
    figures: dict[str, Any] = {"facts": ds.facts, "retention": fig}
    frame = ds.accounts.copy()
    frame["retained"] = ~frame["account_id"].isin(
        ds.opportunities.loc[~ds.opportunities["is_won"].astype(bool), "account_id"]
    )
    raw = {k: rate_table(frame, k, "retained") for k in ("industry", "referral_source")}
    figures["retention_by"] = raw
    show(
        "ravenstack: raw retention (won) rate by industry and referral source",
        ["field", "value", "accounts", "retained", "rate [95% CI]"],
        [
            [k, r["value"], r["n"], r["won"], f"{pct(r['rate'])} {ci(r['ci'])}"]
            for k, rows in raw.items()
            for r in rows
        ],
    )
    if result is None:
        notes([f"refused: {refusal}"])
        return figures
    dropped = result.criteria["learned"]["dropped_reasons"]
    exp = result.expansion or {}
    figures |= {
        "criteria_unchanged": unchanged(result),
        "segments": [
            {
                "rule": rule_text(s, 200),
                "support": s["support"],
                "win_rate": s["win_rate"],
                "ci": s["win_rate_ci"],
            }
            for s in result.segments
        ],
        "anti_patterns": [
            {"rule": rule_text(a, 200), "win_rate": a.get("win_rate"), "reason": a.get("reason")}
            for a in result.anti_patterns
        ],
        "loss_patterns": [
            {
                "reason": p["reason"],
                "rule": rule_text(p, 200),
                "share_in_segment": p["share_in_segment"],
                "share_overall": p["share_overall"],
            }
            for p in result.loss_patterns
        ],
        "expansion": exp,
        "dropped_reasons": {
            k: v for k, v in dropped.items() if k in frame and ds.accounts[k].notna().any()
        },
    }
    reasons = ds.opportunities["loss_reason"].dropna().value_counts()
    show(
        "ravenstack: what the engine reports",
        ["outcome", "figures", "engine finding"],
        [
            [
                "retention (won = customer, lost = churned)",
                f"{fig['n_won']} / {fig['n_lost']} accounts; holdout {fig['holdout_n_won']} / "
                f"{fig['holdout_n_lost']}, AUC {num(fig['holdout_auc'])} "
                f"{ci(fig['holdout_auc_ci'])}",
                f"signal {result.signal}; criteria unchanged: {figures['criteria_unchanged']}; "
                f"features used: {', '.join(result.features_used) or 'none'}",
            ],
            [
                "segments / anti-patterns",
                f"{len(result.segments)} / {len(result.anti_patterns)}",
                "; ".join(rule_text(s, 40) for s in result.segments + result.anti_patterns)
                or "none claimed (support 30, Wilson CI must exclude the overall rate, BH 5%)",
            ],
            [
                "loss patterns (churn reason_code)",
                ", ".join(f"{k} {v}" for k, v in reasons.items()),
                "; ".join(
                    f"{p['reason']}: {rule_text(p, 40)} ({pct(p['share_in_segment'])} vs "
                    f"{pct(p['share_overall'])})"
                    for p in result.loss_patterns
                )
                or "no reason over-represented in any group",
            ],
            [
                "expansion (upgrade subscriptions)",
                f"{exp.get('n_expanded')} of {exp.get('n_customers')} customers expanded"
                + (
                    f"; CV AUC {num(exp.get('auc'))} {ci(exp.get('auc_ci'))}"
                    if exp.get("auc")
                    else ""
                ),
                "; ".join(f"{c['name']} ({c['weight']})" for c in exp.get("criteria", []))
                or exp.get("note", "-"),
            ],
        ],
    )
    notes(
        [
            "screening (alpha 0.01, Bonferroni over the candidate fields): "
            + "; ".join(f"{k}: {v}" for k, v in figures["dropped_reasons"].items()),
            f"data caveat: {ds.facts['churn_events']} churn events on "
            f"{ds.facts['accounts_with_churn_events']} accounts, but churn_flag marks "
            f"{ds.facts['churned']}; only {ds.facts['churn_events_of_flagged_accounts']} events "
            f"belong to flagged accounts and {ds.facts['flagged_without_churn_event']} flagged "
            "accounts have none (no loss reason)",
            "does not fit the engine: churn is not a new-business loss (mapped here as one, "
            "dated at signup), time to churn, downgrades, reactivations, MRR changes, usage "
            "and support tickets have no outcome or feature in `train`",
        ]
    )
    return figures
