"""A third trait for a strong two-trait segment ("Scale-up SaaS": Technology/SaaS,
mid-market, 3-10 years old), with the same honest statistics as the segment search.

`scoring.segments` tests every trait and every pair of traits, over the bins the learner
cut where win rates differ across all accounts. A trait that matters only inside a
segment (company age among mid-market SaaS accounts) has no such cut, so no pair can
hold it. Here each reported two-trait segment winning more (or less) than overall is the
parent of candidate refinements by one more field:

- a number is cut inside the parent: every interval between round thresholds of that
  field (and the vocabulary's band edges: `scoring.vocabulary`, 3 and 11 years, 50 and
  5,001 employees) is a candidate;
- a text value or a multi-select value ("uses Salesforce") is a candidate as it is.

A refinement is claimed only when (1) it holds `min_support` outcomes and so does the
rest of its parent; (2) it beats the rest of each of its three two-trait halves (the
parent and the two pairs through the new trait) at a Bonferroni level over every
refinement tried, so every trait earns its place; (3) its win rate differs from
the overall rate at a Bonferroni level over every candidate of the segment search plus
every refinement tried, its Wilson interval excluding the overall rate. Among the
significant intervals of a number within 10% of the strongest z, the one with the
roundest ends (band edges first) is kept, so the name reads the way sellers cut.
"""

from __future__ import annotations

from collections.abc import Callable
from itertools import combinations
from typing import Any

import numpy as np
import pandas as pd
from icp_engine.scoring import vocabulary
from icp_engine.scoring.learn.binning import nice_thresholds
from icp_engine.scoring.learn.features import CATEGORY, HAS, NUMBER, Feature, describe
from icp_engine.scoring.learn.stats import (
    binomial_z,
    normal_isf,
    normal_sf,
    two_proportion_z,
    wilson,
)

MAX_PARENTS = 6
MAX_THIRD = 3
LEVEL = 0.05
BAND_EDGES = {"company_age": (3.0, 11.0), "employees": (50.0, 5001.0)}
"""Cuts a seller's vocabulary makes (`scoring.vocabulary`): always candidates, roundest."""


