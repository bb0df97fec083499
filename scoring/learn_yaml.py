"""A fitted scorecard -> a criteria document in the schema admins edit by hand.

Per feature, the weights are shifted so its weakest level scores 0. The levels above
it are written as nested criteria, so the best level of every trait together makes
100: "employees 50-5,000" (+10) and "employees 50-500" (+15) rather than exclusive
bins that no account could all match. (A nested set that is not one range of bins is
written as one criterion per range.) The weakest levels that each hold under 20% of
accounts and sit at least 0.7 in log-odds below the trait's typical (weighted median)
level, so at half its odds or less, become anti-patterns instead ("annual_revenue 0
or less"), and the baseline moves to the next level up. A has-feature with
a negative weight is an anti-pattern ("has X"), since "lacks X" is not a condition the
schema has. Interactions become criteria or anti-patterns with a `when` of both traits.

The YAML score is `100 * matched weight / all weight - penalties` (scoring.criteria),
so with weights proportional to the points and penalties in the same unit, the YAML
score is an increasing linear function of the scorecard's log-odds: it ranks accounts
as the model does, up to rounding the weights to two decimals and clipping at 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from scoring.learn_features import HAS, NUMBER, Feature
from scoring.learn_model import Scorecard
from scoring.schema import IcpCriteria

ANTI_GAP = 0.7
ANTI_SHARE = 0.2
TOP_SHARE = 0.15
LOW_SHARE = 0.70


@dataclass
class Term:
    """One criterion (points > 0) or anti-pattern (penalty > 0) in log-odds units."""

    anti: bool
    conditions: list[dict[str, Any]]
    label: str
    points: float
    mask: np.ndarray  # over every account
    reference: tuple[str, np.ndarray] | None = None
    """The level of the same trait worth 0 points (label, mask), for the description."""


def scorecard_terms(card: Scorecard) -> list[Term]:
    """The scorecard's weights as criteria and anti-patterns (see the module docstring)."""
    terms: list[Term] = []
    for f, beta, counts in zip(card.features, card.coef, card.counts, strict=True):
        if f.kind == HAS:
            effect = float(beta[1] - beta[0])
            conditions = f.conditions((1,))
            assert conditions is not None
            terms.append(Term(effect < 0, conditions, f.label((1,)), abs(effect), f.mask((1,))))
            continue
        seen = [g for g in range(len(f.groups)) if counts[g] > 0]
        if len(seen) < 2:
            continue
        ranked = sorted(seen, key=lambda g: (beta[g], g))
        total = counts[seen].sum()
        weights = np.cumsum([counts[g] for g in ranked]) / total
        typical = float(beta[ranked[int(np.searchsorted(weights, 0.5))]])  # weighted median
        anti: list[int] = []
        for g in ranked[:-1]:  # the weakest levels, while each is a small, far-off minority
            levels = f.groups[g]
            far = float(beta[g]) <= typical - ANTI_GAP
            if not far or counts[g] / total >= ANTI_SHARE or f.conditions(levels) is None:
                break
            anti.append(g)
        rest = [g for g in ranked if g not in anti]
        zero = rest[0]
        baseline = float(beta[zero])
        for g in anti:
            levels = f.groups[g]
            conditions = f.conditions(levels)
            assert conditions is not None
            terms.append(
                Term(True, conditions, f.label(levels), baseline - float(beta[g]), f.mask(levels))
            )
        reference = (f.label(f.groups[zero]), f.mask(f.groups[zero]))
        points = {g: float(beta[g]) - baseline for g in rest}
        below = 0.0
        for level in sorted({p for p in points.values() if p > 0}):
            members = [g for g, p in points.items() if p >= level]
            for levels in _runs(f, members):
                conditions = f.conditions(levels)
                if conditions is not None:
                    term = Term(
                        False, conditions, f.label(levels), level - below, f.mask(levels), reference
                    )
                    terms.append(term)
            below = level
    for rule, effect in zip(card.rules, card.rule_effect, strict=True):
        label = " + ".join(t.label for t in rule.traits)
        terms.append(Term(bool(effect < 0), rule.conditions, label, abs(float(effect)), rule.mask))
    merged: dict[str, Term] = {}  # nesting can name one set twice: one criterion, points added
    for term in terms:
        key = repr((term.anti, term.conditions))
        if key in merged:
            merged[key].points += term.points
        else:
            merged[key] = term
    return list(merged.values())


def _runs(f: Feature, members: list[int]) -> list[tuple[int, ...]]:
    """The groups as level sets one condition can select: the missing level alone;
    numbers in runs of adjacent bins; other values together."""
    sets = [f.groups[g] for g in sorted(members, key=lambda g: f.groups[g])]
    missing = [s for s in sets if f.missing in s]
    rest = [s for s in sets if f.missing not in s]
    if f.kind != NUMBER:
        return missing + ([tuple(sorted(lv for s in rest for lv in s))] if rest else [])
    runs: list[list[int]] = []
    for s in rest:
        if runs and s[0] == runs[-1][-1] + 1:
            runs[-1] += list(s)
        else:
            runs.append(list(s))
    return [tuple(r) for r in runs] + missing


