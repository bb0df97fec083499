"""The statistics `icp train` reports: AUC with bootstrap intervals, Wilson intervals,
two-proportion tests, Benjamini-Hochberg, chi-square tails and calibration figures.

Everything works on whole arrays (many candidates or many resamples at once).
"""

from __future__ import annotations

import math
from statistics import NormalDist

import numpy as np
from scipy.special import bdtrc  # type: ignore[import-untyped]

Z95 = 1.959963984540054


def normal_sf(z: np.ndarray) -> np.ndarray:
    """Upper tail of the standard normal, element-wise."""
    values = np.asarray(z, dtype=float) / math.sqrt(2.0)
    return 0.5 * np.vectorize(math.erfc, otypes=[float])(values) if values.size else values


def normal_isf(p: float) -> float:
    """z with P(Z > z) = p."""
    return NormalDist().inv_cdf(1.0 - p)


def chi2_sf(x: np.ndarray | float, df: int) -> np.ndarray:
    """Upper tail of the chi-square distribution with an integer number of degrees of freedom."""
    x = np.maximum(np.asarray(x, dtype=float), 0.0)
    half = x / 2.0
    if df % 2 == 0:
        term = np.exp(-half)
        total = term.copy()
        for i in range(1, df // 2):
            term = term * half / i
            total = total + term
        return np.clip(total, 0.0, 1.0)
    total = 2.0 * normal_sf(np.sqrt(x))
    term = np.exp(-half) * np.sqrt(half) / math.gamma(1.5) if df > 1 else np.zeros_like(x)
    for k in range(1, (df - 1) // 2 + 1):
        total = total + term
        term = term * half / (k + 0.5)
    return np.clip(total, 0.0, 1.0)


def binomial_tail(k: np.ndarray, n: np.ndarray, p: float) -> np.ndarray:
    """Exact P(X >= k) for X ~ Binomial(n, p), element-wise."""
    k = np.rint(np.asarray(k, dtype=float)).astype(np.int64)
    n = np.rint(np.asarray(n, dtype=float)).astype(np.int64)
    return np.where(k <= 0, 1.0, bdtrc(np.maximum(k - 1, 0), n, p))


def wilson(k: np.ndarray, n: np.ndarray, z: float = Z95) -> tuple[np.ndarray, np.ndarray]:
    """Wilson score interval for k successes out of n (element-wise); n=0 gives (0, 1)."""
    k = np.asarray(k, dtype=float)
    n = np.asarray(n, dtype=float)
    safe = np.maximum(n, 1.0)
    p = k / safe
    denom = 1.0 + z * z / safe
    centre = (p + z * z / (2 * safe)) / denom
    half = z * np.sqrt(p * (1 - p) / safe + z * z / (4 * safe * safe)) / denom
    low = np.where(n > 0, np.clip(centre - half, 0.0, 1.0), 0.0)
    high = np.where(n > 0, np.clip(centre + half, 0.0, 1.0), 1.0)
    return low, high


def binomial_z(k: np.ndarray, n: np.ndarray, p0: float) -> np.ndarray:
    """Score statistic of k out of n against a known rate p0 (positive: above p0)."""
    n = np.asarray(n, dtype=float)
    spread = np.sqrt(np.maximum(n * p0 * (1 - p0), 1e-12))
    return (np.asarray(k, dtype=float) - n * p0) / spread


def two_proportion_z(k1: np.ndarray, n1: np.ndarray, k2: np.ndarray, n2: np.ndarray) -> np.ndarray:
    """Pooled two-proportion z (positive: the first rate is higher); 0 where undefined."""
    k1, n1, k2, n2 = (np.asarray(a, dtype=float) for a in (k1, n1, k2, n2))
    pooled = (k1 + k2) / np.maximum(n1 + n2, 1.0)
    spread = np.sqrt(pooled * (1 - pooled) * (1 / np.maximum(n1, 1.0) + 1 / np.maximum(n2, 1.0)))
    diff = k1 / np.maximum(n1, 1.0) - k2 / np.maximum(n2, 1.0)
    ok = (spread > 0) & (n1 > 0) & (n2 > 0)
    return np.where(ok, diff / np.where(ok, spread, 1.0), 0.0)


def benjamini_hochberg(p: np.ndarray) -> np.ndarray:
    """BH-adjusted p-values (q-values), same order as `p`."""
    p = np.asarray(p, dtype=float)
    m = p.size
    if m == 0:
        return p
    order = np.argsort(p, kind="stable")
    ranked = p[order] * m / np.arange(1, m + 1)
    adjusted = np.minimum.accumulate(ranked[::-1])[::-1]
    out = np.empty(m)
    out[order] = np.clip(adjusted, 0.0, 1.0)
    return out


def auc(score: np.ndarray, y: np.ndarray) -> float:
    """Area under the ROC curve (ties count half); nan without both classes."""
    return float(weighted_auc(np.asarray(score, dtype=float), np.asarray(y, bool), None)[0])


def weighted_auc(score: np.ndarray, y: np.ndarray, weights: np.ndarray | None) -> np.ndarray:
    """AUC for each row of `weights` (resamples x observations) in one pass of sorting.

    Scores are sorted once; per resample the weighted positives and negatives are summed
    per distinct score, so ties count half and the cost is linear in the observations.
    """
    w = np.ones((1, score.size)) if weights is None else np.atleast_2d(weights)
    order = np.argsort(score, kind="stable")
    levels, first = np.unique(score[order], return_index=True)
    del levels
    yo = y[order]
    wo = w[:, order]
    pos = np.add.reduceat(wo * yo, first, axis=1)
    neg = np.add.reduceat(wo * ~yo, first, axis=1)
    below = np.cumsum(neg, axis=1) - neg
    total_pos, total_neg = pos.sum(axis=1), neg.sum(axis=1)
    area = (pos * (below + 0.5 * neg)).sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where((total_pos > 0) & (total_neg > 0), area / (total_pos * total_neg), np.nan)


def bootstrap_aucs(
    scores: list[np.ndarray],
    y: np.ndarray,
    groups: np.ndarray,
    resamples: int,
    rng: np.random.Generator,
    chunk: int = 50,
) -> np.ndarray:
    """AUC of each score under the same resamples: array (len(scores), resamples).

    Resamples whole groups (accounts), so repeated deals of one account never make an
    interval look tighter than the accounts behind it; each group is drawn Poisson(1)
    times, the usual large-sample stand-in for multinomial resampling.
    """
    codes, n_groups = _group_codes(groups)
    out = np.empty((len(scores), resamples))
    for start in range(0, resamples, chunk):
        size = min(chunk, resamples - start)
        weights = rng.poisson(1.0, size=(size, n_groups)).astype(np.float32)[:, codes]
        for i, score in enumerate(scores):
            out[i, start : start + size] = weighted_auc(score, y, weights)
    return out


def _group_codes(groups: np.ndarray) -> tuple[np.ndarray, int]:
    _, codes = np.unique(groups, return_inverse=True)
    return codes.ravel(), int(codes.max()) + 1 if codes.size else 0


def interval(values: np.ndarray, level: float = 0.95) -> list[float]:
    """Percentile interval of bootstrap values (nan resamples ignored)."""
    finite = values[np.isfinite(values)]
    if finite.size == 0:
        return [math.nan, math.nan]
    tail = (1 - level) / 2 * 100
    low, high = np.percentile(finite, [tail, 100 - tail])
    return [float(low), float(high)]


def calibration_bins(prob: np.ndarray, y: np.ndarray, bins: int = 10) -> list[dict[str, float]]:
    """Equal-width probability bins: mean predicted, observed rate and count (empty bins out)."""
    index = np.minimum((np.asarray(prob) * bins).astype(int), bins - 1)
    out = []
    for b in range(bins):
        hit = index == b
        n = int(hit.sum())
        if n:
            out.append(
                {
                    "predicted": float(prob[hit].mean()),
                    "observed": float(y[hit].mean()),
                    "n": n,
                }
            )
    return out


def expected_calibration_error(prob: np.ndarray, y: np.ndarray, bins: int = 10) -> float:
    """Count-weighted mean gap between predicted and observed rates over the bins."""
    table = calibration_bins(prob, y, bins)
    total = sum(row["n"] for row in table) or 1
    return float(sum(row["n"] * abs(row["predicted"] - row["observed"]) for row in table) / total)


def brier(prob: np.ndarray, y: np.ndarray) -> float:
    return float(np.mean((np.asarray(prob, dtype=float) - np.asarray(y, dtype=float)) ** 2))


def log_likelihood(wins: np.ndarray, n: np.ndarray) -> np.ndarray:
    """Binomial log-likelihood of each cell at its own rate (0 log 0 = 0)."""
    wins = np.asarray(wins, dtype=float)
    n = np.asarray(n, dtype=float)
    losses = n - wins
    safe = np.maximum(n, 1.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        a = np.where(wins > 0, wins * np.log(np.maximum(wins, 1e-300) / safe), 0.0)
        b = np.where(losses > 0, losses * np.log(np.maximum(losses, 1e-300) / safe), 0.0)
    return a + b


def g_test(wins: np.ndarray, n: np.ndarray) -> tuple[float, int]:
    """Likelihood-ratio statistic of win rate differing across cells, and its df."""
    wins = np.asarray(wins, dtype=float)
    n = np.asarray(n, dtype=float)
    used = n > 0
    stat = 2.0 * (
        log_likelihood(wins[used], n[used]).sum() - log_likelihood(wins[used].sum(), n[used].sum())
    )
    return float(max(stat, 0.0)), int(used.sum()) - 1
