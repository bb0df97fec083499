"""A fitted scorecard -> a criteria document in the schema admins edit by hand.

Per trait, the fitted groups of levels (bins of a number, groups of text values) are
mutually exclusive, so each becomes its own criterion and an account earns at most one
reason per trait. The weakest group that is not an anti-pattern scores 0 and every other
group earns its weight above it; the weakest small groups far below the trait's typical
level become anti-patterns ("Fewer than 10 employees", "Headcount unknown"), see
`scoring.learn_model.level_roles`. An unknown value never earns points
(`constrain_missing`). A has-feature with a negative weight is an anti-pattern ("has X").
Interactions become criteria or anti-patterns with a `when` of both traits.

Weights are written as points (`scale: {weights: points, base: B}`): one log-odds unit
is `100 / (best total + worst total penalty)` points and every account starts at `B`, the
worst total penalty, so the score is an increasing linear function of the scorecard's
log-odds that runs from 0 (every worst level) to 100 (every best level): nothing is cut
off at 0 or 100 and the score ranks accounts as the model does, up to rounding. The
totals are those one account can reach (`reachable`): an interaction does not add to a
level of its own field it never occurs with, so the range is not spent on totals no
account earns, which would make the whole-point score tie accounts the model separates.
(The one assumption: two values of a multi-value field never seen together on an account
are taken not to co-occur; an account that later holds both would be clipped, which the
flattening figures count.)
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from icp_engine.scoring.labels import describe_rule, field_label
from icp_engine.scoring.learn.features import CATEGORY, HAS, Feature
from icp_engine.scoring.learn.model import Scorecard, level_roles
from icp_engine.scoring.schema import IcpCriteria

DEFAULT_TIER_SHARES = {"A": 0.15, "B": 0.25, "C": 0.30}
"""Target share of accounts per tier, best first; the lowest tier takes the rest."""


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
    trait: int = 0
    """Which trait (feature or interaction) it belongs to: its levels exclude each other."""
    rule: bool = False
    """An interaction: it applies only with both of its traits' levels."""

    @property
    def fields(self) -> set[str]:
        return {str(c["field"]) for c in self.conditions}


def level_name(conditions: list[dict[str, Any]]) -> str:
    """The name a learned criterion or anti-pattern carries (and reasons show), in field
    labels: "Employees 50-499", "Industry: Technology/SaaS", "Headcount unknown"."""
    return describe_rule(conditions)


def _parts(f: Feature, levels: tuple[int, ...]) -> list[tuple[int, ...]]:
    """A group as sets one condition list selects: its known levels, then unknown alone."""
    known = tuple(lv for lv in levels if lv != f.missing)
    parts = [known] if known else []
    return parts + ([(f.missing,)] if f.missing is not None and f.missing in levels else [])


def _group_name(f: Feature, part: tuple[int, ...], conditions: list[dict[str, Any]]) -> str:
    """A group holding "every other value" is named by the values it holds, not by the
    long list it excludes: "Industry: Retail, Media or other"."""
    if f.kind != CATEGORY or f.other is None or f.other not in part:
        return level_name(conditions)
    kept = [f.values[i] for i in part if i != f.other]
    if not kept:
        return f"{field_label(f.field)}: any other"
    return level_name([{"field": f.field, "in": kept}]) + " or other"


def _level_terms(
    f: Feature, levels: tuple[int, ...], anti: bool, points: float, trait: int, reference: Any
) -> list[Term]:
    out = []
    for part in _parts(f, levels):
        conditions = f.conditions(part)
        if conditions is None or (not anti and f.missing in part):
            continue  # unknown earns nothing (only a group it was joined to can hold it)
        name = _group_name(f, part, conditions)
        out.append(Term(anti, conditions, name, points, f.mask(part), reference, trait))
    return out


