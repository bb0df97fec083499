"""Learning the ICP: closed outcomes in, a scorecard (criteria YAML) and its judged figures out.

`train` is the entry point. Its steps: `outcomes` (won and lost, per account or per deal),
`features` and `binning` (traits as mutually exclusive levels), `screen` and `stats`
(which traits carry signal), `model` (the fitted model), `scorecard_yaml` (points, tiers,
labels written as YAML), `holdout` (the written scorecard judged on the later outcomes),
`segments` (subgroup discovery), `segment_third`, `patterns` and `trends` (segments and
what moved), `summary`.
"""

from icp_engine.scoring.learn.features import HAS, NUMBER, Feature, describe
from icp_engine.scoring.learn.outcomes import collect_outcomes, is_expansion_type
from icp_engine.scoring.learn.train import (
    NotEnoughOutcomes,
    TrainResult,
    TrainSettings,
    plain,
    train,
)

__all__ = [
    "HAS",
    "NUMBER",
    "Feature",
    "NotEnoughOutcomes",
    "TrainResult",
    "TrainSettings",
    "collect_outcomes",
    "describe",
    "is_expansion_type",
    "plain",
    "train",
]
