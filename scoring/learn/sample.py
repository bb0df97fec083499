"""Bounded learning on large orgs: a stratified sample of the closed outcomes.

Above `MAX_OUTCOMES` closed outcomes (or `MAX_CUSTOMERS` customers for the expansion
scorecard) the learner fits on a random sample of them, drawn separately from the won and
the lost ones at the same rate, so the win rate, the time order (the holdout is still the
most recent quarter of the sample) and every proportion keep their meaning; only the
intervals widen a little, and counts (outcomes per tier, segment, pattern) are counts of
the sample. At 20,000 outcomes the standard error of a win rate is below 0.4 points and
that of the holdout AUC about 0.01, so a larger fit buys little and costs minutes.

Below the thresholds nothing is sampled and the result is exactly the full learner's.
What was sampled is reported (`sampled`: used of how many), never silent.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

MAX_OUTCOMES = 20_000
"""Closed outcomes the learner fits on at most (sampled, stratified by won/lost, above)."""
MAX_CUSTOMERS = 20_000
"""Customers the expansion scorecard fits on at most (stratified by expanded, above)."""


def stratified(y: np.ndarray, limit: int, seed: int) -> np.ndarray | None:
    """Sorted row positions of a sample of at most `limit` rows, each class (y) drawn at
    the same rate; None when there are no more than `limit` rows (nothing to sample)."""
    if y.size <= limit:
        return None
    rng = np.random.default_rng(seed)
    rate = limit / y.size
    picked = []
    for cls in (True, False):
        rows = np.flatnonzero(y == cls)
        take = min(rows.size, round(rows.size * rate))
        picked.append(rng.choice(rows, size=take, replace=False))
    return np.sort(np.concatenate(picked))


@dataclass
class Sampled:
    """What the learner fitted on, of how many (`None` rows: everything)."""

    rows: np.ndarray | None
    n_won: int
    n_lost: int
    used_won: int
    used_lost: int

    @property
    def active(self) -> bool:
        return self.rows is not None

    def figures(self, unit: str, limit: int) -> dict[str, Any]:
        """The `sampled` block of the criteria and of `icp train --json`."""
        return {
            "used": self.used_won + self.used_lost,
            "of": self.n_won + self.n_lost,
            "used_won": self.used_won,
            "used_lost": self.used_lost,
            "of_won": self.n_won,
            "of_lost": self.n_lost,
            "limit": limit,
            "method": (
                f"random sample of the closed {unit} outcomes, won and lost drawn at the same "
                "rate (win rate and time order kept); every figure, interval, count and "
                "segment is of the sample"
            ),
        }

    def warning(self, unit: str) -> str:
        used, of = self.used_won + self.used_lost, self.n_won + self.n_lost
        return (
            f"learned from a sample of {used:,} of {of:,} closed {unit} outcomes "
            f"({self.used_won:,} of {self.n_won:,} won, {self.used_lost:,} of {self.n_lost:,} "
            "lost, drawn at the same rate): counts in the figures are of the sample"
        )


def sample_outcomes(y: np.ndarray, seed: int, limit: int = MAX_OUTCOMES) -> Sampled:
    """The stratified sample of the outcomes `y` (time-ordered) the learner fits on."""
    rows = stratified(y, limit, seed)
    kept = y if rows is None else y[rows]
    return Sampled(rows, int(y.sum()), int((~y).sum()), int(kept.sum()), int((~kept).sum()))


def sample_customers(
    customers: pd.DataFrame | None, seed: int, limit: int = MAX_CUSTOMERS
) -> tuple[pd.DataFrame | None, dict[str, Any] | None]:
    """(customers the expansion scorecard fits on, the `sampled` figures or None)."""
    if customers is None:
        return None, None
    y = customers["expanded"].to_numpy(bool)
    rows = stratified(y, limit, seed)
    if rows is None:
        return customers, None
    kept = y[rows]
    return customers.iloc[rows], {
        "used": int(rows.size),
        "of": int(y.size),
        "used_expanded": int(kept.sum()),
        "of_expanded": int(y.sum()),
        "method": "random sample of the customers, expanded and not drawn at the same rate",
    }
