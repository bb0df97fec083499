"""Keep a trait only if it adds something once the other traits are known.

The univariate screen (`scoring.learn_binning.screen`) keeps any trait linked to winning,
including proxies: Slack users win more only because accounts with no enrichment at all
use no tool and lose; `employees_last_year` mostly repeats `employees`. Backward
elimination on a nearly unpenalised model removes them: the trait with the weakest
Wald statistic is confirmed by a likelihood-ratio test (refit without it, robust where
Wald is not, such as a level that always wins) and dropped while that test is not
significant at `alpha / number of traits` (Bonferroni); the rest stay.
"""

from __future__ import annotations

import numpy as np
from icp_engine.scoring.learn.features import Feature
from icp_engine.scoring.learn.stats import chi2_sf
from sklearn.linear_model import LogisticRegression

PROBE_C = 1000.0


def _design(features: list[Feature], rows: np.ndarray) -> tuple[np.ndarray, list[range]]:
    """Reference-coded columns (the most common level of each trait is the reference)."""
    columns: list[np.ndarray] = []
    blocks: list[range] = []
    for f in features:
        codes = f.codes[rows]
        counts = np.bincount(codes, minlength=f.n_levels)
        present = np.flatnonzero(counts)
        reference = present[np.argmax(counts[present])] if present.size else -1
        levels = [level for level in present if level != reference]
        blocks.append(range(len(columns), len(columns) + len(levels)))
        columns += [(codes == level).astype(np.float64) for level in levels]
    matrix = np.column_stack(columns) if columns else np.zeros((len(rows), 0))
    return matrix, blocks


def _fit(matrix: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float, np.ndarray]:
    """(coefficients, intercept, fitted probabilities) of a nearly unpenalised fit."""
    if matrix.shape[1] == 0:
        rate = float(np.clip(y.mean(), 1e-9, 1 - 1e-9))
        return np.zeros(0), float(np.log(rate / (1 - rate))), np.full(len(y), rate)
    model = LogisticRegression(C=PROBE_C, solver="newton-cholesky", max_iter=100).fit(matrix, y)
    p = np.clip(model.predict_proba(matrix)[:, 1], 1e-12, 1 - 1e-12)
    return model.coef_[0], float(model.intercept_[0]), p


def _log_likelihood(p: np.ndarray, y: np.ndarray) -> float:
    return float(np.sum(y * np.log(p) + (1 - y) * np.log(1 - p)))


def _wald(matrix: np.ndarray, beta: np.ndarray, p: np.ndarray, blocks: list[range]) -> np.ndarray:
    """Wald p-value per block of columns, from the inverse Fisher information."""
    full = np.column_stack([np.ones(len(p)), matrix])
    info = full.T @ (full * (p * (1 - p))[:, None])
    cov = np.linalg.pinv(info)
    out = np.ones(len(blocks))
    for k, block in enumerate(blocks):
        if len(block) == 0:
            continue
        index = np.array(block) + 1
        b = beta[np.array(block)]
        stat = float(b @ np.linalg.pinv(cov[np.ix_(index, index)]) @ b)
        out[k] = float(chi2_sf(stat, len(block)))
    return out


def backward_screen(
    features: list[Feature], rows: np.ndarray, y: np.ndarray, alpha: float
) -> tuple[list[Feature], dict[str, str]]:
    """Drop traits that add nothing significant given the others (see the module doc)."""
    kept = list(features)
    dropped: dict[str, str] = {}
    level = alpha / max(len(features), 1)
    y = np.asarray(y, dtype=float)
    while len(kept) > 1:
        matrix, blocks = _design(kept, rows)
        beta, _, p = _fit(matrix, y)
        full = _log_likelihood(p, y)
        wald = _wald(matrix, beta, p, blocks)
        removed = False
        for k in np.argsort(-wald, kind="stable"):
            if wald[k] < level:
                break
            keep = [c for b, block in enumerate(blocks) if b != k for c in block]
            _, _, reduced = _fit(matrix[:, keep], y)
            stat = 2.0 * (full - _log_likelihood(reduced, y))
            p_value = float(chi2_sf(stat, max(len(blocks[k]), 1)))
            if p_value >= level:
                dropped[kept[k].name] = (
                    f"adds nothing significant once the other traits are known (p={p_value:.2g})"
                )
                kept.pop(int(k))
                removed = True
                break
        if not removed:
            break
    return kept, dropped