def _rule(name: str, conditions: list[dict[str, Any]]) -> dict[str, Any]:
    if len(conditions) == 1:
        return {"name": name, **conditions[0]}
    return {"name": name, "when": conditions}


def _unique(label: str, used: set[str]) -> str:
    name = label if len(label) <= 80 else label[:77] + "..."
    k = 2
    while name in used:
        suffix = f" #{k}"
        name = name[: 80 - len(suffix)] + suffix
        k += 1
    used.add(name)
    return name


def _evidence(term: Term, rows: np.ndarray, y: np.ndarray, verb: str) -> str:
    hit = term.mask[rows]
    n = int(hit.sum())
    text = f"{verb} {y[hit].mean() if n else 0.0:.0%} of {n} vs {y.mean():.0%} overall"
    if term.reference is not None:
        label, mask = term.reference
        base = mask[rows]
        text += f" and {y[base].mean() if base.any() else 0.0:.0%} for {label} (0 points)"
    return text


def criteria_groups(
    terms: list[Term], rows: np.ndarray, y: np.ndarray, verb: str = "won"
) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]]]:
    """Criteria grouped by weight (must_have / strong_signal / bonus) and anti-patterns.

    Each carries a description of its evidence on `rows`: "won 59% of 2,197 vs 47%
    overall and 27% for employees under 50 (0 points)" (`verb` names the outcome).
    """
    positive = [t for t in terms if not t.anti]
    total = sum(t.points for t in positive)
    groups: dict[str, list[dict[str, Any]]] = {"must_have": [], "strong_signal": [], "bonus": []}
    if total <= 0:
        return groups, []
    weighted = [(round(t.points / total, 2), t) for t in positive]
    weighted = [(w, t) for w, t in weighted if w >= 0.01]
    kept = sum(w for w, _ in weighted) or 1.0
    top = max((w for w, _ in weighted), default=1.0)
    used: set[str] = set()
    for w, t in sorted(weighted, key=lambda item: (-item[0], item[1].label)):
        group = "must_have" if w >= 0.5 * top else "strong_signal" if w >= 0.2 * top else "bonus"
        entry = _rule(_unique(t.label, used), t.conditions)
        entry |= {"weight": w, "description": _evidence(t, rows, y, verb)}
        groups[group].append(entry)
    anti = []
    for t in sorted((t for t in terms if t.anti), key=lambda t: (-t.points, t.label)):
        penalty = min(100.0, round(100.0 * t.points / total / kept, 1))  # schema: at most 100
        if penalty >= 0.5:
            entry = _rule(_unique(t.label, used), t.conditions)
            anti.append(entry | {"penalty": penalty, "description": _evidence(t, rows, y, verb)})
    return groups, anti


def place_tiers(scores: np.ndarray, names: list[str]) -> dict[str, float]:
    """Thresholds so the top tier holds at most ~15% of accounts, the next ones more.

    Cumulative shares run from 15% (top) to 70% for the lowest tier but one; each
    threshold is the lowest whole score whose tier share stays within its target.
    """
    k = len(names)
    targets = list(np.linspace(TOP_SHARE, LOW_SHARE, k - 1)) if k > 2 else [TOP_SHARE][: k - 1]
    values = np.sort(np.asarray(scores, dtype=float))
    n = max(values.size, 1)
    grid = np.arange(1.0, 101.0)
    share_at = 1 - np.searchsorted(values, grid, side="left") / n
    thresholds: list[float] = []
    for target in targets:
        fits = share_at <= target
        t = float(grid[np.argmax(fits)]) if fits.any() else 100.0
        thresholds.append(min(t, thresholds[-1] - 1) if thresholds else t)
    for i in range(len(thresholds) - 1, -1, -1):  # distinct, decreasing, within 1-100
        lower = 1.0 if i == len(thresholds) - 1 else thresholds[i + 1] + 1
        thresholds[i] = min(max(thresholds[i], lower), 100.0 - i)
    return dict(zip(names, [*thresholds, 0.0], strict=True))


def with_segments(manual: IcpCriteria, learned: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Learned segments (most specific first) placed so manual routing keeps working.

    When routing tests `segment`, manual segments keep their places and learned ones go
    just before the catch-all; otherwise learned segments go first, so they tag accounts.
    """
    current = [s.model_dump(by_alias=True, exclude_none=True, mode="json") for s in manual.segments]
    names = {s["name"] for s in current}
    extra = []
    for seg in learned:
        name = seg["name"] if seg["name"] not in names else f"{seg['name']} (learned)"[:80]
        if name in names:
            continue
        names.add(name)
        extra.append(
            {
                "name": name,
                "when": seg["when"],
                "description": f"learned: won {seg['win_rate']:.0%} of {seg['support']} "
                f"(lift {seg['lift']:.2f})",
            }
        )
    routes_by_segment = any(c.field == "segment" for r in manual.routing for c in r.when)
    if not routes_by_segment:
        return extra + current
    tail = [current.pop()] if current and not current[-1].get("when") else []
    return current + extra + tail
