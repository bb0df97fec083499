"""Reading the rules `train` writes, for `bench/bench_learn.py`.

Their conditions, the fields and values they test, the ranges they set on numbers, and
short texts of them and their points for the tables.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from icp_engine.scoring.learn.train import TrainResult
from icp_engine.scoring.schema import OPERATORS, Condition

GROUPS = ("must_have", "strong_signal", "bonus")


def conditions(rule: dict[str, Any]) -> list[dict[str, Any]]:
    """A rule's conditions: its inline one (if any) and those under `when`."""
    inline = {k: v for k, v in rule.items() if k == "field" or k in OPERATORS}
    return ([inline] if "field" in inline else []) + list(rule.get("when") or [])


def condition_text(condition: dict[str, Any]) -> str:
    """The schema's wording (`origin = unknown`, `origin is empty`: unambiguous where a value
    is literally "unknown", unlike the learner's labels), long lists and ids shortened."""
    c, more = dict(condition), ""
    op = next(op for op in OPERATORS if op in c)
    values = c[op] if isinstance(c[op], list) else None
    if values is not None:
        short = [v[:8] + "~" if isinstance(v, str) and len(v) > 16 else v for v in values]
        if op in ("in", "not_in", "contains") and len(short) > 3:
            short, more = short[:2], f" +{len(short) - 2} more"
        c[op] = short
    return Condition.model_validate(c).describe() + more


def rule_text(rule: dict[str, Any], width: int = 90) -> str:
    text = " and ".join(condition_text(c) for c in conditions(rule))
    return text if len(text) <= width else text[: width - 3] + "..."


def criteria_rules(document: dict[str, Any]) -> list[tuple[str, dict[str, Any]]]:
    """(where, rule) for every criterion, anti-pattern and segment of a criteria document."""
    out = [(g, c) for g in GROUPS for c in document.get("criteria", {}).get(g, [])]
    out += [("anti-pattern", a) for a in document.get("anti_patterns", [])]
    out += [("segment", s) for s in document.get("segments", []) if s.get("when")]
    return out


def reported_rules(result: TrainResult) -> list[tuple[str, dict[str, Any]]]:
    """(where, entry) for every reported segment, anti-pattern, emerging and loss pattern."""
    out = [("segment", s) for s in result.segments]
    out += [("anti-pattern", a) for a in result.anti_patterns]
    out += [("emerging", e) for e in result.emerging]
    out += [("loss pattern", p) for p in result.loss_patterns]
    return out


def uses(rule: dict[str, Any], field: str, value: Any = None) -> bool:
    """Whether a rule tests `field` (and, given `value`, names it in its operand)."""
    for c in conditions(rule):
        if c.get("field") != field:
            continue
        if value is None:
            return True
        operand = next((c[op] for op in OPERATORS if op in c), None)
        values = operand if isinstance(operand, list) else [operand]
        if value in values:
            return True
    return False


def bounds(rule: dict[str, Any], field: str) -> tuple[float, float] | None:
    """(low, high) of a range the rule sets on a numeric field, or None."""
    low, high, seen = -np.inf, np.inf, False
    for c in conditions(rule):
        if c.get("field") != field:
            continue
        seen = True
        if "between" in c:
            low, high = max(low, c["between"][0]), min(high, c["between"][1])
        for op, side in (("gt", "low"), ("gte", "low"), ("lt", "high"), ("lte", "high")):
            if op in c:
                low, high = (max(low, c[op]), high) if side == "low" else (low, min(high, c[op]))
        if "eq" in c:
            low = high = c["eq"]
    return (float(low), float(high)) if seen else None


def points_text(rule: dict[str, Any]) -> str:
    if rule.get("weight"):
        return f"weight {rule['weight']:g}"
    parts = [f"-{rule['penalty']:g} points"] if rule.get("penalty") else []
    parts += [f"cap tier {rule['cap_tier']}"] if rule.get("cap_tier") else []
    return ", ".join(parts) or "-"
