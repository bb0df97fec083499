"""Nurture tracks: which marketing track each account belongs in, by first-match rules.

The rules (`nurture:` in operate.yaml) read like routing rules: conditions on account
fields and on what scoring produced (score, tier, segment); the first rule that holds
gives the account its track, an account no rule matches gets none. The result is the
`nurture_track` column of the scored frame: written to the CRM only when the admin maps
the optional `nurture_track` output, and always available to `icp audiences export`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from icp_engine.scoring.criteria import ConditionEvaluator
from icp_engine.sync.operate_config import NurtureRule


def nurture_tracks(
    features: pd.DataFrame, scored: pd.DataFrame, rules: list[NurtureRule]
) -> np.ndarray:
    """The track of each row of `features` (aligned with `scored`), or None.

    Args:
        features: one row per account (`scoring.features.build_features`).
        scored: `score_accounts` on the same rows (score, tier, segment).
        rules: the nurture rules, in order.
    """
    evaluator = ConditionEvaluator(features)
    evaluator.extra = {
        name: pd.Series(scored[name].to_numpy(), index=features.index)
        for name in ("score", "tier", "segment")
    }
    result = np.full(len(features), None, dtype=object)
    undecided = np.ones(len(features), dtype=bool)
    for rule in rules:
        hit = undecided & evaluator.all_of(rule.when)
        result[hit] = rule.track
        undecided &= ~hit
    return result
