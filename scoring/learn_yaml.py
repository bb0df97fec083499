"""A fitted scorecard -> a criteria document in the schema admins edit by hand.

Per feature, the weights are shifted so its weakest level scores 0; every level above
it becomes a criterion worth its distance from the weakest. A level far below all the
others (at least 0.7 in log-odds, so roughly half the odds or less) held by a minority
becomes an anti-pattern instead, and the baseline moves to the next level up. A
has-feature with a negative weight is an anti-pattern ("has X"), since "lacks X" is
not a condition the schema has. Interactions become criteria or anti-patterns with a
`when` of both traits.

The YAML score is `100 * matched weight / all weight - penalties` (scoring.criteria),
so with weights proportional to the points and penalties in the same unit, the YAML
score is an increasing linear function of the scorecard's log-odds: it ranks accounts
as the model does, up to rounding the weights to two decimals and clipping at 0.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from scoring.learn_features import HAS
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
        low, second = ranked[0], ranked[1]
        baseline = float(beta[low])
        anti = None
        gap = float(beta[second] - beta[low])
        share = counts[low] / counts[seen].sum()
        if gap >= ANTI_GAP and share < ANTI_SHARE and f.conditions(f.groups[low]) is not None:
            anti, baseline = low, float(beta[second])
            levels = f.groups[low]
            conditions = f.conditions(levels)
            assert conditions is not None
            terms.append(Term(True, conditions, f.label(levels), gap, f.mask(levels)))
        for g in ranked:
            levels = f.groups[g]
            points = float(beta[g]) - baseline
            conditions = f.conditions(levels)
            if g != anti and points > 0 and conditions is not None:
                terms.append(Term(False, conditions, f.label(levels), points, f.mask(levels)))
    for rule, effect in zip(card.rules, card.rule_effect, strict=True):
        label = " + ".join(t.label for t in rule.traits)
        terms.append(Term(bool(effect < 0), rule.conditions, label, abs(float(effect)), rule.mask))
    return terms


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


def _evidence(mask: np.ndarray, rows: np.ndarray, y: np.ndarray) -> str:
    hit = mask[rows]
    n = int(hit.sum())
    rate = y[hit].mean() if n else 0.0
    return f"won {rate:.0%} of {n} closed vs {y.mean():.0%} overall"


def criteria_groups(
    terms: list[Term], rows: np.ndarray, y: np.ndarray
) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]]]:
    """Criteria grouped by weight (must_have / strong_signal / bonus) and anti-patterns."""
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
        entry |= {"weight": w, "description": _evidence(t.mask, rows, y)}
        groups[group].append(entry)
    anti = []
    for t in sorted((t for t in terms if t.anti), key=lambda t: (-t.points, t.label)):
        penalty = min(100.0, round(100.0 * t.points / total / kept, 1))  # schema: at most 100
        if penalty >= 0.5:
            entry = _rule(_unique(t.label, used), t.conditions)
            anti.append(entry | {"penalty": penalty, "description": _evidence(t.mask, rows, y)})
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
