"""Field labels and the phrases a seller reads: `Industry: Technology/SaaS`, `Employees 50-499`.

Every canonical field has a human label (`DEFAULT_LABELS` for the built-in and derived
fields; a mapping's `label:` for extra attributes). Criteria names, reasons, segment
names, the SDR checklist, the terminal and the report all go through `describe_level`,
so no code identifier (`annual_revenue`, `is empty`) reaches a person. Numbers are
rounded to what someone would say (74,999,999 -> $75M), dates read `7 Dec 2024`.

The mapping's labels reach code that names things deep inside learning (trait labels,
segment names) through `using_labels(...)`, a context the CLI sets around `train` and
`report`; an explicit `labels` argument always wins over it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

DEFAULT_LABELS: dict[str, str] = {
    # Accounts: built-in canonical fields
    "account_id": "Account ID",
    "name": "Account name",
    "domain": "Website",
    "industry": "Industry",
    "employees": "Employees",
    "annual_revenue": "Revenue",
    "country": "Country",
    "region": "Region",
    "state": "State/Province",
    "created_at": "Created",
    "modified_at": "Last modified",
    # Common extras of the bundled mappings
    "type": "Account type",
    "ownership": "Ownership",
    "rating": "Rating",
    "source": "Lead source",
    "year_started": "Year founded",
    "funding_stage": "Funding stage",
    "employees_last_year": "Employees last year",
    "technologies": "Technologies",
    # Derived features (scoring/features.py)
    "employee_growth": "Headcount growth",
    "tech_count": "Technologies used",
    "company_age": "Company age",
    "won_deals": "Won deals",
    "lost_deals": "Lost deals",
    "open_deals": "Open deals",
    "won_amount": "Won revenue",
    "is_customer": "Customer",
    # Opportunities
    "opportunity_id": "Opportunity ID",
    "stage": "Stage",
    "is_closed": "Closed",
    "is_won": "Won",
    "amount": "Deal amount",
    "closed_at": "Close date",
    "loss_reason": "Loss reason",
    # What scoring produces (routing may test these)
    "score": "ICP score",
    "tier": "Tier",
    "segment": "Segment",
    "route": "Route",
    "reasons": "Reasons",
    "win_probability": "Win probability",
    "expansion": "Expansion score",
}
"""Canonical field -> the label people read. A mapping's `label:` wins over these."""


@dataclass(frozen=True)
class _Style:
    """How a field's levels are phrased.

    kind: "count" (a noun after the number: `500+ employees`), "money" (`$10M-$50M`),
    "years" (`3-10 years old`), "year" (`Founded 2015-2019`), "percent" (a fraction
    shown as %), "date", "bool", or "plain" (label + number).
    """

    kind: str = "plain"
    noun: str = ""
    singular: str = ""
    unknown: str = ""
    yes: str = ""
    no: str = ""
    falling: str = ""
    rising: str = ""


_STYLES: dict[str, _Style] = {
    "employees": _Style("count", "employees", "employee", unknown="Headcount unknown"),
    "employees_last_year": _Style("count", "employees last year", "employee last year"),
    "annual_revenue": _Style("money", unknown="Revenue unknown"),
    "won_amount": _Style("money"),
    "amount": _Style("money"),
    "company_age": _Style("years", unknown="Company age unknown"),
    "year_started": _Style("year", unknown="Founding year unknown"),
    "employee_growth": _Style(
        "percent",
        unknown="Headcount growth unknown",
        falling="Headcount shrinking",
        rising="Headcount growing",
    ),
    "tech_count": _Style("count", "technologies", "technology"),
    "won_deals": _Style("count", "won deals", "won deal"),
    "lost_deals": _Style("count", "lost deals", "lost deal"),
    "open_deals": _Style("count", "open deals", "open deal"),
    "created_at": _Style("date"),
    "modified_at": _Style("date"),
    "closed_at": _Style("date"),
    "is_customer": _Style("bool", yes="Existing customer", no="Not yet a customer"),
    "is_won": _Style("bool", yes="Won", no="Not won"),
    "is_closed": _Style("bool", yes="Closed", no="Open"),
    "win_probability": _Style("plain"),
}
_MONEY_WORDS = re.compile(r"(revenue|amount|arr|mrr|acv|tcv|budget|spend|funding_total)")
_CUSTOM_SUFFIX = re.compile(r"(__c|__pc|_c)$", re.IGNORECASE)


_ACTIVE: ContextVar[Mapping[str, str] | None] = ContextVar("icp_field_labels", default=None)


