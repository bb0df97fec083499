"""What changed between two criteria documents, as rows a person reads in one screen.

`compare(before, after)` takes two criteria (a `scoring.schema.IcpCriteria` or the parsed
YAML dict of an `icp.yaml` or a learned version) and lists: criteria added, removed,
re-weighted (their share of the score moved), moved to another group, given another
rule or renamed (the same rule under a new name); anti-patterns added, removed or
changed; tier cut-offs moved; segments and routes added or removed. Weights read as
points of a 100-point score (a weight's share of all weights), so a hand-written file
and a learned one compare on one scale. Where a document records the win rate a
criterion stood for (a learned file does: "won 65% of 339 ..."), it is shown beside it.

Learned files may give weights as points (`scale: {weights: points}`); they are read as
scoring reads them.

`table` renders the rows; `render` prints them, or says there is nothing to compare.
The full YAML diff stays available on request (`--yaml-diff`).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from icp_engine.scoring.schema import GROUPS, IcpCriteria
from icp_engine.sync import numbers
from rich.console import Console
from rich.table import Table
from rich.text import Text

IGNORED = {"name", "weight", "description", "penalty", "cap_tier", "group"}
"""Keys that are not part of a rule's condition."""
_WON = re.compile(r"won (\d+(?:\.\d+)?)% of ([\d,]+)")
POINTS_MOVE = 0.5
"""A criterion whose points moved less than this is not called re-weighted."""
CHANGE_ORDER = ("added", "removed", "re-weighted", "rule changed", "moved", "renamed")


@dataclass(frozen=True)
class Change:
    """One row: what changed about which item, before and after."""

    change: str
    kind: str
    name: str
    before: str
    after: str
    win_rate: str = numbers.NO_DATA
    accounts: str = numbers.NO_DATA


def _document(criteria: IcpCriteria | dict[str, Any] | None) -> dict[str, Any]:
    if criteria is None:
        return {}
    if isinstance(criteria, IcpCriteria):
        return criteria.model_dump(by_alias=True, exclude_none=True)
    return criteria


def _criteria(doc: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """name -> criterion (with its group and its points of 100)."""
    groups = doc.get("criteria") or {}
    found: list[dict[str, Any]] = []
    if isinstance(groups, dict):
        for group in [*GROUPS, *(g for g in groups if g not in GROUPS)]:
            for item in groups.get(group) or []:
                if isinstance(item, dict) and item.get("name"):
                    found.append({**item, "group": group})
    total = sum(float(c.get("weight") or 0) for c in found) or 1.0
    scale: dict[str, Any] = doc["scale"] if isinstance(doc.get("scale"), dict) else {}
    # as scoring.criteria adds them: a weight's share of (100 - base), or the weight itself
    base = float(scale.get("base") or 0)
    unit = 1.0 if scale.get("weights") == "points" else (100.0 - base) / total
    return {str(c["name"]): {**c, "points": unit * float(c.get("weight") or 0)} for c in found}


def _rule(item: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in item.items() if k not in IGNORED and k != "points"}


def _evidence(item: dict[str, Any] | None) -> tuple[str, str]:
    """(win rate, accounts) the document records for a criterion, else "no data"."""
    if not item:
        return numbers.NO_DATA, numbers.NO_DATA
    rate, support = item.get("win_rate"), item.get("support")
    if rate is not None:
        return numbers.share(rate), numbers.count(support)
    found = _WON.search(str(item.get("description") or ""))
    if not found:
        return numbers.NO_DATA, numbers.NO_DATA
    return f"{found.group(1)}%", found.group(2)


def _weight(item: dict[str, Any], group: bool = False) -> str:
    text = numbers.points(item["points"])
    return f"{text} ({str(item['group']).replace('_', ' ')})" if group else text


def _anti(item: dict[str, Any]) -> str:
    parts = [numbers.points(-float(item["penalty"]), signed=True)] if item.get("penalty") else []
    parts += [f"at most tier {item['cap_tier']}"] if item.get("cap_tier") else []
    return ", ".join(parts) or "no effect"


def _tier_evidence(doc: dict[str, Any], tier: str) -> tuple[str, str]:
    """The win rate and closed deals a learned file records for `tier`."""
    learned = doc.get("learned")
    entries = learned.get("tiers") if isinstance(learned, dict) else None
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, dict) and str(entry.get("tier")) == tier:
            return numbers.share(entry.get("win_rate")), numbers.count(entry.get("closed"))
    return numbers.NO_DATA, numbers.NO_DATA


def _either(first: tuple[str, str], second: tuple[str, str]) -> tuple[str, str]:
    return first if first[0] != numbers.NO_DATA else second


