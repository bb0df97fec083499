"""Fitting the encodings: which traits are candidates, where numbers are cut, which
text values are kept, and which features carry a significant link to winning.

Numbers are cut at round thresholds chosen where they separate won from lost best
(greedy splits, each kept only when significant after a Bonferroni correction over the
thresholds tried), so a non-monotonic sweet spot such as 50-500 employees can emerge.
Text values held by fewer than max(20, 1% of outcomes) accounts (capped at 100) become
"other"; multi-select values each become a has/lacks feature. Screening keeps a feature
only when its levels' win rates differ significantly (likelihood-ratio test, Bonferroni
over all candidates), and drops one that separates won from lost almost perfectly on its
own: such a field is usually written after the outcome.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from icp_engine.scoring.learn.features import CATEGORY, HAS, NUMBER, Feature, roundness
from icp_engine.scoring.learn.stats import auc, chi2_sf, g_test, normal_isf

NEVER = ("date", "datetime", "domain")
IDENTIFIERS = ("account_id", "name", "domain", "created_at", "modified_at")
DERIVED = {
    "region": "text",
    "employee_growth": "number",
    "tech_count": "number",
    "company_age": "number",
}
"""Derived account features `build_features` adds (opportunity aggregates would leak)."""
MANTISSAS = (1.0, 1.5, 2.0, 2.5, 3.0, 4.0, 5.0, 6.0, 7.5)
MAX_BINS = 6


def nice_thresholds(values: np.ndarray, integer: bool) -> tuple[np.ndarray, np.ndarray]:
    """Round cut points within the range of the data, and how round each is."""
    low, high = float(values.min()), float(values.max())  # min_bin keeps tails honest
    biggest = max(abs(low), abs(high), 1e-9)
    smallest = np.abs(values[values != 0]).min(initial=biggest)
    top = math.ceil(math.log10(biggest)) + 1
    bottom = max(math.floor(math.log10(max(smallest, biggest * 1e-6))) - 1, top - 9)
    grid = [float(f"{m}e{e}") for e in range(bottom, top + 1) for m in MANTISSAS]  # exact decimals
    cuts = {0.0: 0.0} | {v: roundness(v) for v in grid} | {-v: roundness(v) for v in grid}
    if integer:
        cuts = {t: r for t, r in cuts.items() if float(t).is_integer()}
        cuts |= {t + 1: r + 0.5 for t, r in list(cuts.items()) if t + 1 not in cuts}
    chosen = sorted(t for t in cuts if low < t <= high)
    return np.array(chosen, dtype=float), np.array([cuts[t] for t in chosen])


def split_points(x: np.ndarray, y: np.ndarray, min_bin: int, alpha: float) -> tuple[float, ...]:
    """Greedy best-first binary splits at round thresholds, while each is significant.

    A split's likelihood-ratio statistic must exceed the chi-square(1) quantile at
    `alpha / number of thresholds tried` (Bonferroni), so noise rarely gets a cut.
    Zero, when it is the smallest value and common, always gets a bin of its own (a
    special value, such as pre-revenue): its effect may only show once size is known.
    """
    integer = bool(np.all(np.floor(x) == x))
    cands, ranks = nice_thresholds(x, integer)
    order = np.argsort(x, kind="stable")
    xs, cw = x[order], np.concatenate([[0.0], np.cumsum(y[order])])
    bins = [(0, xs.size)]
    chosen: list[float] = []
    zeros = int(np.searchsorted(xs, 0.0, side="right"))
    if xs.size and xs[0] == 0 and min_bin <= zeros <= xs.size - min_bin:
        above = xs[zeros]
        cut = 1.0 if integer else float(f"1e{math.floor(math.log10(above))}")
        bins = [(0, zeros), (zeros, xs.size)]
        chosen.append(cut)
        keep = cands > cut
        cands, ranks = cands[keep], ranks[keep]
    if cands.size == 0:
        return tuple(chosen)
    counts = np.searchsorted(xs, cands, side="left")
    wins = cw[counts]
    crit = normal_isf(alpha / (2 * cands.size)) ** 2
    while len(bins) < MAX_BINS:
        best = (crit, -1, -1)
        for b, (a, z) in enumerate(bins):
            ok = (counts >= a + min_bin) & (counts <= z - min_bin)
            if not ok.any():
                continue
            n_l, w_l = counts - a, wins - cw[a]
            n_r, w_r = z - counts, cw[z] - wins
            gain = 2.0 * (
                _ll(w_l, n_l) + _ll(w_r, n_r) - _ll(np.array([cw[z] - cw[a]]), np.array([z - a]))
            )
            gain = np.where(ok, gain - 1e-9 * ranks, -np.inf)
            k = int(np.argmax(gain))
            if gain[k] > best[0]:
                best = (float(gain[k]), b, k)
        if best[1] < 0:
            break
        _, b, k = best
        a, z = bins.pop(b)
        bins[b:b] = [(a, int(counts[k])), (int(counts[k]), z)]
        chosen.append(float(cands[k]))
    return tuple(sorted(chosen))


def _ll(w: np.ndarray, n: np.ndarray) -> np.ndarray:
    n = np.maximum(n.astype(float), 1e-12)
    p = np.clip(w / n, 1e-12, 1 - 1e-12)
    return w * np.log(p) + (n - w) * np.log(1 - p)


def encode_number(
    name: str, values: pd.Series, rows: np.ndarray, y: np.ndarray, min_bin: int, alpha: float
) -> Feature:
    x_all = pd.to_numeric(values, errors="coerce").to_numpy(float)
    x_all = np.where(np.isfinite(x_all), x_all, np.nan)
    x = x_all[rows]
    present = ~np.isnan(x)
    thresholds: tuple[float, ...] = ()
    if present.sum() >= 2 * min_bin:
        thresholds = split_points(x[present], y[present], min_bin, alpha)
    known = x_all[~np.isnan(x_all)]
    integer = bool(np.all(np.floor(known) == known))
    codes = np.searchsorted(np.array(thresholds), np.nan_to_num(x_all), side="right")
    missing = len(thresholds) + 1
    codes = np.where(np.isnan(x_all), missing, codes).astype(np.int16)
    return Feature(
        name,
        name,
        NUMBER,
        codes,
        missing + 1,
        missing=missing,
        thresholds=thresholds,
        integer=integer,
    )


def _folded(values: pd.Series) -> tuple[np.ndarray, list[str], list[Any]]:
    """Codes per row (-1 null), the case-folded keys and a display spelling per key."""
    objects = values.astype(object)
    codes, uniques = pd.factorize(objects, sort=False)
    keys = [str(v).strip().casefold() for v in uniques]
    distinct = sorted(set(keys))
    where = {k: i for i, k in enumerate(distinct)}
    table = np.array([where[k] for k in keys] + [-1], dtype=np.int64)
    folded = table[codes]
    counts = np.bincount(codes[codes >= 0], minlength=len(uniques))
    spelling: dict[str, tuple[int, str, Any]] = {}
    for value, key, count in zip(uniques, keys, counts, strict=True):
        best = spelling.get(key)
        shown = value.item() if isinstance(value, np.generic) else value
        if best is None or (-count, str(shown)) < (-best[0], best[1]):
            spelling[key] = (int(count), str(shown), shown)
    return folded, distinct, [spelling[k][2] for k in distinct]


def encode_category(name: str, values: pd.Series, rows: np.ndarray, rare: int) -> Feature:
    boolean = pd.api.types.is_bool_dtype(values) or isinstance(values.dtype, pd.BooleanDtype)
    if boolean:
        flags = values.astype("boolean")
        folded = np.where(flags.isna(), -1, flags.fillna(False).astype(int)).astype(np.int64)
        shown: list[Any] = [False, True]
    else:
        folded, _, shown = _folded(values)
    counts = np.bincount(folded[rows][folded[rows] >= 0], minlength=len(shown))
    kept = [i for i in np.argsort(-counts, kind="stable") if counts[i] >= rare]
    kept = sorted(kept, key=lambda i: (-counts[i], str(shown[i])))
    table = np.full(len(shown) + 1, len(kept), dtype=np.int16)  # default: other
    for level, i in enumerate(kept):
        table[i] = level
    other, missing = len(kept), len(kept) + 1
    table[-1] = missing
    codes = table[folded]
    return Feature(
        name,
        name,
        CATEGORY,
        codes,
        missing + 1,
        missing=missing,
        other=other,
        values=tuple(shown[i] for i in kept),
    )


def encode_multi(field_name: str, values: pd.Series, rows: np.ndarray, rare: int) -> list[Feature]:
    objects = values.astype(object).map(
        lambda v: ";".join(map(str, v)) if isinstance(v, list | tuple | set) else v,
        na_action="ignore",
    )
    codes, uniques = pd.factorize(objects, sort=False)
    parts = [
        {p.strip().casefold(): p.strip() for p in str(u).split(";") if p.strip()} for u in uniques
    ]
    spelled: dict[str, str] = {}
    for entry in parts:
        for key, shown in entry.items():
            spelled.setdefault(key, shown)
    row_codes = codes[rows]
    per_unique = np.bincount(row_codes[row_codes >= 0], minlength=len(uniques))
    features = []
    for key in sorted(spelled):
        has = np.array([key in entry for entry in parts] + [False])
        count = int(per_unique[has[:-1]].sum())
        if count < rare or len(rows) - count < rare:
            continue
        flag = has[codes].astype(np.int16)
        features.append(
            Feature(
                f"{field_name}={spelled[key]}", field_name, HAS, flag, 2, values=(spelled[key],)
            )
        )
    return features


def candidate_fields(
    frame: pd.DataFrame, field_types: dict[str, str], exclude: Sequence[str]
) -> tuple[dict[str, str], dict[str, str]]:
    """(field -> kind) to try, and (field -> reason) for mapped fields never tried."""
    kinds = {**field_types, **{k: v for k, v in DERIVED.items() if k in frame}}
    tried: dict[str, str] = {}
    never: dict[str, str] = {}
    for name, kind in kinds.items():
        if name in IDENTIFIERS or kind in NEVER:
            never[name] = "identifier, name or timestamp: never a feature"
        elif name in exclude:
            never[name] = "excluded, it records the outcome itself (account status)"
        elif name not in frame:
            never[name] = "not in the account data"
        elif name == "year_started" and "company_age" in frame:
            never[name] = "used as company age (years), the same trait in a seller's words"
        else:
            tried[name] = kind
    return tried, never


def encode(
    frame: pd.DataFrame,
    kinds: dict[str, str],
    rows: np.ndarray,
    y: np.ndarray,
    min_support: int,
    alpha: float,
) -> tuple[list[Feature], dict[str, str]]:
    """Fit every candidate's encoding on `rows` (with outcomes `y`); codes cover all rows."""
    n = len(rows)
    rare = int(max(20, min(0.01 * n, 100)))
    min_bin = int(max(min_support, 0.02 * n))
    features: list[Feature] = []
    dropped: dict[str, str] = {}
    for name in sorted(kinds):
        values = frame[name]
        if values.iloc[rows].isna().all():
            dropped[name] = "empty for every account with an outcome"
        elif kinds[name] == "number":
            features.append(encode_number(name, values, rows, y, min_bin, alpha))
        elif kinds[name] == "multi":
            found = encode_multi(name, values, rows, rare)
            features += found
            if not found:
                dropped[name] = "no value common enough to learn from"
        else:
            distinct = values.iloc[rows].astype(object).nunique(dropna=True)
            if distinct > 0.5 * n and distinct > 50:
                dropped[name] = "nearly unique per account (free text or an identifier)"
                continue
            features.append(encode_category(name, values, rows, rare))
    return features, dropped