@contextmanager
def using_labels(labels: Mapping[str, str] | None) -> Iterator[None]:
    """Within the block, phrases without an explicit `labels` use these (a mapping's)."""
    token = _ACTIVE.set(dict(labels) if labels else None)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def _labels(labels: Mapping[str, str] | None) -> Mapping[str, str] | None:
    return labels if labels is not None else _ACTIVE.get()


def field_label(field: str, labels: Mapping[str, str] | None = None) -> str:
    """The label people read for a canonical field.

    A mapping's label (`labels`) wins, then `DEFAULT_LABELS`; any other field reads as
    its name in words (`deal_stage_score__c` -> `Deal stage score`), never with
    underscores.
    """
    labels = _labels(labels)
    if labels and labels.get(field):
        return str(labels[field])
    if field in DEFAULT_LABELS:
        return DEFAULT_LABELS[field]
    words = _CUSTOM_SUFFIX.sub("", field).replace("_", " ").replace(".", " ").strip()
    words = re.sub(r"(?<=[a-z])(?=[A-Z])", " ", words)  # camelCase -> camel Case
    words = " ".join(words.split())
    words = re.sub(r" k$", " (thousands)", words)  # revenue_k -> Revenue (thousands)
    return words[:1].upper() + words[1:].lower() if words else field


def _style(field: str, labels: Mapping[str, str] | None) -> _Style:
    if labels and labels.get(field):  # an admin's own label: phrase generically with it
        base = _STYLES.get(field)
        if base is not None and base.kind in ("money", "years", "year", "percent", "date", "bool"):
            return _Style(base.kind)
        return _Style("money") if _MONEY_WORDS.search(field.lower()) else _Style()
    if field in _STYLES:
        return _STYLES[field]
    return _Style("money") if _MONEY_WORDS.search(field.lower()) else _Style()


# ---- numbers, money, dates -------------------------------------------------------------


def _readable(value: float) -> float:
    """Round a band edge to what a person says: 74,999,999 -> 75,000,000; 499 stays."""
    if value == 0 or not math.isfinite(value):
        return value
    magnitude = abs(value)
    if magnitude < 100_000:  # small counts stay exact: "Employees 10-4,999"
        return round(value, 2) if magnitude < 10 else float(round(value))
    # Edges just under a round number (x,999 / x99,999) are bins "up to the next one".
    digits = 2 if magnitude >= 1_000_000 else 3
    rounded = float(f"{value:.{digits}g}")
    return rounded if abs(rounded - value) / magnitude < 0.02 else float(round(value))


def format_number(value: Any) -> str:
    """1234 -> `1,234`; 2.5 -> `2.5`; 3.0 -> `3`."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(number):
        return str(value)
    number = _readable(number)
    if float(number).is_integer():
        return f"{int(number):,}"
    return f"{number:,.2f}".rstrip("0").rstrip(".")


def format_money(value: Any) -> str:
    """74,999,999 -> `$75M`; 1,500,000 -> `$1.5M`; 250,000 -> `$250K`; 900 -> `$900`."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return str(value)
    if not math.isfinite(number):
        return str(value)
    sign = "-" if number < 0 else ""
    number = abs(number)
    for size, suffix in ((1e9, "B"), (1e6, "M"), (1e3, "K")):
        if number >= size * 0.9995:
            scaled = round(number / size, 1)
            if scaled >= 1000 and suffix != "B":
                continue
            text = f"{scaled:.1f}".rstrip("0").rstrip(".")
            if scaled >= 10:
                text = f"{round(number / size):,}"
            return f"{sign}${text}{suffix}"
    return f"{sign}${round(number):,}"


def format_percent(fraction: Any) -> str:
    """0.25 -> `25%`; -0.1 -> `-10%`; 0.005 -> `0.5%`."""
    try:
        number = float(fraction) * 100
    except (TypeError, ValueError):
        return str(fraction)
    if not math.isfinite(number):
        return str(fraction)
    if abs(number) >= 10 or float(round(number)) == round(number, 1):
        return f"{round(number):,}%"
    return f"{round(number, 1)}%"


