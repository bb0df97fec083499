"""Outcome figures by tier: what a sales leader checks first.

Win rate, average deal size and median sales cycle per tier show whether the ICP
separates good accounts from poor ones: the top tier should win more, buy bigger and
close faster.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def tier_summary(
    scored: pd.DataFrame, opportunities: pd.DataFrame, tier_order: list[str]
) -> pd.DataFrame:
    """One row per tier: accounts, share, closed deals, win rate, avg won deal, median cycle.

    Args:
        scored: `account_id` and `tier` per account.
        opportunities: canonical opportunities (is_closed, is_won, amount, created_at,
            closed_at) of those accounts.
        tier_order: tiers from best to worst, as rows of the result.
    """
    tiers = scored[["account_id", "tier"]].astype({"account_id": str})
    opps = opportunities.assign(account_id=opportunities["account_id"].astype(str))
    opps = opps.merge(tiers, on="account_id", how="inner")
    closed = opps.loc[opps["is_closed"].fillna(False).astype(bool)]
    won = closed.loc[closed["is_won"].fillna(False).astype(bool)]
    cycle = (won["closed_at"] - won["created_at"]).dt.total_seconds() / 86400.0
    won = won.assign(cycle_days=cycle.clip(lower=0))
    rows = []
    total = max(len(tiers), 1)
    for tier in tier_order:
        accounts = int((tiers["tier"] == tier).sum())
        tier_closed = closed.loc[closed["tier"] == tier]
        tier_won = won.loc[won["tier"] == tier]
        rows.append(
            {
                "tier": tier,
                "accounts": accounts,
                "share": accounts / total,
                "closed_deals": len(tier_closed),
                "won_deals": len(tier_won),
                "win_rate": len(tier_won) / len(tier_closed) if len(tier_closed) else np.nan,
                "avg_deal_size": float(tier_won["amount"].mean()) if len(tier_won) else np.nan,
                "median_cycle_days": float(tier_won["cycle_days"].median())
                if len(tier_won)
                else np.nan,
            }
        )
    return pd.DataFrame(rows)
