"""The scorecard: L2-regularised logistic regression over one-hot binned traits.

`C` is chosen by time-ordered cross-validation (expanding window: fit on older closes,
judge on the next block). After a first fit, adjacent bins (and category values) whose
weights are indistinguishable are merged and the model refit, so the criteria read
"employees 50-500" rather than three near-equal bins. Two-trait interactions are added
only where the main-effects model misfits them (a score test on its residuals,
Bonferroni over every pair tried). A gradient-boosting challenger is fit on the same
rows for comparison only.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd
from icp_engine.scoring.learn.features import HAS, NUMBER, Feature
from icp_engine.scoring.learn.segments import Trait, build_traits
from icp_engine.scoring.learn.stats import normal_isf
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression
from sklearn.preprocessing import OneHotEncoder

C_GRID = (0.03, 0.1, 0.3, 1.0, 3.0, 10.0)
MAX_RULES = 8
PROBE_C = 1000.0
"""Interactions are tested against an almost unpenalised fit: shrunk main effects leave
residuals that would otherwise look like interactions."""


@dataclass
class Rule:
    """A two-trait conjunction the scorecard weighs on its own (an interaction)."""

    traits: tuple[Trait, Trait]
    mask: np.ndarray  # over every account

    @property
    def conditions(self) -> list[dict[str, Any]]:
        return [dict(c) for t in self.traits for c in t.conditions]


@dataclass
class Scorecard:
    """Fitted weights: per feature one per group of levels, per rule the in-rule effect."""

    features: list[Feature]
    rules: list[Rule]
    C: float
    coef: list[np.ndarray] = field(default_factory=list)
    rule_effect: np.ndarray = field(default_factory=lambda: np.zeros(0))
    intercept: float = 0.0
    counts: list[np.ndarray] = field(default_factory=list)

    def design(self, rows: np.ndarray) -> Any:
        codes = [f.group_codes()[rows] for f in self.features]
        codes += [r.mask[rows].astype(np.int16) for r in self.rules]
        sizes = [len(f.groups) for f in self.features] + [2] * len(self.rules)
        matrix = np.column_stack(codes) if codes else np.zeros((len(rows), 0), np.int16)
        encoder = OneHotEncoder(categories=[np.arange(s) for s in sizes], dtype=np.float64)
        return encoder.fit_transform(matrix) if codes else np.ones((len(rows), 0))

    def fit(self, rows: np.ndarray, y: np.ndarray) -> Scorecard:
        if not self.features and not self.rules:  # nothing to weigh: the base rate
            rate = float(np.clip(np.mean(y), 1e-6, 1 - 1e-6))
            self.intercept, self.coef, self.counts = float(np.log(rate / (1 - rate))), [], []
            self.rule_effect = np.zeros(0)
            return self
        model = _logistic(self.C).fit(self.design(rows), y)
        beta = model.coef_[0]
        self.intercept = float(model.intercept_[0])
        self.coef, self.counts, start = [], [], 0
        for f in self.features:
            size = len(f.groups)
            self.coef.append(beta[start : start + size])
            self.counts.append(np.bincount(f.group_codes()[rows], minlength=size))
            start += size
        pairs = beta[start:].reshape(-1, 2)
        self.rule_effect = pairs[:, 1] - pairs[:, 0]
        self.intercept += float(pairs[:, 0].sum())  # logit() adds only the in-rule effect
        return self

    def logit(self, rows: np.ndarray) -> np.ndarray:
        out = np.full(len(rows), self.intercept)
        for f, beta in zip(self.features, self.coef, strict=True):
            out += beta[f.group_codes()[rows]]
        for r, effect in zip(self.rules, self.rule_effect, strict=True):
            out += effect * r.mask[rows]
        return out


def _logistic(C: float) -> LogisticRegression:
    return LogisticRegression(C=C, max_iter=1000, tol=1e-5)


def choose_c(card: Scorecard, rows: np.ndarray, y: np.ndarray, folds: int = 3) -> float:
    """The C with the best mean log-loss over expanding time-ordered folds (rows are in
    time order); the most regularised within 0.0005 of the best wins near-ties.

    Log-loss rather than AUC: it also judges the scale of the weights, which the
    merging of levels and the anti-pattern gaps rely on."""
    if not card.features:
        return 1.0
    blocks = np.array_split(np.arange(len(rows)), folds + 1)
    design = card.design(rows)
    scores = []
    for C in C_GRID:
        results = []
        for k in range(1, folds + 1):
            fit = np.concatenate(blocks[:k])
            test = blocks[k]
            if y[fit].min() == y[fit].max() or y[test].min() == y[test].max():
                continue
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model = _logistic(C).fit(design[fit], y[fit])
            p = np.clip(model.predict_proba(design[test])[:, 1], 1e-9, 1 - 1e-9)
            results.append(-np.mean(y[test] * np.log(p) + (1 - y[test]) * np.log(1 - p)))
        scores.append(np.mean(results) if results else 1.0)
    best = min(scores)
    return next(C for C, s in zip(C_GRID, scores, strict=True) if s <= best + 0.0005)


@dataclass
class _Group:
    levels: list[int]
    weight: float
    n: float

    def join(self, other: _Group) -> _Group:
        n = self.n + other.n
        return _Group(
            self.levels + other.levels, (self.weight * self.n + other.weight * other.n) / n, n
        )


def _distance(a: _Group, b: _Group, spread: float) -> float:
    """Weight gap in units of max(0.1, two standard errors of the difference)."""
    return abs(a.weight - b.weight) / max(0.1, 2 * np.sqrt((1 / a.n + 1 / b.n) / spread))


def merge_levels(card: Scorecard, p0: float) -> bool:
    """Merge adjacent bins / category values whose weights differ by less than noise.

    Two groups merge when their weights differ by less than max(0.1, 2 standard errors
    of the difference); the missing level never merges. Returns whether anything merged.
    """
    changed = False
    spread = max(p0 * (1 - p0), 1e-3)
    for f, beta, counts in zip(card.features, card.coef, card.counts, strict=True):
        if f.kind == HAS:
            continue
        items = [
            _Group(list(levels), float(b), max(float(n), 1e-6))
            for levels, b, n in zip(f.groups, beta, counts, strict=True)
            if f.missing not in levels
        ]
        if f.kind != NUMBER:
            items.sort(key=lambda g: (g.weight, g.levels))
        while len(items) > 1:
            ratio, i = min((_distance(a, b, spread), i) for i, (a, b) in enumerate(pairwise(items)))
            if ratio >= 1:
                break
            items[i : i + 2] = [items[i].join(items[i + 1])]
            changed = True
        groups = sorted(tuple(sorted(g.levels)) for g in items)
        f.groups = groups + ([(f.missing,)] if f.missing is not None else [])
    return changed


def find_rules(
    card: Scorecard,
    rows: np.ndarray,
    y: np.ndarray,
    features: list[Feature],
    min_support: int,
    alpha: float = 0.01,
) -> list[Rule]:
    """Forward selection of trait pairs the main-effects model misfits.

    Each round computes a score test for adding every pair's indicator to a nearly
    unpenalised model (residual sum over the pair against its binomial variance), adds
    the strongest if it passes Bonferroni over all pairs tried, refits and repeats, so a
    rule that only echoes one already added (a country inside an added region) falls
    away. The caller refits the scorecard with the rules at its own C.
    """
    traits, matrix = build_traits(features, rows, min_support)
    if len(traits) < 2:
        return []
    m = matrix.astype(np.float32)
    support = m.T @ m
    single = np.diag(support)
    fields = np.array([t.field for t in traits], dtype=object)
    ok = (
        np.triu(np.ones_like(support, dtype=bool), 1)
        & (fields[:, None] != fields[None, :])
        & (support >= min_support)
        & (support < 0.98 * np.minimum(single[:, None], single[None, :]))
    )
    i, j = np.nonzero(ok)
    if i.size == 0:
        return []
    crit = normal_isf(alpha / (2 * i.size))
    probe = Scorecard(card.features, [], PROBE_C).fit(rows, y)  # near maximum likelihood
    taken = np.zeros(i.size, dtype=bool)
    while len(probe.rules) < MAX_RULES:
        p = 1 / (1 + np.exp(-probe.logit(rows)))
        residual = m.T @ (m * (y - p)[:, None].astype(np.float32))
        variance = m.T @ (m * (p * (1 - p))[:, None].astype(np.float32))
        z = np.where(taken, 0.0, residual[i, j] / np.sqrt(np.maximum(variance[i, j], 1e-9)))
        k = int(np.lexsort((j, i, -np.abs(z)))[0])
        if abs(z[k]) <= crit:
            break
        taken[k] = True
        a, b = traits[i[k]], traits[j[k]]
        mask = features[a.feature].mask(a.levels) & features[b.feature].mask(b.levels)
        probe.rules = [*probe.rules, Rule((a, b), mask)]
        probe.fit(rows, y)
    return probe.rules


ANTI_GAP = 0.7
ANTI_SHARE = 0.2


def level_roles(
    f: Feature, beta: np.ndarray, counts: np.ndarray
) -> tuple[list[int], int, list[int]] | None:
    """How a fitted trait's groups are written: (anti-pattern groups, the 0-point group,
    every group that is not an anti-pattern, weakest first); None below two groups seen.

    The weakest groups become anti-patterns while each holds under `ANTI_SHARE` of the
    accounts and sits at least `ANTI_GAP` in log-odds (half the odds) below the trait's
    typical (weighted median) group; the weakest of the rest scores 0.
    """
    seen = [g for g in range(len(f.groups)) if counts[g] > 0]
    if len(seen) < 2:
        return None
    ranked = sorted(seen, key=lambda g: (beta[g], g))
    total = counts[seen].sum()
    weights = np.cumsum([counts[g] for g in ranked]) / total
    typical = float(beta[ranked[int(np.searchsorted(weights, 0.5))]])  # weighted median
    anti: list[int] = []
    for g in ranked[:-1]:
        if float(beta[g]) > typical - ANTI_GAP or counts[g] / total >= ANTI_SHARE:
            break
        anti.append(g)
    rest = [g for g in ranked if g not in anti]
    return anti, rest[0], rest


def constrain_missing(card: Scorecard, rows: np.ndarray, y: np.ndarray, rounds: int = 3) -> None:
    """Missing is not a trait: where an unknown value would earn points (weigh more than
    the trait's 0-point group), it joins that group and the scorecard is refit, so the
    weights are the best fit under "unknown earns nothing". Unknown values that predict
    losing keep their own level (they may become an anti-pattern)."""
    for _ in range(rounds):
        changed = False
        for f, beta, counts in zip(card.features, card.coef, card.counts, strict=True):
            if f.kind == HAS or f.missing is None:
                continue
            roles = level_roles(f, beta, counts)
            if roles is None:
                continue
            anti, zero, _ = roles
            m = next(g for g, levels in enumerate(f.groups) if f.missing in levels)
            if m == zero or m in anti or counts[m] == 0 or beta[m] <= beta[zero]:
                continue
            joined = tuple(sorted(f.groups[zero] + f.groups[m]))
            f.groups = sorted([g for i, g in enumerate(f.groups) if i not in (m, zero)] + [joined])
            changed = True
        if not changed:
            return
        card.fit(rows, y)


def fit_scorecard(
    features: list[Feature],
    candidates: list[Feature],
    rows: np.ndarray,
    y: np.ndarray,
    min_support: int,
    C: float | None = None,
    interactions: bool = True,
) -> Scorecard:
    """Choose C (unless given), add interactions, fit, merge indistinguishable levels, refit.

    Interactions are searched before levels merge: a merged main effect (Healthcare lumped
    with Retail while its EMEA accounts lift it) would leave misfits that look like more
    interactions.
    """
    card = Scorecard(features, [], C or 1.0)
    if C is None:
        card.C = choose_c(card, rows, y)
    if interactions:
        card.rules = find_rules(card, rows, y, candidates, min_support)
    card.fit(rows, y)
    if merge_levels(card, float(y.mean())):
        card.fit(rows, y)
    constrain_missing(card, rows, y)
    return card


def add_value(card: Scorecard, rows: np.ndarray, y: np.ndarray, amount: np.ndarray) -> bool:
    """`objective: expected_value`: rank by P(win) x expected deal size.

    A ridge regression of log(won amount) on the same levels is added to the win
    log-odds, so the scorecard's total approximates log(P(win)) + log(deal size) (the
    log-odds is close to log P(win) where wins are a minority) and stays a sum of
    points per level, writable as criteria. Returns False (nothing added) with fewer
    than 30 won deals that carry an amount.
    """
    from sklearn.linear_model import Ridge

    won = y & np.isfinite(amount) & (amount > 0)
    if won.sum() < 30 or (not card.features and not card.rules):
        return False
    model = Ridge(alpha=1.0).fit(card.design(rows[won]), np.log(amount[won]))
    gamma, start = model.coef_, 0
    for i, f in enumerate(card.features):
        size = len(f.groups)
        card.coef[i] = card.coef[i] + gamma[start : start + size]
        start += size
    pairs = gamma[start:].reshape(-1, 2)
    card.rule_effect = card.rule_effect + (pairs[:, 1] - pairs[:, 0])
    card.intercept += float(model.intercept_) + float(pairs[:, 0].sum())
    return True


def challenger(
    frame: pd.DataFrame,
    features: list[Feature],
    train: np.ndarray,
    y_train: np.ndarray,
    test: np.ndarray,
    seed: int,
) -> np.ndarray:
    """HistGradientBoosting on the raw traits; returns its win probability on `test`."""
    columns, categorical = [], []
    for f in features:
        if f.kind == NUMBER:
            columns.append(pd.to_numeric(frame[f.field], errors="coerce").to_numpy(float))
            categorical.append(False)
        elif f.kind == HAS:
            columns.append(f.codes.astype(float))
            categorical.append(False)
        else:
            codes = f.codes.astype(float)
            columns.append(np.where(codes == f.missing, np.nan, codes))
            categorical.append(True)
    matrix = np.column_stack(columns) if columns else np.zeros((len(frame), 1))
    model = HistGradientBoostingClassifier(
        max_iter=200,
        learning_rate=0.1,
        max_leaf_nodes=15,
        min_samples_leaf=20,
        l2_regularization=1.0,
        categorical_features=np.array(categorical or [False]),
        early_stopping=True,
        random_state=seed,
    )
    model.fit(matrix[train], y_train)
    return np.asarray(model.predict_proba(matrix[test])[:, 1])