def human_date(value: Any) -> str:
    """`2024-12-07T00:00:00+00:00` -> `7 Dec 2024`; a time is kept only when not midnight.

    Text that is not a date is returned as given; empty values read as an empty string.
    """
    if value is None or (isinstance(value, float) and math.isnan(value)) or value == "":
        return ""
    stamp: datetime
    if isinstance(value, datetime):
        stamp = value
    elif isinstance(value, date):
        return f"{value.day} {value.strftime('%b %Y')}"
    else:
        text = str(value).strip()
        try:
            stamp = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return text
    day = f"{stamp.day} {stamp.strftime('%b %Y')}"
    if (stamp.hour, stamp.minute) == (0, 0):
        return day
    zone = " UTC" if stamp.utcoffset() is not None and not stamp.utcoffset() else ""
    return f"{day}, {stamp.strftime('%H:%M')}{zone}"


def format_points(value: Any) -> str:
    """Score points as reasons, tables and cards all show them: whole points (`12`), a
    tenth only below one point (`0.4`)."""
    number = _number(value) or 0.0
    magnitude = abs(number)
    if magnitude >= 0.95:
        return str(round(magnitude))
    rounded = round(magnitude, 1)
    return str(int(rounded)) if float(rounded).is_integer() else f"{rounded:.1f}"


def _value(value: Any, style: _Style) -> str:
    if isinstance(value, bool):
        return "yes" if value else "no"
    if style.kind == "money":
        return format_money(value)
    if style.kind == "percent":
        return format_percent(value)
    if style.kind == "year":
        try:
            return str(round(float(value)))
        except (TypeError, ValueError):
            return str(value)
    if style.kind == "date" or isinstance(value, date | datetime):
        return human_date(value)
    if isinstance(value, int | float):
        return format_number(value)
    return str(value)


MAX_LISTED = 4
"""Values listed in one phrase; more read `A, B, C and 2 others` (the YAML has them all)."""


def _listed(values: Iterable[str], conjunction: str = "or") -> str:
    items = list(values)
    if len(items) > MAX_LISTED:
        rest = len(items) - (MAX_LISTED - 1)
        return f"{', '.join(items[: MAX_LISTED - 1])} and {rest} others"
    if len(items) <= 1:
        return "".join(items)
    return f"{', '.join(items[:-1])} {conjunction} {items[-1]}"