def scorecard_terms(card: Scorecard) -> list[Term]:
    """The scorecard's weights as criteria and anti-patterns (see the module docstring)."""
    terms: list[Term] = []
    for index, (f, beta, counts) in enumerate(
        zip(card.features, card.coef, card.counts, strict=True)
    ):
        if f.kind == HAS:
            effect = float(beta[1] - beta[0])
            conditions = f.conditions((1,))
            assert conditions is not None
            name = level_name(conditions)
            terms.append(Term(effect < 0, conditions, name, abs(effect), f.mask((1,)), None, index))
            continue
        roles = level_roles(f, beta, counts)
        if roles is None:
            continue
        anti, zero, rest = roles
        baseline = float(beta[zero])
        zero_known = _parts(f, f.groups[zero])[0]
        zero_conditions = f.conditions(zero_known) if zero_known else None
        reference = (
            (level_name(zero_conditions), f.mask(f.groups[zero])) if zero_conditions else None
        )
        for g in anti:
            terms += _level_terms(f, f.groups[g], True, baseline - float(beta[g]), index, None)
        for g in rest[1:]:
            points = float(beta[g]) - baseline
            if points > 0:
                terms += _level_terms(f, f.groups[g], False, points, index, reference)
    for k, (rule, effect) in enumerate(zip(card.rules, card.rule_effect, strict=True)):
        label = " + ".join(level_name(list(t.conditions)) for t in rule.traits)
        terms.append(
            Term(
                bool(effect < 0),
                rule.conditions,
                label,
                abs(float(effect)),
                rule.mask,
                None,
                len(card.features) + k,
                rule=True,
            )
        )
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


def _evidence(term: Term, rows: np.ndarray, y: np.ndarray, verb: str) -> str:
    hit = term.mask[rows]
    n = int(hit.sum())
    text = f"{verb} {y[hit].mean() if n else 0.0:.0%} of {n} vs {y.mean():.0%} overall"
    if term.reference is not None:
        label, mask = term.reference
        base = mask[rows]
        text += f" and {y[base].mean() if base.any() else 0.0:.0%} for {label} (0 points)"
    return text


def reachable(terms: list[Term], anti: bool) -> float:
    """The largest total of points (or of penalties, `anti`) one account can earn.

    Per trait the best level counts; an interaction counts only with levels it can
    co-occur with: a level of a field the interaction also conditions on, that no account
    holds together with the interaction (Technology/SaaS with "Healthcare + EMEA"), is
    left out. Summing every trait's best regardless would waste part of the 0-100 range
    on totals no account reaches, and the whole-point rounding of the score would then
    tie accounts the model tells apart.
    """
    side = [t for t in terms if t.anti == anti]
    rules = [t for t in side if t.rule][:8]
    levels = [t for t in side if not t.rule]
    best = 0.0
    for pick in range(1 << len(rules)):
        chosen = [r for i, r in enumerate(rules) if pick >> i & 1]
        if any(
            a.fields & b.fields and not (a.mask & b.mask).any()
            for i, a in enumerate(chosen)
            for b in chosen[i + 1 :]
        ):
            continue
        per_trait: dict[int, float] = {}
        for t in levels:
            if any(t.fields & r.fields and not (t.mask & r.mask).any() for r in chosen):
                continue
            per_trait[t.trait] = max(per_trait.get(t.trait, 0.0), t.points)
        best = max(best, sum(per_trait.values()) + sum(r.points for r in chosen))
    return best


def criteria_groups(
    terms: list[Term], rows: np.ndarray, y: np.ndarray, verb: str = "won"
) -> tuple[dict[str, list[dict[str, Any]]], list[dict[str, Any]], dict[str, Any]]:
    """Criteria grouped by weight (must_have / strong_signal / bonus), anti-patterns, and
    the `scale:` that makes their points run from 0 to 100 (see the module docstring).

    Each carries a description of its evidence on `rows`: "won 59% of 2,197 vs 47%
    overall and 27% for employees under 50 (0 points)" (`verb` names the outcome).
    """
    groups: dict[str, list[dict[str, Any]]] = {"must_have": [], "strong_signal": [], "bonus": []}
    best: dict[int, float] = {}
    worst: dict[int, float] = {}
    for t in terms:
        side = worst if t.anti else best
        side[t.trait] = max(side.get(t.trait, 0.0), t.points)
    span = reachable(terms, anti=False) + reachable(terms, anti=True)
    if sum(best.values()) <= 0:
        return groups, [], {"weights": "points", "base": 0.0}
    unit = 100.0 / span  # points per log-odds unit
    positive = [(math.floor(t.points * unit * 100) / 100, t) for t in terms if not t.anti]
    positive = [(w, t) for w, t in positive if w >= 0.01]
    top = max((w for w, _ in positive), default=1.0)
    used: set[str] = set()
    for w, t in sorted(positive, key=lambda item: (-item[0], item[1].label)):
        group = "must_have" if w >= 0.5 * top else "strong_signal" if w >= 0.2 * top else "bonus"
        entry = _rule(_unique(t.label, used), t.conditions)
        entry |= {"weight": w, "description": _evidence(t, rows, y, verb)}
        groups[group].append(entry)
    anti = []
    penalties: dict[int, float] = {}
    for t in sorted((t for t in terms if t.anti), key=lambda t: (-t.points, t.label)):
        penalty = min(100.0, round(t.points * unit, 2))
        if penalty >= 0.01:
            entry = _rule(_unique(t.label, used), t.conditions)
            anti.append(entry | {"penalty": penalty, "description": _evidence(t, rows, y, verb)})
            penalties[t.trait] = max(penalties.get(t.trait, 0.0), penalty)
    base = min(100.0, round(sum(penalties.values()), 2))
    return groups, anti, {"weights": "points", "base": base}