def screen(
    features: list[Feature], rows: np.ndarray, y: np.ndarray, alpha: float, leak_auc: float
) -> tuple[list[Feature], dict[str, str]]:
    """Keep features whose levels' win rates differ significantly (Bonferroni over all)."""

    kept: list[Feature] = []
    dropped: dict[str, str] = {}
    level = alpha / max(len(features), 1)
    for feature in features:
        codes = feature.codes[rows]
        n = np.bincount(codes, minlength=feature.n_levels)
        w = np.bincount(codes, weights=y, minlength=feature.n_levels)
        stat, df = g_test(w, n)
        p = float(chi2_sf(stat, df)) if df > 0 else 1.0
        rate = np.divide(w, n, out=np.zeros_like(w), where=n > 0)
        alone = auc(rate[codes], y.astype(bool)) if df > 0 else 0.5
        if alone >= leak_auc:
            dropped[feature.name] = (
                f"separates won from lost almost perfectly on its own (AUC {alone:.2f}): "
                "probably recorded after the outcome"
            )
        elif df == 0 and feature.kind == NUMBER:
            dropped[feature.name] = "no threshold separates won from lost significantly"
        elif df == 0:
            dropped[feature.name] = "a single value for every account with an outcome"
        elif p >= level:
            dropped[feature.name] = f"no significant link to winning (p={p:.2g})"
        else:
            kept.append(feature)
    return kept, dropped
