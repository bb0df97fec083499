"""The learned patterns `icp train` reports: segments, anti-patterns (with the penalty the
criteria apply to them), emerging segments, loss patterns and the expansion scorecard."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
from icp_engine.scoring.criteria import ConditionEvaluator
from icp_engine.scoring.learn import segments as seg
from icp_engine.scoring.learn import trends
from icp_engine.scoring.learn.binning import encode_number
from icp_engine.scoring.learn.features import NUMBER, Feature
from icp_engine.scoring.learn.model import fit_scorecard
from icp_engine.scoring.learn.scorecard_yaml import criteria_groups, scorecard_terms
from icp_engine.scoring.learn.segment_third import third_traits
from icp_engine.scoring.learn.stats import auc, bootstrap_aucs, interval
from icp_engine.scoring.schema import Condition

MIN_EXPANDED = 20


class Patterns:
    """Segments and friends over the outcome rows of one fitted encoding."""

    def __init__(
        self,
        frame: pd.DataFrame,
        features: list[Feature],
        rows: np.ndarray,
        y: np.ndarray,
        amount: np.ndarray,
        cycle: np.ndarray,
        min_support: int,
    ) -> None:
        self.frame = frame
        self.evaluator = ConditionEvaluator(frame)
        self.features, self.rows, self.y = features, rows, y
        self.amount, self.cycle, self.min_support = amount, cycle, min_support
        self.traits, self.matrix = seg.build_traits(features, rows, min_support)
        self.p0 = float(y.mean())
        won = y & np.isfinite(amount)
        self.acv0 = float(amount[won].mean()) if won.any() else 0.0
        self._masks: dict[str, np.ndarray] = {}

    def account_mask(self, when: list[dict[str, Any]]) -> np.ndarray:
        key = repr(when)
        if key not in self._masks:
            conditions = [Condition.model_validate(c) for c in when]
            self._masks[key] = self.evaluator.all_of(conditions)
        return self._masks[key]

    def figures(self, when: list[dict[str, Any]]) -> dict[str, Any]:
        mask = self.account_mask(when)[self.rows]
        return seg.describe_group(mask, self.y, self.amount, self.cycle, self.p0, self.acv0)

    def segments(self) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Segments winning more and less; a third trait refines a strong pair where the
        data supports it (`scoring.segment_third`), listed right after its parent."""
        good, bad = seg.find_segments(
            self.traits, self.matrix, self.y, self.amount, self.cycle, self.min_support
        )
        if not self.traits:
            return good, bad
        tested = int(seg.candidates(self.traits, self.matrix, self.y, self.min_support)[0].i.size)
        return self._refined(good, tested), self._refined(bad, tested)

    def _refined(self, found: list[dict[str, Any]], tested: int) -> list[dict[str, Any]]:
        third = third_traits(
            found,
            self.features,
            self.frame,
            self.rows,
            self.y,
            self.account_mask,
            lambda mask: seg.describe_group(
                mask, self.y, self.amount, self.cycle, self.p0, self.acv0
            ),
            self.min_support,
            tested,
        )
        out: list[dict[str, Any]] = []
        for entry in found:
            out.append(entry)
            out += [t for t in third if t["refines"] == entry["name"]]
        return out

    def long_cycles(self) -> list[dict[str, Any]]:
        """Slow segments, over numbers cut where won deals' cycles differ (not win rates):
        a size band can be slow without winning less."""
        won = self.y & np.isfinite(self.cycle) & (self.cycle > 0)
        if won.sum() < 2 * self.min_support:
            return []
        slow = (self.cycle > np.median(self.cycle[won])).astype(float)[won]
        features = [
            encode_number(f.field, self.frame[f.field], self.rows[won], slow, 10, 0.01)
            if f.kind == NUMBER
            else f
            for f in self.features
        ]
        traits, matrix = seg.build_traits(features, self.rows, self.min_support)
        return trends.long_cycles(traits, matrix, self.y, self.amount, self.cycle, self.min_support)

    def emerging(self, recent: np.ndarray) -> list[dict[str, Any]]:
        return trends.emerging(
            self.traits, self.matrix, self.y, self.amount, self.cycle, recent, self.min_support
        )

    def loss_patterns(
        self, losses: pd.DataFrame, groups: list[dict[str, Any]]
    ) -> list[dict[str, Any]]:
        rules = [(t.label, t.label, [dict(c) for c in t.conditions]) for t in self.traits]
        rules += [(g["name"], g["rule"], g["when"]) for g in groups]
        return trends.loss_patterns(
            rules, self.account_mask, self.figures, losses, self.min_support
        )


