"""The SDR checklist: per tier, what to confirm on a first call, and the red flags.

`checklist` works out the shortest path to each tier's threshold from the criteria;
`conditions_text` says conditions the way an SDR would; `checklist_section` is the
report's card per tier.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from icp_engine.scoring.report import html as h
from icp_engine.scoring.schema import Condition, IcpCriteria


@dataclass(frozen=True)
class TierChecklist:
    """What an SDR confirms to put an account in one tier."""

    tier: str
    summary: str
    confirm: list[str]
    also: str
    flags: list[str]


def checklist(criteria: IcpCriteria) -> list[TierChecklist]:
    """Per tier, the shortest set of criteria worth its threshold, and the red flags.

    Must-haves come first (all of them when they do not reach the threshold on their own,
    else the fewest that do); the highest-weighted other criteria make up the rest. The
    red flags are the anti-patterns: their penalties, and caps that keep an account out.
    """
    items = criteria.all_criteria()
    total = sum(c.weight for _, _, c in items) or 1.0
    weighted = [(g, c, 100.0 * c.weight / total) for g, _, c in items]
    tiers = criteria.tier_order()
    rank = {name: i for i, (name, _) in enumerate(tiers)}
    result = []
    for i, (name, threshold) in enumerate(tiers):
        if threshold <= 0 or not weighted:
            text = f"Score under {h.points_text(tiers[i - 1][1])}: everything else." if i else ""
            text += " No qualification needed: nurture."
            result.append(TierChecklist(name, text.strip(), [], "", []))
            continue
        must = [w for w in weighted if w[0] == "must_have"]
        must_points = sum(p for _, _, p in must)
        if must_points >= threshold:
            path = _fewest(must, threshold)
        else:
            path = must + _fewest(
                [w for w in weighted if w[0] != "must_have"], threshold - must_points
            )
        path.sort(key=weighted.index)
        summary = (
            f"Score {h.points_text(threshold)}+: needs {h.points_text(threshold)} of 100 points."
        )
        reached = sum(p for _, _, p in path)
        if reached + 1e-9 < threshold:
            summary += f" Out of reach: all criteria together give {h.points_text(reached)}."
        confirm = [
            f"confirm {conditions_text(c.conditions())} (+{h.points_text(p)})" for _, c, p in path
        ]
        rest = [w for w in weighted if w not in path]
        also = "; ".join(
            f"{conditions_text(c.conditions())} (+{h.points_text(p)})" for _, c, p in rest
        )
        flags = []
        for anti in criteria.anti_patterns:
            effects = [f"{h.MINUS}{h.points_text(anti.penalty)} points"] if anti.penalty else []
            if anti.cap_tier is not None and rank.get(anti.cap_tier, -1) > i:
                effects.append(f"never above Tier {anti.cap_tier}")
            if effects:
                said = conditions_text(anti.conditions())
                named = said if anti.name.casefold() == said.casefold() else anti.name
                flags.append(
                    f"{named}: {', '.join(effects)}"
                    if named == said
                    else f"{named} ({said}): {', '.join(effects)}"
                )
        result.append(
            TierChecklist(
                name, summary, confirm, f"Also adds points: {also}." if also else "", flags
            )
        )
    return result


def _fewest(weighted: list[tuple[str, Any, float]], need: float) -> list[tuple[str, Any, float]]:
    chosen: list[tuple[str, Any, float]] = []
    for item in sorted(weighted, key=lambda w: -w[2]):
        if sum(p for _, _, p in chosen) + 1e-9 >= need:
            break
        chosen.append(item)
    return chosen


def conditions_text(conditions: list[Condition]) -> str:
    """Conditions as an SDR would say them, in field labels: `Employees 50-499 and
    Industry: Media` (`scoring.labels`)."""
    return " and ".join(c.describe() for c in conditions)


def checklist_section(criteria: IcpCriteria) -> str:
    cards = []
    for tier in checklist(criteria):
        body = f"<p>{h.esc(tier.summary)}</p>"
        if tier.confirm:
            body += h.bullets(tier.confirm, "check")
        if tier.also:
            body += f'<p class="muted">{h.esc(tier.also)}</p>'
        if tier.flags:
            body += f"<strong>Red flags</strong>{h.bullets(tier.flags, 'flags')}"
        cards.append(f'<div class="card"><h3>Tier {h.esc(tier.tier)}</h3>{body}</div>')
    lead = "What to confirm on a first call, generated from the criteria."
    return h.section("checklist", "Qualification checklist", h.cards(cards, "narrow"), lead)