def _cuts(field: str, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Round thresholds within the data (roundness rank beside each), band edges first."""
    integer = bool(np.all(np.floor(x) == x))
    cuts, ranks = nice_thresholds(x, integer)
    keep = ranks <= 1.0
    table = dict(zip(cuts[keep].tolist(), ranks[keep].tolist(), strict=True))
    for edge in BAND_EDGES.get(field, ()):
        if x.min() < edge <= x.max():
            table[edge] = -1.0
    chosen = sorted(table)
    return np.array(chosen, float), np.array([table[c] for c in chosen], float)


Option = tuple[list[dict[str, Any]], np.ndarray, float]
"""(conditions, mask over the outcome rows, roundness of the ends: lower is rounder)"""


def _number_options(
    field: str, values: pd.Series, rows: np.ndarray, parent: np.ndarray
) -> list[Option]:
    """(conditions, mask over rows, roundness) for every interval of `field` in the parent."""
    x = pd.to_numeric(values, errors="coerce").to_numpy(float)[rows]
    inside = parent & np.isfinite(x)
    if inside.sum() < 2:
        return []
    cuts, ranks = _cuts(field, x[inside])
    integer = bool(np.all(np.floor(x[inside]) == x[inside]))
    edges = [(-np.inf, 0.0), *zip(cuts.tolist(), ranks.tolist(), strict=True), (np.inf, 0.0)]
    out = []
    for (low, r_low), (high, r_high) in combinations(edges, 2):
        if np.isinf(low) and np.isinf(high):
            continue
        feature = Feature(field, field, NUMBER, np.zeros(1, np.int16), 3, integer=integer)
        feature.thresholds = tuple(t for t in (low, high) if np.isfinite(t))
        level = 1 if np.isfinite(low) else 0
        conditions = feature.conditions([level])
        if conditions is None:
            continue
        mask = np.isfinite(x) & (x >= low) & (x < high)
        out.append((conditions, mask, r_low + r_high))
    return out


def _level_options(f: Feature, rows: np.ndarray) -> list[Option]:
    if f.kind == HAS:
        levels = [(1,)]
    elif f.kind == CATEGORY:
        levels = [(i,) for i in range(f.n_levels) if i not in (f.missing, f.other)]
    else:
        return []
    out = []
    for lv in levels:
        conditions = f.conditions(lv)
        if conditions is not None:
            out.append((conditions, f.mask(lv)[rows], 0.0))
    return out


def third_traits(
    parents: list[dict[str, Any]],
    features: list[Feature],
    frame: pd.DataFrame,
    rows: np.ndarray,
    y: np.ndarray,
    mask_of: Callable[[list[dict[str, Any]]], np.ndarray],
    describe_group: Callable[[np.ndarray], dict[str, Any]],
    min_support: int,
    tested: int,
) -> list[dict[str, Any]]:
    """Three-trait segments refining `parents` (see the module docstring).

    Args:
        parents: segments reported by `scoring.segments.find_segments` (one direction).
        features: the encoded candidates of the segment search.
        rows: account rows of the outcomes `y`.
        mask_of: YAML conditions -> mask over every account.
        describe_group: mask over `rows` -> support, wins, win rate, lift, ACV, cycle.
        tested: how many candidates the segment search tested (for the Bonferroni level).
    """
    p0 = float(y.mean())
    tried: list[dict[str, Any]] = []
    for parent in [p for p in parents if len({c["field"] for c in p["when"]}) == 2][:MAX_PARENTS]:
        fields = list(dict.fromkeys(c["field"] for c in parent["when"]))
        halves = [mask_of([c for c in parent["when"] if c["field"] == f])[rows] for f in fields]
        inside = halves[0] & halves[1]
        direction = 1.0 if parent["win_rate"] > p0 else -1.0
        seen: set[str] = set()
        for f in features:
            if f.field in fields or (f.kind == NUMBER and f.field in seen):
                continue
            seen.add(f.field)
            options = (
                _number_options(f.field, frame[f.field], rows, inside)
                if f.kind == NUMBER
                else _level_options(f, rows)
            )
            for conditions, extra, rank in options:
                sub = inside & extra
                n = int(sub.sum())
                if n < min_support or inside.sum() - n < min_support:
                    continue
                tried.append(
                    {
                        "parent": parent,
                        "field": f.field,
                        "conditions": conditions,
                        "mask": sub,
                        "against": [inside, halves[0] & extra, halves[1] & extra],
                        "rank": rank,
                        "direction": direction,
                    }
                )
    if not tried:
        return []
    crit = normal_isf(LEVEL / len(tried))
    family_n = tested + len(tried)
    best: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for t in tried:
        sub = t["mask"]
        wins, size = np.array([y[sub].sum()], float), np.array([sub.sum()], float)
        beats = []
        for pair in t["against"]:
            rest = pair & ~sub
            z = two_proportion_z(wins, size, np.array([y[rest].sum()]), np.array([rest.sum()]))
            beats.append(float(z[0]) * t["direction"])
        if min(beats) <= crit:
            continue
        z0 = float(binomial_z(wins, size, p0)[0])
        family = min(float(2 * normal_sf(np.array([abs(z0)]))[0]) * family_n, 1.0)
        low, high = wilson(wins, size)
        beyond = low[0] > p0 if t["direction"] > 0 else high[0] < p0
        if family >= LEVEL or not beyond:
            continue
        t |= {"z": min(beats), "family_p": family}
        key = (t["parent"]["name"], t["field"])
        best.setdefault(key, []).append(t)
    found: list[dict[str, Any]] = []
    for refinements in best.values():
        top = max(o["z"] for o in refinements)
        near = [o for o in refinements if o["z"] >= 0.9 * top]
        found.append(min(near, key=lambda o: (o["rank"], -o["z"])))
    found.sort(key=lambda o: -o["z"])
    out = []
    for t in found[:MAX_THIRD]:
        when = [dict(c) for c in t["parent"]["when"]] + [dict(c) for c in t["conditions"]]
        out.append(
            {
                "name": vocabulary.segment_name(when),
                "rule": describe(when),
                "when": when,
                **describe_group(t["mask"]),
                "traits": [describe([c]) for c in when],
                "p_value": t["family_p"],
                "family_p": t["family_p"],
                "refines": t["parent"]["name"],
                "test": (
                    f"beats each of its two-trait halves (z >= {t['z']:.1f}, Bonferroni over "
                    f"{len(tried)} refinements); Bonferroni over {family_n} candidates vs "
                    "the overall win rate"
                ),
            }
        )
    return out
