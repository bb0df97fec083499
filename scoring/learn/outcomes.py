"""Closed opportunities -> the outcomes `icp train` learns from.

The rule (documented in the learned file's header):

- A deal is **expansion** when its type says so (Expansion, Existing Business, Upsell,
  Cross-sell, Renewal) or, when training per account, when it was opened after the
  account's first won new-business deal (the account was already a customer). Expansion
  deals never count as new-business wins or losses.
- Per account (the default unit), an account is **won** when it has a won new-business
  deal that closed within the look-back window, and **lost** when its new-business deals
  closed in the window were all lost. Its outcome date is the close of the deciding deal:
  the first win, or the last loss. Accounts that were customers before the window have
  only expansion deals in it, so they are not new-business outcomes at all.
- Per deal (for repeat-purchase businesses where every account buys many times), each
  closed new-business deal in the window is one outcome, carrying its account's traits.
- **Expansion outcome**: customers whose first win closed at least `tenure_days` before
  `now`; expanded when a won expansion deal closed in the window after that first win.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import numpy as np
import pandas as pd

EXPANSION_TYPES = ("expansion", "existing", "upsell", "up-sell", "cross-sell", "renewal", "upgrade")
_DAY_NS = 86_400 * 10**9
NEVER = np.iinfo(np.int64).max


@dataclass
class Outcomes:
    """What happened, in the shape the learner needs.

    Attributes:
        rows: one row per outcome: `account` (row position in the accounts frame),
            `won`, `date` (UTC), `amount` (won value), `cycle_days`.
        losses: lost new-business deals in the window: `account`, `reason`.
        customers: per customer: `account`, `expanded`, `since`; None when no deal is
            expansion.
        deals: closed new-business deals in the window (for counts).
    """

    rows: pd.DataFrame
    losses: pd.DataFrame
    customers: pd.DataFrame | None
    deals: int


def _ns(series: pd.Series) -> np.ndarray:
    """UTC nanoseconds since the epoch; null as the largest int64 (never in a window)."""
    if not pd.api.types.is_datetime64_any_dtype(series):
        series = pd.to_datetime(series, utc=True, errors="coerce", format="mixed")
    elif series.dt.tz is not None:
        series = series.dt.tz_convert("UTC").dt.tz_localize(None)
    values = series.dt.as_unit("ns").to_numpy("datetime64[ns]")
    return np.where(np.isnat(values), NEVER, values.view("int64"))


def _flag(opps: pd.DataFrame, column: str) -> np.ndarray:
    if column not in opps:
        return np.zeros(len(opps), dtype=bool)
    return np.asarray(opps[column].astype("boolean").fillna(False), dtype=bool)


def is_expansion_type(types: pd.Series) -> np.ndarray:
    """True where a deal's type names an existing-customer deal."""
    codes, uniques = pd.factorize(types.astype(object))
    flags = [any(t in str(v).strip().casefold() for t in EXPANSION_TYPES) for v in uniques]
    return np.append(np.array(flags, dtype=bool), False)[codes]


def collect_outcomes(
    accounts: pd.DataFrame,
    opportunities: pd.DataFrame,
    now: datetime,
    lookback_days: int,
    unit: str = "account",
    tenure_days: int = 90,
) -> Outcomes:
    """Outcomes per account (or per deal) from canonical frames; see the module rule."""
    now_ts = pd.Timestamp(now)
    now_ts = now_ts.tz_localize("UTC") if now_ts.tzinfo is None else now_ts.tz_convert("UTC")
    start = now_ts - pd.Timedelta(days=lookback_days)
    index = pd.Index(accounts["account_id"].astype(str))
    opps = opportunities
    position = index.get_indexer(pd.Index(opps["account_id"].astype(str)))
    keep = position >= 0
    opps = opps.loc[keep]
    account = position[keep].astype(np.int64)
    if "closed_at" not in opps:  # nothing closed can be dated: no outcome at all
        opps = opps.assign(
            closed_at=pd.Series(pd.NaT, index=opps.index, dtype="datetime64[ns, UTC]")
        )
    closed_ns = _ns(opps["closed_at"])
    created_ns = _ns(opps["created_at"]) if "created_at" in opps else closed_ns.copy()
    created_ns = np.where(created_ns == NEVER, closed_ns, created_ns)
    won = _flag(opps, "is_won")
    closed = (_flag(opps, "is_closed") | won) & (closed_ns != NEVER)
    typed = is_expansion_type(opps["type"]) if "type" in opps else np.zeros(len(opps), bool)
    amount = (
        pd.to_numeric(opps["amount"], errors="coerce").to_numpy(float)
        if "amount" in opps
        else np.full(len(opps), np.nan)
    )
    nb_win = closed & won & ~typed & (closed_ns <= now_ts.value)
    first_win = np.full(len(accounts), NEVER)
    np.minimum.at(first_win, account[nb_win], closed_ns[nb_win])
    already = created_ns > first_win[account] if unit == "account" else np.zeros(len(opps), bool)
    expansion = typed | already
    in_window = closed & (closed_ns > start.value) & (closed_ns <= now_ts.value)
    nb = in_window & ~expansion
    cycle = np.maximum(0.0, (closed_ns - created_ns) / _DAY_NS)
    deals = pd.DataFrame(
        {
            "account": account[nb],
            "won": won[nb],
            "closed": closed_ns[nb],
            "amount": np.where(won[nb], amount[nb], np.nan),
            "cycle_days": cycle[nb],
        }
    )
    if unit == "account":
        order_key = np.where(deals["won"], deals["closed"], -deals["closed"])
        deals = deals.assign(_lost=~deals["won"], _key=order_key)
        deciding = deals.sort_values(["account", "_lost", "_key"], kind="stable")
        deciding = deciding.drop_duplicates("account", keep="first")
        won_amount = deals.loc[deals["won"]].groupby("account")["amount"].mean()
        rows = deciding.drop(columns=["_lost", "_key"]).reset_index(drop=True)
        rows["amount"] = rows["account"].map(won_amount).where(rows["won"])
    else:
        rows = deals.sort_values(["closed", "account"], kind="stable").reset_index(drop=True)
    rows["date"] = pd.to_datetime(rows["closed"], utc=True)
    rows = rows.sort_values(["closed", "account"], kind="stable").reset_index(drop=True)
    lost = nb & ~won
    reasons = (
        opps["loss_reason"].astype(object).to_numpy()[lost]
        if "loss_reason" in opps
        else np.full(int(lost.sum()), None, dtype=object)
    )
    losses = pd.DataFrame({"account": account[lost], "reason": reasons})
    customers = None
    if expansion.any():
        tenure = now_ts.value - tenure_days * _DAY_NS
        is_customer = first_win <= tenure
        exp_win = in_window & expansion & won & (closed_ns > first_win[account])
        expanded = np.zeros(len(accounts), dtype=bool)
        expanded[account[exp_win]] = True
        ids = np.flatnonzero(is_customer)
        customers = pd.DataFrame(
            {
                "account": ids,
                "expanded": expanded[ids],
                "since": pd.to_datetime(first_win[ids], utc=True),
            }
        )
    return Outcomes(rows=rows, losses=losses, customers=customers, deals=int(nb.sum()))