def place_tiers(
    scores: np.ndarray, names: list[str], shares: dict[str, float] | None = None
) -> dict[str, float]:
    """Score cut-offs giving each tier (best first) about its target share of `scores`.

    `shares` names the target share of every tier but the lowest (which takes the rest);
    by default A 15%, B 25%, C 30%. The cut-offs are chosen among the distinct scores
    (dynamic programming: the smallest total gap between the cumulative shares reached
    and the targets) so that every tier holds at least one account whenever there are
    at least as many distinct scores as tiers: an empty tier would be a defect.
    """
    k = len(names)
    wanted = _targets(names, shares)
    values = np.sort(np.asarray(scores, dtype=float))[::-1]
    distinct, counts = np.unique(values, return_counts=True)
    distinct, counts = distinct[::-1], counts[::-1]  # best first
    if k == 1 or values.size == 0:
        return dict(zip(names, [*(100.0 - i for i in range(k - 1)), 0.0], strict=True))
    cumulative = np.cumsum(counts) / values.size  # share at or above each distinct score
    m = distinct.size
    targets = np.cumsum(wanted)
    if m < k:  # too few distinct scores: the best get a tier each, tiers below stay empty
        low = float(distinct[m - 2]) if m > 1 else 100.0
        filler = np.linspace(low, float(distinct[-1]), k - m + 2)[1:-1]
        cuts = [float(v) for v in distinct[: m - 1]] + [float(v) for v in filler]
    else:
        # cost[j][i]: best total gap with cut j at distinct index i (tier j ends there)
        inf = float("inf")
        cost = np.full((k - 1, m), inf)
        back = np.zeros((k - 1, m), dtype=int)
        for i in range(m - (k - 1)):
            cost[0, i] = abs(cumulative[i] - targets[0])
        for j in range(1, k - 1):  # best earlier cut through a running minimum: O(k m)
            best = np.minimum.accumulate(cost[j - 1])
            fresh = cost[j - 1] < np.concatenate([[inf], best[:-1]])  # a new minimum starts
            where = np.maximum.accumulate(np.where(fresh, np.arange(m), 0))
            hi = m - (k - 1 - j)
            cost[j, j:hi] = best[j - 1 : hi - 1] + np.abs(cumulative[j:hi] - targets[j])
            back[j, j:hi] = where[j - 1 : hi - 1]
        last = int(np.argmin(cost[k - 2, : m - 1]))
        picks = [last]
        for j in range(k - 2, 0, -1):
            picks.append(int(back[j, picks[-1]]))
        cuts = [float(distinct[i]) for i in reversed(picks)]
    thresholds = [round(float(min(max(c, 0.0), 100.0)), 2) for c in cuts]
    return dict(zip(names, [*thresholds, 0.0], strict=True))


def _targets(names: list[str], shares: dict[str, float] | None) -> list[float]:
    """Target share per tier but the lowest, best first (configured, else the defaults
    by position: 15%, 25%, 30%, ... scaled to leave the lowest tier a share)."""
    k = len(names)
    given = shares or {}
    defaults = list(DEFAULT_TIER_SHARES.values())
    out = []
    for i, name in enumerate(names[:-1]):
        if name in given:
            out.append(float(given[name]))
        else:
            out.append(defaults[i] if i < len(defaults) else 0.7 / max(k - 1, 1))
    total = sum(out)
    if total >= 1.0:
        out = [v * 0.95 / total for v in out]
    return out


def with_segments(manual: IcpCriteria, learned: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The hand-written segments first, in their order, then the learned ones.

    The rule (the admin stays in charge): every account a hand-written segment tags keeps
    that segment, so routing on it keeps working; learned segments (most specific first,
    each described `learned: ...`) only tag accounts no hand-written segment takes, and
    go before a hand-written catch-all (a segment without `when`), which stays last.
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
    tail = [current.pop()] if current and not current[-1].get("when") else []
    return current + extra + tail