def _truth(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().casefold() in ("true", "1", "yes")
    return bool(value)


# ---- phrases ---------------------------------------------------------------------------


def describe_level(field: str, op: str, value: Any, labels: Mapping[str, str] | None = None) -> str:
    """One condition as a seller says it.

    Args:
        field: the canonical field tested.
        op: the operator (`eq`, `in`, `not_in`, `between`, `gt`, `gte`, `lt`, `lte`,
            `is_null`, `contains`).
        value: its operand as written in the criteria.
        labels: the mapping's labels (field -> label), which win over the defaults.

    Returns:
        e.g. `Industry: Technology/SaaS`, `Industry: A, B or C`, `Employees 50-499`,
        `Revenue $10M-$50M`, `Fewer than 10 employees`, `Revenue under $1M`,
        `500+ employees`, `3-10 years old`, `Headcount unknown`, `Existing customer`.
    """
    labels = _labels(labels)
    label = field_label(field, labels)
    style = _style(field, labels)
    many = list(value) if isinstance(value, list | tuple) else [value]

    if op == "is_null":
        if _truth(value):
            return style.unknown or f"{label} unknown"
        return f"{label} known"
    if style.kind == "bool" and op in ("eq", "in", "not_in"):
        wanted = {_truth(v) for v in many}
        if op == "not_in":
            wanted = {True, False} - wanted
        if len(wanted) != 1:
            return f"{label} known"
        yes = wanted.pop()
        if style.yes:
            return style.yes if yes else style.no
        return f"{label}: {'yes' if yes else 'no'}"
    if op == "eq":
        return _equals(label, style, value)
    if op == "in":
        return _equals(label, style, many) if len(many) > 1 else _equals(label, style, many[0])
    if op == "not_in":
        return f"{label}: not {_listed((_value(v, style) for v in many), 'or')}"
    if op == "contains":
        listed = _listed((_value(v, style) for v in many), "or")
        return f"Uses {listed}" if field == "technologies" else f"{label} includes {listed}"
    if op == "between":
        return _between(label, style, many[0], many[-1])
    if op in ("lt", "lte", "gt", "gte"):
        return _bound(label, style, op, value)
    return f"{label} {op} {_value(value, style)}"


def _equals(label: str, style: _Style, value: Any) -> str:
    if style.kind == "money" and _number(value) == 0:
        return "Pre-revenue" if label == "Revenue" else f"No {label.lower()}"
    if isinstance(value, list):
        return f"{label}: {_listed(_value(v, style) for v in value)}"
    if style.kind == "count" and style.noun and isinstance(value, int | float):
        noun = style.singular if float(value) == 1 else style.noun
        return f"{format_number(value)} {noun}"
    if style.kind == "years" and isinstance(value, int | float):
        return f"{format_number(value)} {'year' if float(value) == 1 else 'years'} old"
    if style.kind == "year":
        return f"Founded in {_value(value, style)}"
    return f"{label}: {_value(value, style)}"


def _between(label: str, style: _Style, low: Any, high: Any) -> str:
    if style.kind == "years":
        return f"{format_number(low)}-{format_number(high)} years old"
    if style.kind == "year":
        return f"Founded {_value(low, style)}-{_value(high, style)}"
    if style.kind == "date":
        return f"{label} {_value(low, style)} to {_value(high, style)}"
    low_text, high_text = _value(low, style), _value(high, style)
    if style.kind == "money" and _number(low) is not None and abs(_number(low) or 0) <= 1:
        return f"{label} up to {high_text}"
    if low_text == high_text:
        return _equals(label, style, low)
    return f"{label} {low_text}-{high_text}"


def _number(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


# How a one-sided bound reads, per kind of value ("default": any other kind) and operator.
_BOUND_PHRASES: dict[str, dict[str, str]] = {
    "count": {
        "lt": "Fewer than {text} {noun}",
        "lte": "{text} or fewer {noun}",
        "gt": "More than {text} {noun}",
        "gte": "{text}+ {noun}",
    },
    "years": {
        "lt": "Under {text} years old",
        "lte": "{text} years old or younger",
        "gt": "Over {text} years old",
        "gte": "{text}+ years old",
    },
    "year": {
        "lt": "Founded before {text}",
        "lte": "Founded in {text} or earlier",
        "gt": "Founded after {text}",
        "gte": "Founded in {text} or later",
    },
    "date": {
        "lt": "{label} before {text}",
        "lte": "{label} on or before {text}",
        "gt": "{label} after {text}",
        "gte": "{label} on or after {text}",
    },
    "default": {
        "lt": "{label} under {text}",
        "lte": "{label} {text} or less",
        "gt": "{label} over {text}",
        "gte": "{label} {text}+",
    },
}


def _bound(label: str, style: _Style, op: str, value: Any) -> str:
    text = _value(value, style)
    if style.falling and _number(value) == 0:
        return style.falling if op in ("lt", "lte") else style.rising
    number = _number(value)
    if style.kind == "money" and number is not None:
        none = (op == "lte" and number <= 0) or (op == "lt" and 0 < number <= 1)
        some = (op == "gt" and number == 0) or (op == "gte" and 0 < number <= 1)
        if none:
            return "Pre-revenue" if label == "Revenue" else f"No {label.lower()}"
        if some:
            return f"Has {label.lower()}"
    kind = "default" if style.kind == "count" and not style.noun else style.kind
    template = _BOUND_PHRASES.get(kind, _BOUND_PHRASES["default"])[op]
    return template.format(label=label, text=text, noun=style.noun)


def describe_conditions(
    conditions: Iterable[Any], labels: Mapping[str, str] | None = None, joiner: str = ", "
) -> str:
    """Several conditions (objects with `field`, `operators()` and `operand()`) as one phrase."""
    parts = [describe_level(c.field, c.operators()[0], c.operand(), labels) for c in conditions]
    return joiner.join(parts)


def describe_rule(
    conditions: Iterable[Mapping[str, Any]],
    labels: Mapping[str, str] | None = None,
    joiner: str = " and ",
) -> str:
    """Conditions as written in YAML (`{field: employees, between: [50, 499]}`) as a phrase.

    A `gte` and an `lt` on the same field read as one range (`Employees 50-499`, the
    upper bound shown as the last value inside it when the field holds whole numbers).
    """
    by_field: dict[str, dict[str, Any]] = {}
    for condition in conditions:
        ops = {k: v for k, v in condition.items() if k != "field"}
        by_field.setdefault(str(condition["field"]), {}).update(ops)
    parts: list[str] = []
    for field, ops in by_field.items():
        low = ops.get("gte", ops.get("gt"))
        high = ops.get("lt", ops.get("lte"))
        if low is not None and high is not None and len(ops) == 2:
            parts.append(describe_level(field, "between", [low, high], labels))
            continue
        parts += [describe_level(field, op, value, labels) for op, value in ops.items()]
    return joiner.join(parts)
