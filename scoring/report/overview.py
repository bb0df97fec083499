"""The top of the ICP report: the verdict, results by tier, and the criteria with weights."""

from __future__ import annotations

from typing import Any

import pandas as pd
from icp_engine.scoring.report import html as h
from icp_engine.scoring.report.charts import bar_chart
from icp_engine.scoring.schema import GROUPS, IcpCriteria


def verdict_section(
    model: dict[str, Any],
    holdout: dict[str, Any],
    summary: pd.DataFrame,
    everyone: pd.Series,
    accounts: int,
    overall: float | None = None,
) -> str:
    auc, ci = holdout.get("auc"), holdout.get("auc_ci")
    deals = f"{h.num(holdout.get('n_won'), 0)} won and {h.num(holdout.get('n_lost'), 0)} lost"
    rated = summary.dropna(subset=["win_rate"])
    refit = bool(model.get("written"))
    if model.get("signal") and refit:
        headline = "The learned ICP has real lift"
        text = (
            f"In a time-ordered backtest (learned from older closed deals only, then judged "
            f"on the most recent: {deals}), accounts it ranks higher win more: AUC "
            f"{h.num(auc)} (95% CI {h.interval(ci, h.num)}; 0.5 is a coin flip). The criteria "
            "written are the same learner refit on every closed deal."
        )
        css = "verdict"
    elif model.get("signal"):
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
            f" Accounts in Tier {best['tier']} today won {h.pct(best['win_rate'])} of their "
            f"closed outcomes, Tier {worst['tier']} {h.pct(worst['win_rate'])}."
        )
    challenger = model.get("challenger") or {}
    if challenger.get("clearly_better"):
        text += " A black-box challenger scores clearly better (see Model quality); it is "
        text += "reported, never deployed."
    warnings = model["warnings"]
    notes = "".join(
        f'<div class="callout">{h.esc(str(w)[:1].upper() + str(w)[1:])}</div>' for w in warnings
    )
    ratio = "—"
    if len(rated) >= 2 and rated.iloc[-1]["win_rate"] > 0:
        ratio = f"{rated.iloc[0]['win_rate'] / rated.iloc[-1]['win_rate']:.1f}{h.TIMES}"
    top = summary.iloc[0] if len(summary) else None
    behind = model.get("holdout_model") or {}
    beside = f"; model behind it {h.num(behind.get('auc'))}" if behind.get("auc") else ""
    tiles = [
        h.tile(
            "Backtest AUC" if refit else "Holdout AUC",
            h.num(auc),
            f"95% CI {h.interval(ci, h.num)}{beside}",
        ),
        h.tile(
            "Overall win rate",
            h.pct(overall if overall is not None else everyone["win_rate"]),
            str(model.get("overall_note") or ""),
        ),
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
            h.ece_text(holdout.get("ece")),
            f"Brier {h.num(holdout.get('brier'), 3)}",
        ),
    ]
    body = f'<p>{h.esc(text)}</p>{notes}<div class="tiles">{"".join(tiles)}</div>'
    return h.section("verdict", headline, body, css=css)


def tiers_section(
    summary: pd.DataFrame,
    criteria: IcpCriteria,
    colors: dict[str, str],
    overall: float | None,
    holdout_rows: list[Any] | None = None,
    refit: bool = False,
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
    headers = ["Tier", "Score from", "Accounts", "Share", "Closed", "Won"]
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
    lead = "The accounts scored today, by the tier they are in now, and the new-business "
    lead += "outcomes the model learned from: the share won (like every win rate on this page)."
    body = table + h.grid(charts) + holdout_tiers(holdout_rows or [], refit)
    return h.section("tiers", "Results by tier", body, lead)


def holdout_tiers(rows: list[Any], refit: bool = False) -> str:
    """The tiers as `icp train` judged them on the holdout only: the score as sync writes
    it (with `refit`, of the backtest: the learner fitted on the older outcomes)."""
    rows = [r for r in rows if isinstance(r, dict) and r.get("tier") is not None]
    if not rows:
        return ""
    cells = [
        [
            f"<strong>{h.esc(r['tier'])}</strong>",
            h.esc(h.num(r.get("threshold"), 0)),
            h.esc(h.pct(r.get("share"), 1)),
            h.esc(h.num(r.get("closed"), 0)),
            h.esc(h.pct(r.get("win_rate"), 1)),
            h.esc(h.interval(r.get("win_rate_ci"))),
            h.esc(h.money(r.get("acv"))),
            h.esc(h.days(r.get("cycle_days"))),
        ]
        for r in rows
    ]
    headers = ["Tier", "Score from", "Share", "Closed", "Win rate", "95% interval"]
    headers += ["Avg won deal", "Median cycle"]
    note = (
        '<p class="muted">On the holdout only (the most recent outcomes, never used to '
        "learn), with the score exactly as sync writes it: what the figures above promise."
        "</p>"
    )
    if refit:
        note = (
            '<p class="muted">Time-ordered backtest: the learner fitted on the older outcomes '
            "only, scored exactly as sync scores it, judged on the holdout (the most recent "
            "outcomes). The criteria written are the same learner refit on every outcome, "
            "so their score cut-offs differ a little from these.</p>"
        )
    title = "Tiers on the holdout (backtest)" if refit else "Tiers on the holdout"
    return f"<h3>{title}</h3>" + note + h.table(headers, cells, {1, 2, 3, 4, 6, 7})


def criteria_section(criteria: IcpCriteria) -> str:
    items = criteria.all_criteria()
    total = sum(c.weight for _, _, c in items) or 1.0
    penalties = [a.penalty or 0.0 for a in criteria.anti_patterns]
    most = max([100.0 * c.weight / total for _, _, c in items] + penalties + [1.0])
    rows: list[list[str]] = []
    for group in GROUPS:
        members = [c for g, _, c in items if g == group]
        if members:
            rows.append([f'<span class="group">{h.esc(h.GROUP_LABELS[group])}</span>', "", ""])
        for c in members:
            rule = " and ".join(x.describe() for x in c.conditions())
            rule = "" if rule.casefold() == c.name.casefold() else rule  # said once
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
        rule = "" if rule.casefold() == a.name.casefold() else rule
        cap = f"{' · ' if rule else ''}never above Tier {a.cap_tier}" if a.cap_tier else ""
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