def _criteria_rows(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    rows: list[Change] = []
    was, now = _criteria(old), _criteria(new)
    pairs = [(name, name) for name in was.keys() & now.keys()]
    renamed = _same_rules(
        {n: was[n] for n in was.keys() - now.keys()}, {n: now[n] for n in now.keys() - was.keys()}
    )
    pairs += renamed
    for name in now.keys() - was.keys() - {b for _, b in renamed}:
        item = now[name]
        rows.append(Change("added", "criterion", name, "-", _weight(item), *_evidence(item)))
    for name in was.keys() - now.keys() - {a for a, _ in renamed}:
        item = was[name]
        rows.append(Change("removed", "criterion", name, _weight(item), "-", *_evidence(item)))
    for before, after in pairs:
        a, b = was[before], now[after]
        moved = a["group"] != b["group"]
        change = (
            "rule changed"
            if _rule(a) != _rule(b)
            else "re-weighted"
            if abs(a["points"] - b["points"]) >= POINTS_MOVE
            else "moved"
            if moved
            else "renamed"
            if before != after
            else None
        )
        if change:
            evidence = _either(_evidence(b), _evidence(a))
            texts = _weight(a, moved), _weight(b, moved)
            name = after if before == after else f"{after} (was {before})"
            rows.append(Change(change, "criterion", name, *texts, *evidence))
    return rows


def _same_rules(
    removed: dict[str, dict[str, Any]], added: dict[str, dict[str, Any]]
) -> list[tuple[str, str]]:
    """(old name, new name) of criteria that kept their rule under another name."""
    by_rule = {_rule_key(item): name for name, item in added.items()}
    pairs = []
    for name, item in removed.items():
        match = by_rule.pop(_rule_key(item), None)
        if match is not None:
            pairs.append((name, match))
    return pairs


def _rule_key(item: dict[str, Any]) -> str:
    return json.dumps(_rule(item), sort_keys=True, default=str)


def _anti_rows(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    rows: list[Change] = []
    olds = {str(a.get("name")): a for a in old.get("anti_patterns") or [] if isinstance(a, dict)}
    news = {str(a.get("name")): a for a in new.get("anti_patterns") or [] if isinstance(a, dict)}
    for name in news.keys() - olds.keys():
        item = news[name]
        rows.append(Change("added", "anti-pattern", name, "-", _anti(item), *_evidence(item)))
    for name in olds.keys() - news.keys():
        item = olds[name]
        rows.append(Change("removed", "anti-pattern", name, _anti(item), "-", *_evidence(item)))
    for name in olds.keys() & news.keys():
        a, b = olds[name], news[name]
        change = "re-weighted" if _anti(a) != _anti(b) else None
        change = change or ("rule changed" if _rule(a) != _rule(b) else None)
        if change:
            evidence = _either(_evidence(b), _evidence(a))
            rows.append(Change(change, "anti-pattern", name, _anti(a), _anti(b), *evidence))
    return rows


def _tier_rows(old: dict[str, Any], new: dict[str, Any]) -> list[Change]:
    rows: list[Change] = []
    tiers_a, tiers_b = old.get("tiers") or {}, new.get("tiers") or {}

    def cut(value: Any) -> str:
        return "-" if value is None else f"from {numbers.points(value)}"

    for tier in sorted(tiers_a.keys() | tiers_b.keys()):
        a_cut, b_cut = tiers_a.get(tier), tiers_b.get(tier)
        if a_cut != b_cut:
            change = "added" if a_cut is None else "removed" if b_cut is None else "moved"
            evidence = _either(_tier_evidence(new, str(tier)), _tier_evidence(old, str(tier)))
            texts = cut(a_cut), cut(b_cut)
            rows.append(Change(change, "tier cut-off", str(tier), *texts, *evidence))
    return rows


def compare(
    before: IcpCriteria | dict[str, Any] | None, after: IcpCriteria | dict[str, Any] | None
) -> list[Change]:
    """Every difference a person cares about between two criteria documents."""
    old, new = _document(before), _document(after)
    rows = _criteria_rows(old, new) + _anti_rows(old, new) + _tier_rows(old, new)
    for key, kind, label in (("segments", "segment", "name"), ("routing", "route", "route")):
        a_names = [str(s.get(label)) for s in old.get(key) or [] if isinstance(s, dict)]
        b_names = [str(s.get(label)) for s in new.get(key) or [] if isinstance(s, dict)]
        rows += [Change("added", kind, n, "-", "new") for n in b_names if n not in a_names]
        rows += [Change("removed", kind, n, "was there", "-") for n in a_names if n not in b_names]
    order = {c: i for i, c in enumerate(CHANGE_ORDER)}
    kinds = ("criterion", "anti-pattern", "tier cut-off", "segment", "route")
    return sorted(rows, key=lambda r: (kinds.index(r.kind), order.get(r.change, 9), r.name))


def counts(rows: list[Change]) -> str:
    """`3 added, 2 removed, 5 re-weighted` over the criteria and anti-patterns."""
    tally: dict[str, int] = {}
    for row in rows:
        tally[row.change] = tally.get(row.change, 0) + 1
    return ", ".join(f"{numbers.count(tally[c])} {c}" for c in CHANGE_ORDER if c in tally)


def table(rows: list[Change], title: str) -> Table:
    grid = Table(title=f"{title}: {counts(rows)}", title_justify="left")
    for column in ("change", "name", "before", "after", "win rate", "accounts"):
        right = column in ("win rate", "accounts")
        grid.add_column(column, justify="right" if right else "left", overflow="fold")
    styles = {"added": "green", "removed": "red"}
    for row in rows:
        grid.add_row(
            Text(f"{row.change} {row.kind}", style=styles.get(row.change, "yellow")),
            row.name,
            row.before,
            row.after,
            "-" if row.win_rate == numbers.NO_DATA else row.win_rate,
            "-" if row.accounts == numbers.NO_DATA else row.accounts,
        )
    grid.caption = (
        "pts: a criterion's share of a 100-point score; win rate and accounts (closed deals, "
        "for a tier) as the file records them; -: it records none"
    )
    return grid


def render(
    console: Console,
    before: IcpCriteria | dict[str, Any] | None,
    after: IcpCriteria | dict[str, Any] | None,
    title: str,
) -> list[Change]:
    """Print the changes from `before` to `after` (or that there are none); return them."""
    rows = compare(before, after)
    if rows:
        console.print(table(rows, title))
    else:
        console.print(
            f"{title}: no differences in criteria, weights, tiers, segments or routes.",
            highlight=False,
        )
    return rows
