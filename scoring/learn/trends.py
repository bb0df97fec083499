"""Patterns over time and reasons: segments that take far longer to close, segments
rising in the share of recent wins, and loss reasons over-represented in a group.

All use the same candidates as `scoring.segments` (single traits and pairs, counted by
matrix products) and the same discipline: Benjamini-Hochberg over every candidate
tested, minimum counts, and deduplication of overlapping rules.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from icp_engine.scoring.learn.segments import (
    FDR,
    MAX_REPORTED,
    Candidates,
    Trait,
    _entry,
    _select,
    candidates,
)
from icp_engine.scoring.learn.stats import (
    benjamini_hochberg,
    binomial_tail,
    normal_isf,
    normal_sf,
    two_proportion_z,
)


def long_cycles(
    traits: list[Trait],
    matrix: np.ndarray,
    y: np.ndarray,
    amount: np.ndarray,
    cycle: np.ndarray,
    min_support: int,
) -> list[dict[str, Any]]:
    """Segments whose won deals take far longer (median 1.5x or more, BH-significant).

    Compared on log cycle days; a two-trait rule must also be slower than each of its
    halves without it (Bonferroni), so "big companies using Jira" is not claimed only
    because big companies are slow.
    """
    won = y & np.isfinite(cycle) & (cycle > 0)
    if won.sum() < 2 * min_support or not traits:
        return []
    log_cycle = np.where(won, np.log(np.where(won, cycle, 1.0)), 0.0)
    cands, _ = candidates(traits, matrix, y, min_support)
    m = matrix.astype(np.float32)
    counts, sums = _per_candidate(cands, m, won), _per_candidate(cands, m, log_cycle)
    mean = sums / np.maximum(counts, 1)
    mu, sd = log_cycle[won].mean(), log_cycle[won].std() or 1.0
    z = (mean - mu) / (sd / np.sqrt(np.maximum(counts, 1)))
    eligible = counts >= 10
    pairs = np.flatnonzero(cands.j >= 0)
    crit = normal_isf(0.05 / max(pairs.size, 1))
    k = len(traits)
    for parent in (cands.i[pairs], cands.j[pairs]):
        rest_n = counts[:k][parent] - counts[pairs]
        rest_mean = (sums[:k][parent] - sums[pairs]) / np.maximum(rest_n, 1)
        spread = sd * np.sqrt(1 / np.maximum(counts[pairs], 1) + 1 / np.maximum(rest_n, 1))
        eligible[pairs] &= (rest_n > 0) & ((mean[pairs] - rest_mean) / spread > crit)
    q = np.ones_like(z)
    q[eligible] = benjamini_hochberg(normal_sf(z[eligible]))
    claim = np.flatnonzero(eligible & (q < FDR) & (mean - mu > np.log(1.5)))
    order = claim[np.lexsort((claim, -z[claim]))]
    p0 = float(y.mean())
    acv0 = float(np.nanmean(amount[y])) if np.isfinite(amount[y]).any() else 0.0
    overall = float(np.median(cycle[won]))
    out = []
    for k in _select(order, cands, matrix, MAX_REPORTED, containment=0.8):
        entry = _entry(k, cands, traits, matrix, y, amount, cycle, p0, acv0, float(q[k]))
        entry["reason"] = (
            f"won deals take {entry['cycle_days']:.0f} days (median) vs {overall:.0f} overall"
        )
        out.append(entry)
    return out


def emerging(
    traits: list[Trait],
    matrix: np.ndarray,
    y: np.ndarray,
    amount: np.ndarray,
    cycle: np.ndarray,
    recent: np.ndarray,
    min_support: int,
) -> list[dict[str, Any]]:
    """Segments whose share of recent wins rose significantly against the period before.

    Sequential covering: the strongest rise is claimed, its accounts are set aside, and
    the test is repeated on the rest, so a trait does not look "emerging" only because
    an emerging segment's accounts happen to carry it.
    """
    now_all, before_all = y & recent, y & ~recent
    if now_all.sum() < 5 or before_all.sum() < 5 or not traits:
        return []
    cands, _ = candidates(traits, matrix, y, 1)
    m = matrix.astype(np.float32)
    p0 = float(y.mean())
    acv0 = float(np.nanmean(amount[y])) if np.isfinite(amount[y]).any() else 0.0
    revenue = np.where(now_all, np.nan_to_num(amount), 0.0)
    covered = np.zeros(y.size, dtype=bool)
    out: list[dict[str, Any]] = []
    while len(out) < MAX_REPORTED:
        now_won, before_won = now_all & ~covered, before_all & ~covered
        total_now, total_before = int(now_won.sum()), int(before_won.sum())
        if total_now < 5 or total_before < 5:
            break
        k_now = _per_candidate(cands, m, now_won)
        k_before = _per_candidate(cands, m, before_won)
        share_now, share_before = k_now / total_now, k_before / total_before
        eligible = (k_now >= 5) & (cands.support >= min(min_support, 10))
        # Given a segment's wins, how many fall in the recent period is binomial with
        # the recent share of all wins: an exact one-sided test, right for small counts.
        p = binomial_tail(k_now, k_now + k_before, total_now / (total_now + total_before))
        z = -np.log(np.maximum(p, 1e-300))
        q = np.ones_like(z)
        q[eligible] = benjamini_hochberg(p[eligible])
        claim = np.flatnonzero(eligible & (q < FDR) & (share_now >= 1.5 * share_before))
        if claim.size == 0:
            break
        k = int(claim[np.lexsort((claim, -z[claim]))][0])
        mask = cands.mask(k, matrix)
        covered |= mask
        entry = _entry(k, cands, traits, matrix, y, amount, cycle, p0, acv0, float(q[k]))
        recent_wins, before_wins = int((mask & now_all).sum()), int((mask & before_all).sum())
        out.append(
            entry
            | {
                "recent_wins": recent_wins,
                "before_wins": before_wins,
                "recent_share": recent_wins / int(now_all.sum()),
                "before_share": before_wins / int(before_all.sum()),
                "share_of_revenue": float(revenue[mask].sum() / (revenue.sum() or 1.0)),
            }
        )
    return out


def _per_candidate(cands: Candidates, matrix: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Sum of `values` (or count of True) over each candidate's rows."""
    m = matrix if matrix.dtype == np.float32 else matrix.astype(np.float32)
    pairs = m.T @ (m * values[:, None].astype(np.float32))
    return cands.pair_values(pairs, np.diag(pairs))


