"""Segment names a seller would say, built from a segment's conditions with a vocabulary.

Deterministic: the same conditions always give the same name. The words are the ones
of the bundled criteria (`mappings/icp.yaml`): company size is small business (under 50
employees), mid-market (50-5,000) or enterprise (over 5,000); company age is startup
(under 3 years), scale-up (3-10) or established (over 10); revenue reads `pre-revenue`
or as a band (`$10M-$50M revenue`); industries are named by their values; a region or
country reads `in EMEA`; a technology `using Salesforce`. Anything else is added in
field labels (`scoring.labels`), so a name never shows a code identifier:
`Mid-market Technology/SaaS scale-ups, 3-10 years old`, `Healthcare in EMEA`.
The optional LLM naming (`scoring.naming`) may suggest a catchier name beside it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Any

from icp_engine.scoring.labels import describe_level, describe_rule, format_money, format_number

MAX_NAME = 80
SIZE_BANDS = (("Small business", 0.0, 49.0), ("Mid-market", 50.0, 5000.0))
ENTERPRISE_FROM = 5001.0
AGE_BANDS = (("startups", 0.0, 2.0), ("scale-ups", 3.0, 10.0))
ESTABLISHED_FROM = 11.0
REVENUE_SIZE = (("Small business", 0.0, 10e6), ("Mid-market", 10e6, 1e9))
"""Size by revenue, used only when the segment says nothing about headcount."""
WHOLE_NUMBER_FIELDS = {"employees", "company_age", "year_started", "tech_count"}
PLACES = {"region", "country", "state"}


def _range(field: str, ops: Mapping[str, Any]) -> tuple[float, float] | None:
    """The closed interval a field's numeric conditions allow, or None if not numeric."""
    step = 1.0 if field in WHOLE_NUMBER_FIELDS else 1e-9
    low, high = -math.inf, math.inf
    try:
        for op, value in ops.items():
            if op == "between":
                low, high = max(low, float(value[0])), min(high, float(value[1]))
            elif op == "eq" and not isinstance(value, str | bool):
                low, high = max(low, float(value)), min(high, float(value))
            elif op == "gte":
                low = max(low, float(value))
            elif op == "gt":
                low = max(low, float(value) + step)
            elif op == "lte":
                high = min(high, float(value))
            elif op == "lt":
                high = min(high, float(value) - step)
            else:
                return None
    except (TypeError, ValueError, IndexError):
        return None
    return low, high


def _band(bounds: tuple[float, float], bands: Iterable[tuple[str, float, float]]) -> str | None:
    low, high = bounds
    for word, band_low, band_high in bands:
        if low >= band_low - 1e-9 and high <= band_high + 1e-9 and high >= band_low:
            return word
    return None


def _size(bounds: tuple[float, float]) -> str | None:
    if bounds[0] >= ENTERPRISE_FROM:
        return "Enterprise"
    return _band((max(bounds[0], 0.0), bounds[1]), SIZE_BANDS)


def _age(bounds: tuple[float, float]) -> str | None:
    if bounds[0] >= ESTABLISHED_FROM:
        return "established companies"
    return _band((max(bounds[0], 0.0), bounds[1]), AGE_BANDS)


def _span(bounds: tuple[float, float], money: bool = False) -> str:
    show = format_money if money else format_number
    low, high = bounds
    if math.isinf(high):
        return f"{show(low)}+"
    if math.isinf(low) or low <= 0:
        return f"under {show(high)}" if money else f"up to {show(high)}"
    return f"{show(low)}-{show(high)}"


def _values(ops: Mapping[str, Any]) -> list[str] | None:
    if "eq" in ops and len(ops) == 1 and isinstance(ops["eq"], str):
        return [ops["eq"]]
    if "in" in ops and len(ops) == 1 and all(isinstance(v, str) for v in ops["in"]):
        return [str(v) for v in ops["in"]]
    return None


