"""`TrainSettings`: the learner's thresholds and choices, in one module of their own so the
steps of `icp train` (`train`, `holdout`, ...) can share them without importing each other."""

from __future__ import annotations

from dataclasses import dataclass

from icp_engine.scoring.learn.sample import MAX_CUSTOMERS, MAX_OUTCOMES


@dataclass
class TrainSettings:
    """Thresholds and choices of one `icp train` run (defaults: see each field)."""

    lookback_days: int = 730
    min_won: int = 50
    min_lost: int = 50
    wide_below: int = 200
    holdout_share: float = 0.25
    min_support: int = 30
    emerging_days: int = 90
    bootstrap: int = 500
    seed: int = 7
    unit: str = "account"
    """`account` (default) or `deal` (repeat-purchase data: every closed deal counts)."""
    exclude_fields: tuple[str, ...] = ("type",)
    """Account fields that record the outcome itself (Customer / Prospect status)."""
    alpha: float = 0.01
    """Family-wise level for keeping a feature, a bin split or an interaction."""
    leak_auc: float = 0.9
    """A single feature separating won from lost at least this well is taken as a leak."""
    challenger: bool = True
    objective: str = "win_rate"
    """`win_rate` (rank by the chance of winning) or `expected_value` (P(win) x deal size)."""
    tier_shares: dict[str, float] | None = None
    """Target share of accounts per tier but the lowest (default A 15%, B 25%, C 30%)."""
    score_scale: int = 0
    """Decimal places the score field stores: the holdout judges the score so rounded."""
    max_outcomes: int = MAX_OUTCOMES
    """Above this many closed outcomes the learner fits on a stratified sample of this many
    (`scoring.learn.sample`); the sample is reported as `sampled`."""
    max_customers: int = MAX_CUSTOMERS
    """Likewise for the customers the expansion scorecard fits on."""
