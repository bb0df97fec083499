"""Rule-shaped groups of accounts that win significantly more, or less, than overall.

Subgroup discovery over the binned traits: every trait (a bin, a range of adjacent bins,
a value, "has X") and every conjunction of two traits on different fields is a
candidate. Counts for all candidates come from a few matrix products over a boolean
trait matrix, so tens of thousands of candidates cost well under a second.

Claims are honest: a segment needs `min_support` accounts, a Wilson 95% interval that
excludes the overall win rate, and a Benjamini-Hochberg q-value below 5% over every
candidate tested. A two-trait rule must also beat each of its halves on its own
(Bonferroni over the rules checked), so "SaaS and Slack users" is not claimed only
because SaaS wins. Overlapping rules are deduplicated, keeping the strongest. Names are
built from the traits with a seller's vocabulary (`scoring.vocabulary`). Rising
segments, slow segments and loss reasons use the same candidates: `scoring.learn_trends`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
from icp_engine.scoring import vocabulary
from icp_engine.scoring.learn.features import HAS, NUMBER, Feature, describe
from icp_engine.scoring.learn.stats import (
    benjamini_hochberg,
    binomial_z,
    normal_isf,
    normal_sf,
    two_proportion_z,
    wilson,
)

MAX_REPORTED = 12
FDR = 0.05


@dataclass(frozen=True)
class Trait:
    """One condition a segment can use: some levels of one feature."""

    feature: int
    field: str
    levels: tuple[int, ...]
    conditions: tuple[dict[str, Any], ...]
    label: str
    """The trait in field labels: `Employees 50-499`."""
    short: str
    """The trait as a segment name on its own: `Mid-market companies`."""


def build_traits(
    features: list[Feature], rows: np.ndarray, min_support: int
) -> tuple[list[Trait], np.ndarray]:
    """Traits with enough support among `rows`, and their boolean matrix over `rows`."""
    traits: list[Trait] = []
    columns: list[np.ndarray] = []
    n = len(rows)
    for index, feature in enumerate(features):
        codes = feature.codes[rows]
        counts = np.bincount(codes, minlength=feature.n_levels)
        for levels in _level_sets(feature):
            support = int(counts[list(levels)].sum())
            conditions = feature.conditions(levels)
            if conditions is None or support < min_support or support > n - min_support:
                continue
            label = feature.label(levels)
            traits.append(
                Trait(
                    index,
                    feature.field,
                    levels,
                    tuple(conditions),
                    label,
                    vocabulary.segment_name(conditions),
                )
            )
            columns.append(np.isin(codes, levels))
    matrix = np.column_stack(columns) if columns else np.zeros((n, 0), dtype=bool)
    return traits, matrix


def _level_sets(feature: Feature) -> list[tuple[int, ...]]:
    if feature.kind == HAS:
        return [(1,)]
    if feature.kind == NUMBER:
        bins = len(feature.thresholds) + 1
        ranges = [
            tuple(range(a, b + 1)) for a in range(bins) for b in range(a, bins) if b - a < bins - 1
        ]
        return [*ranges, (feature.missing,)] if feature.missing is not None else ranges
    return [(i,) for i in range(feature.n_levels)]


def segment_name(traits: list[Trait]) -> str:
    """`Mid-market Technology/SaaS scale-ups, 3-10 years old`: see `scoring.vocabulary`."""
    return vocabulary.segment_name([c for t in traits for c in t.conditions])


@dataclass
class Candidates:
    """Every single trait and every non-redundant pair, with their counts."""

    i: np.ndarray
    j: np.ndarray  # -1 for a single trait
    support: np.ndarray
    wins: np.ndarray

    def mask(self, k: int, matrix: np.ndarray) -> np.ndarray:
        column = matrix[:, self.i[k]]
        return column & matrix[:, self.j[k]] if self.j[k] >= 0 else column

    def pair_values(self, product: np.ndarray, single: np.ndarray) -> np.ndarray:
        """Values of a trait-by-trait product (or per-trait vector) for each candidate."""
        pairs = self.j >= 0
        out = single[self.i].astype(float)
        out[pairs] = product[self.i[pairs], self.j[pairs]]
        return out


def candidates(
    traits: list[Trait], matrix: np.ndarray, y: np.ndarray, min_support: int
) -> tuple[Candidates, np.ndarray]:
    """All candidates with enough support, and the trait co-occurrence counts."""
    m = matrix.astype(np.float32)
    both = m.T @ m
    wins_both = m.T @ (m * y[:, None].astype(np.float32))
    fields = np.array([t.field for t in traits], dtype=object)
    single = np.diag(both)
    upper = np.triu(np.ones_like(both, dtype=bool), 1)
    redundant = both >= 0.98 * np.minimum(single[:, None], single[None, :])
    ok = upper & (fields[:, None] != fields[None, :]) & (both >= min_support) & ~redundant
    pi, pj = np.nonzero(ok)
    k = len(traits)
    i = np.concatenate([np.arange(k), pi])
    j = np.concatenate([np.full(k, -1), pj])
    support = np.concatenate([single, both[pi, pj]]).astype(float)
    wins = np.concatenate([np.diag(wins_both), wins_both[pi, pj]]).astype(float)
    return Candidates(i, j, support, wins), both


def describe_group(
    mask: np.ndarray, y: np.ndarray, amount: np.ndarray, cycle: np.ndarray, p0: float, acv0: float
) -> dict[str, Any]:
    """Support, wins, win rate with its Wilson interval, lift, deal size and median cycle."""
    n = int(mask.sum())
    k = int(y[mask].sum())
    low, high = wilson(np.array([k]), np.array([n]))
    won = mask & y
    acv = float(np.nanmean(amount[won])) if won.any() and np.isfinite(amount[won]).any() else None
    cycles = cycle[won]
    return {
        "support": n,
        "wins": k,
        "win_rate": k / n if n else None,
        "win_rate_ci": [float(low[0]), float(high[0])],
        "lift": (k / n) / p0 if n and p0 > 0 else None,
        "acv": acv,
        "acv_vs_avg": acv / acv0 if acv is not None and acv0 else None,
        "cycle_days": float(np.median(cycles)) if cycles.size else None,
    }


def distinguishing(
    mask: np.ndarray, matrix: np.ndarray, traits: list[Trait], own: set[str]
) -> list[str]:
    """Up to three other traits over-represented in the group (share in vs overall)."""
    inside = matrix[mask].mean(axis=0) if mask.any() else np.zeros(matrix.shape[1])
    overall = matrix.mean(axis=0)
    ratio = np.divide(inside, overall, out=np.zeros_like(inside), where=overall > 0)
    order = np.lexsort((np.arange(len(traits)), -ratio))
    found: list[str] = []
    seen = set(own)
    for k in order:
        if ratio[k] < 1.5 or inside[k] < 0.3 or len(found) == 3:
            break
        if traits[k].field not in seen:
            found.append(f"{traits[k].label} ({inside[k]:.0%} vs {overall[k]:.0%})")
            seen.add(traits[k].field)
    return found


def _select(
    order: np.ndarray,
    cands: Candidates,
    matrix: np.ndarray,
    limit: int,
    containment: float = 1.01,
    y: np.ndarray | None = None,
) -> list[int]:
    """Greedy: keep candidates in order unless they overlap one already kept (Jaccard
    over 0.5, or mostly inside it), reuse a trait already used twice, or, with `y`, lie
    inside a kept group without a win rate of their own (|z| < 3 against the rest of it:
    "UK Healthcare" inside "EMEA Healthcare")."""
    kept: list[int] = []
    masks: list[np.ndarray] = []
    uses: dict[int, int] = {}
    for k in order:
        parts = [int(cands.i[k])] + ([int(cands.j[k])] if cands.j[k] >= 0 else [])
        if any(uses.get(p, 0) >= 2 for p in parts):
            continue
        mask = cands.mask(int(k), matrix)
        size = mask.sum()
        duplicate = False
        for other in masks:
            common = (mask & other).sum()
            union = size + other.sum() - common
            inside = common / max(min(size, other.sum()), 1)
            if common / max(union, 1) > 0.5 or inside > containment:
                duplicate = True
            elif y is not None and common >= 0.9 * size:
                rest = other & ~mask
                z = two_proportion_z(y[mask].sum(), size, y[rest].sum(), rest.sum())
                duplicate = abs(float(z)) < 3
            if duplicate:
                break
        if not duplicate:
            kept.append(int(k))
            masks.append(mask)
            for p in parts:
                uses[p] = uses.get(p, 0) + 1
            if len(kept) == limit:
                break
    return kept


def _productive(
    cands: Candidates,
    both: np.ndarray,
    wins_single: np.ndarray,
    single: np.ndarray,
    sign: np.ndarray,
) -> np.ndarray:
    """Pairs whose rate beats each half alone, in the direction `sign` (Bonferroni)."""
    pairs = np.flatnonzero(cands.j >= 0)
    ok = np.ones(cands.i.size, dtype=bool)
    if pairs.size == 0:
        return ok
    crit = normal_isf(0.05 / pairs.size)
    k, n = cands.wins[pairs], cands.support[pairs]
    for parent in (cands.i[pairs], cands.j[pairs]):
        rest_k, rest_n = wins_single[parent] - k, single[parent] - n
        z = two_proportion_z(k, n, rest_k, rest_n) * sign[pairs]
        ok[pairs] &= z > crit
    return ok


def find_segments(
    traits: list[Trait],
    matrix: np.ndarray,
    y: np.ndarray,
    amount: np.ndarray,
    cycle: np.ndarray,
    min_support: int,
) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """Segments winning significantly more, and significantly less, than overall.

    Each carries `p_value` (the BH q-value that decided the claim) and `family_p`
    (Bonferroni over every candidate), the stricter bar for writing it into the criteria.
    """
    if not traits or y.size == 0:
        return [], []
    cands, both = candidates(traits, matrix, y, min_support)
    p0 = float(y.mean())
    acv0 = float(np.nanmean(amount[y])) if y.any() and np.isfinite(amount[y]).any() else 0.0
    z = binomial_z(cands.wins, cands.support, p0)
    raw = 2 * normal_sf(np.abs(z))
    q = benjamini_hochberg(raw)
    family = np.minimum(raw * raw.size, 1.0)  # Bonferroni: what may tag accounts in the CRM
    low, high = wilson(cands.wins, cands.support)
    single = np.diag(both)
    wins_single = cands.wins[: len(traits)]
    productive = _productive(cands, both, wins_single, single, np.sign(z))
    found: list[list[dict[str, Any]]] = []
    for direction, beyond in ((1, low > p0), (-1, high < p0)):
        claim = (q < FDR) & beyond & productive & (np.sign(z) == direction)
        claimed = np.flatnonzero(claim)
        order = claimed[np.lexsort((claimed, -np.abs(z[claimed])))]
        out = []
        for k in _select(order, cands, matrix, MAX_REPORTED, y=y):
            entry = _entry(k, cands, traits, matrix, y, amount, cycle, p0, acv0, float(q[k]))
            out.append(entry | {"family_p": float(family[k])})
        found.append(out)
    return found[0], found[1]


def _entry(
    k: int,
    cands: Candidates,
    traits: list[Trait],
    matrix: np.ndarray,
    y: np.ndarray,
    amount: np.ndarray,
    cycle: np.ndarray,
    p0: float,
    acv0: float,
    q: float,
) -> dict[str, Any]:
    parts = [traits[cands.i[k]]] + ([traits[cands.j[k]]] if cands.j[k] >= 0 else [])
    mask = cands.mask(k, matrix)
    when = [dict(c) for t in parts for c in t.conditions]
    entry: dict[str, Any] = {
        "name": segment_name(parts),
        "rule": describe(when),
        "when": when,
        **describe_group(mask, y, amount, cycle, p0, acv0),
        "traits": [t.label for t in parts]
        + distinguishing(mask, matrix, traits, {t.field for t in parts}),
        "p_value": q,
    }
    return entry