def _either(values: list[str]) -> str:
    if len(values) > 3:
        return f"{', '.join(values[:2])} and {len(values) - 2} other"
    return " or ".join(values) if len(values) <= 2 else f"{values[0]}, {values[1]} or {values[2]}"


def _lower_first(text: str) -> str:
    if len(text) > 1 and text[0].isupper() and text[1].islower():
        return text[0].lower() + text[1:]
    return text


def segment_name(
    conditions: Iterable[Mapping[str, Any]], labels: Mapping[str, str] | None = None
) -> str:
    """A seller's name for the accounts matching every condition (see the module docstring).

    Args:
        conditions: YAML-shaped conditions (`{field: employees, between: [100, 300]}`).
        labels: the mapping's field labels, for fields outside the vocabulary.
    """
    by_field: dict[str, dict[str, Any]] = {}
    for condition in conditions:
        ops = {k: v for k, v in condition.items() if k != "field"}
        by_field.setdefault(str(condition["field"]), {}).update(ops)

    size: str | None = None
    noun: str | None = None
    core: list[str] = []
    tail: list[str] = []
    qualifiers: list[str] = []
    for field, ops in by_field.items():
        if ops.get("is_null") is True:
            qualifiers.append(describe_level(field, "is_null", True, labels))
            continue
        bounds = _range(field, ops)
        values = _values(ops)
        if field == "employees" and bounds is not None:
            size = _size(bounds)
            if size is None:
                qualifiers.append(f"{_span(bounds)} employees")
        elif field == "company_age" and bounds is not None:
            noun = _age(bounds)
            qualifiers.append(f"{_span(bounds)} years old")
        elif field == "annual_revenue" and bounds is not None:
            if bounds[1] <= 0:
                core.insert(0, "Pre-revenue")
            elif bounds[0] <= 1 and math.isinf(bounds[1]):
                core.insert(0, "Revenue-generating")
            else:
                qualifiers.append(f"{_span(bounds, money=True)} revenue")
                if "employees" not in by_field:
                    size = _band((max(bounds[0], 0.0), bounds[1]), REVENUE_SIZE) or (
                        "Enterprise" if bounds[0] >= 1e9 else None
                    )
        elif field == "industry" and values:
            core.append(_either(values))
        elif field in PLACES and values:
            tail.append(f"in {_either(values)}")
        elif field == "technologies" and "contains" in ops and len(ops) == 1:
            used = ops["contains"] if isinstance(ops["contains"], list) else [ops["contains"]]
            tail.append(f"using {_either([str(v) for v in used])}")
        elif field == "is_customer" and len(ops) == 1 and "eq" in ops:
            core.append("customers" if ops["eq"] is True else "prospects")
        else:  # values before ranges: `Funding stage: Seed, up to 499 employees`
            phrase = describe_rule([{"field": field, **ops}], labels)
            qualifiers.insert(0 if bounds is None else len(qualifiers), phrase)

    head_words = [w for w in (size, *core) if w]
    if noun == "established companies":
        head_words = ["Established", *([size.lower()] if size else []), *core, "companies"]
    elif noun:
        head_words.append(noun)
    elif size == "Small business" and not core:
        head_words = ["Small businesses"]
    elif size and not core:
        head_words.append("companies")
    if not head_words and len(tail) == 1 and tail[0].startswith("using "):
        tail = [f"{tail[0].removeprefix('using ')} users"]
    elif not head_words and tail and tail[0].startswith("in "):
        head_words = ["Accounts"]
    head = " ".join(head_words + tail)
    if head:
        head = head[0].upper() + head[1:]
        text = ", ".join([head, *(_lower_first(q) for q in qualifiers)])
    else:
        text = ", ".join(qualifiers) or "All accounts"
        text = text[0].upper() + text[1:]
    return text if len(text) <= MAX_NAME else text[: MAX_NAME - 3].rstrip(" ,") + "..."