def anti_entries(
    win_rate: list[dict[str, Any]],
    slow: list[dict[str, Any]],
    yaml_anti: list[dict[str, Any]],
    scores: np.ndarray,
    rows: np.ndarray,
    mask_of: Callable[[list[dict[str, Any]]], np.ndarray],
    p0: float,
    cap_tier: str,
) -> list[dict[str, Any]]:
    """Anti-pattern report entries, each with the penalty the criteria apply to it."""
    penalties = {repr(_conditions(a)): a.get("penalty") for a in yaml_anti}
    mean_all = float(scores[rows].mean()) if rows.size else 0.0
    out = []
    for entry in win_rate:
        penalty = penalties.get(repr(entry["when"]))
        gap = mean_all - float(scores[rows][mask_of(entry["when"])[rows]].mean())
        reason = f"wins {entry['win_rate']:.0%} vs {p0:.0%} overall"
        if penalty is None:
            penalty = round(max(gap, 0.0), 1)
            reason += f"; the learned scorecard already scores these {penalty:g} points lower"
        out.append(entry | {"penalty": float(penalty), "reason": reason})
    for entry in slow:
        out.append(entry | {"penalty": 0.0, "cap_tier": cap_tier})
    return out


def _conditions(rule: dict[str, Any]) -> list[dict[str, Any]]:
    inline = {
        k: v
        for k, v in rule.items()
        if k not in ("name", "when", "weight", "penalty", "cap_tier", "description")
    }
    return ([inline] if inline else []) + list(rule.get("when", []))


def expansion(
    frame: pd.DataFrame,
    customers: pd.DataFrame | None,
    kinds: dict[str, str],
    encode_fn: Callable[..., tuple[list[Feature], list[Feature], dict[str, str]]],
    min_support: int,
    seed: int,
) -> dict[str, Any] | None:
    """A second scorecard for customers' likelihood to expand, judged by 4-fold CV AUC."""
    if customers is None:
        return None
    customers = customers.sort_values(["since", "account"], kind="stable")
    rows = customers["account"].to_numpy(np.int64)
    y = customers["expanded"].to_numpy(bool)
    out: dict[str, Any] = {
        "n_expanded": int(y.sum()),
        "n_customers": int(y.size),
        "auc": None,
        "auc_ci": None,
        "criteria": [],
        "output": "expansion",
    }
    if y.sum() < MIN_EXPANDED or (~y).sum() < MIN_EXPANDED:
        out["note"] = f"too few outcomes: at least {MIN_EXPANDED} expanded and not expanded needed"
        return out
    kept, candidates, _ = encode_fn(frame, kinds, rows, y)
    if not kept:
        out["note"] = "no account trait is linked to expansion"
        return out
    card = fit_scorecard(kept, candidates, rows, y, min_support, interactions=False)
    folds = np.random.default_rng(seed).permutation(y.size) % 4
    oof = np.zeros(y.size)
    for k in range(4):
        test, train = folds == k, folds != k
        f_kept, f_cands, _ = encode_fn(frame, kinds, rows[train], y[train])
        fold = fit_scorecard(
            f_kept, f_cands, rows[train], y[train], min_support, C=card.C, interactions=False
        )
        oof[test] = fold.logit(rows[test]) if f_kept else 0.0
    aucs = bootstrap_aucs([oof], y, rows, 200, np.random.default_rng(seed))
    groups, _, _ = criteria_groups(scorecard_terms(card), rows, y, verb="expanded")
    out |= {
        "auc": auc(oof, y),
        "auc_ci": interval(aucs[0]),
        "criteria": [c for g in ("must_have", "strong_signal", "bonus") for c in groups[g]],
        "note": "AUC from 4-fold cross-validation over customers",
    }
    return out