def loss_patterns(
    rules: list[tuple[str, str, list[dict[str, Any]]]],
    account_mask: Callable[[list[dict[str, Any]]], np.ndarray],
    figures: Callable[[list[dict[str, Any]]], dict[str, Any]],
    losses: pd.DataFrame,
    min_support: int,
) -> list[dict[str, Any]]:
    """Loss reasons over-represented in a group of accounts, against all losses.

    Args:
        rules: (name, rule text, conditions) of the groups to test: single traits and
            the claimed segments and anti-patterns.
        account_mask: conditions -> boolean array over every account.
        figures: conditions -> the group's figures (support, win rate, ...).
        losses: lost new-business deals: `account` (row in the accounts) and `reason`.
        min_support: lost deals with a reason a group needs before it is tested.
    """
    reason = losses["reason"].astype(object)
    known = losses.loc[reason.notna() & (reason.astype(str).str.strip() != "")]
    if len(known) < 2 * min_support or not rules:
        return []
    reason_codes, reasons = pd.factorize(known["reason"].astype(str).str.strip(), sort=True)
    accounts = known["account"].to_numpy(np.int64)
    member = np.column_stack([account_mask(when)[accounts] for _, _, when in rules])
    onehot = np.eye(len(reasons), dtype=np.float32)[reason_codes]
    counts = member.astype(np.float32).T @ onehot
    in_total = member.sum(axis=0).astype(float)[:, None]
    all_counts = onehot.sum(axis=0)[None, :]
    total = float(len(known))
    z = two_proportion_z(
        counts, np.broadcast_to(in_total, counts.shape), all_counts - counts, total - in_total
    )
    eligible = (in_total >= min_support) & (counts >= 5) & (total - in_total >= min_support)
    q = np.ones_like(z)
    q[eligible] = benjamini_hochberg(normal_sf(z[eligible]))
    share_in = counts / np.maximum(in_total, 1)
    share_all = all_counts / total
    gi, ri = np.nonzero(eligible & (q < FDR) & (share_in >= 1.5 * share_all))
    order = np.lexsort((ri, gi, -z[gi, ri]))
    out: list[dict[str, Any]] = []
    used: list[tuple[int, np.ndarray]] = []
    for k in order:
        g, r = int(gi[k]), int(ri[k])
        mask = member[:, g]
        if any(r == ur and (mask & um).sum() > 0.5 * min(mask.sum(), um.sum()) for ur, um in used):
            continue
        used.append((r, mask))
        name, rule, when = rules[g]
        out.append(
            {
                "name": f"{reasons[r]} losses: {name}"[:80],
                "rule": rule,
                "when": when,
                **figures(when),
                "reason": str(reasons[r]),
                "lost_deals": int(in_total[g, 0]),
                "count": int(counts[g, r]),
                "share_in_segment": float(share_in[g, r]),
                "share_overall": float(share_all[0, r]),
                "p_value": float(q[g, r]),
            }
        )
        if len(out) == MAX_REPORTED:
            break
    return out
