"""The ICP criteria file (`mappings/icp.yaml`): its schema and its cross-checks.

Criteria come in three groups (must-have, strong signal, bonus), each a condition on a
canonical field with a weight; tiers are score thresholds; anti-patterns subtract points
or cap the tier; segments and routing are first-match rules. Hand-written and learned
criteria share this schema, so every score stays explainable and every change diffable.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime
from typing import Annotated, Any, Literal

from icp_engine.scoring.labels import describe_level
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

Scalar = str | int | float | bool
Path = tuple[str | int, ...]
OPERATORS = ("eq", "in", "not_in", "between", "gt", "gte", "lt", "lte", "is_null", "contains")
ORDERED_OPERATORS = ("between", "gt", "gte", "lt", "lte")
COMPUTED_FIELDS = {"score": "number", "tier": "text", "segment": "text"}
"""Fields routing rules may use besides account fields: what scoring itself produced."""
GROUPS = ("must_have", "strong_signal", "bonus")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, populate_by_name=True)


class _Operators(_Strict):
    """The operator keys a condition may carry; exactly one is set."""

    eq: Scalar | date | datetime | None = None
    in_: list[Scalar] | None = Field(default=None, alias="in", min_length=1)
    not_in: Annotated[list[Scalar], Field(min_length=1)] | None = None
    between: Annotated[list[float | date | datetime], Field(min_length=2, max_length=2)] | None = (
        None
    )
    gt: float | date | datetime | None = None
    gte: float | date | datetime | None = None
    lt: float | date | datetime | None = None
    lte: float | date | datetime | None = None
    is_null: bool | None = None
    contains: Scalar | list[Scalar] | None = None

    def operators(self) -> list[str]:
        return [op for op in OPERATORS if getattr(self, "in_" if op == "in" else op) is not None]

    def operand(self) -> Any:
        (op,) = self.operators()
        return getattr(self, "in_" if op == "in" else op)

    def _check_operators(self, required: bool) -> None:
        ops = self.operators()
        if len(ops) > 1:
            msg = f"a condition takes exactly one operator. Got {', '.join(ops)}"
            raise ValueError(msg)
        if required and not ops:
            msg = f"a condition needs one operator: {', '.join(OPERATORS)}"
            raise ValueError(msg)
        if self.between is not None and self.between[0] > self.between[1]:  # type: ignore[operator]
            msg = f"between needs [low, high] with low <= high. Got {self.between}"
            raise ValueError(msg)


class Condition(_Operators):
    """`{field: employees, between: [50, 500]}`: true where the account's value matches."""

    field: Annotated[str, Field(min_length=1)]

    @model_validator(mode="after")
    def _one_operator(self) -> Condition:
        self._check_operators(required=True)
        return self

    def describe(self) -> str:
        """The condition in a seller's words and field labels: `Employees 50-499`."""
        return describe_level(self.field, self.operators()[0], self.operand())


class _Rule(_Operators):
    """A rule with its condition written inline (`field` + operator), under `when`, or both."""

    field: str | None = None
    when: list[Condition] = Field(default_factory=list)

    def conditions(self) -> list[Condition]:
        inline = []
        if self.field is not None:
            data = self.model_dump(include={"field", *self._op_attrs()}, exclude_none=True)
            inline = [
                Condition.model_validate({("in" if k == "in_" else k): v for k, v in data.items()})
            ]
        return inline + list(self.when)

    def _op_attrs(self) -> set[str]:
        return {"in_" if op == "in" else op for op in OPERATORS}

    def _check_rule(self, needs_condition: bool) -> None:
        self._check_operators(required=self.field is not None)
        if self.operators() and self.field is None:
            msg = "an operator needs a `field` to test"
            raise ValueError(msg)
        if needs_condition and self.field is None and not self.when:
            msg = "needs a condition: `field` with an operator, or a `when` list"
            raise ValueError(msg)


class Criterion(_Rule):
    """A trait of good-fit accounts and its weight in the score."""

    name: Annotated[str, Field(min_length=1, max_length=80)]
    weight: Annotated[float, Field(gt=0, le=100)]
    description: str | None = None

    @model_validator(mode="after")
    def _valid(self) -> Criterion:
        self._check_rule(needs_condition=True)
        return self


class AntiPattern(_Rule):
    """A trait of poor-fit accounts: subtracts `penalty` points and/or caps the tier."""

    name: Annotated[str, Field(min_length=1, max_length=80)]
    penalty: Annotated[float, Field(gt=0, le=100)] | None = None
    cap_tier: str | None = None
    description: str | None = None

    @model_validator(mode="after")
    def _valid(self) -> AntiPattern:
        self._check_rule(needs_condition=True)
        if self.penalty is None and self.cap_tier is None:
            msg = "an anti-pattern needs `penalty` (points to subtract) or `cap_tier` (or both)"
            raise ValueError(msg)
        return self


class Segment(_Strict):
    """A named group of accounts; the first segment whose `when` holds is the account's."""

    name: Annotated[str, Field(min_length=1, max_length=80)]
    when: list[Condition] = Field(default_factory=list)
    description: str | None = None


class Route(_Strict):
    """Where accounts matching `when` go (a queue, a team, an owner); first match wins."""

    route: Annotated[str, Field(min_length=1, max_length=255)]
    when: list[Condition] = Field(default_factory=list)


class Groups(_Strict):
    must_have: list[Criterion] = Field(default_factory=list)
    strong_signal: list[Criterion] = Field(default_factory=list)
    bonus: list[Criterion] = Field(default_factory=list)


class Scale(_Strict):
    """`scale:` how criteria weights become the 0-100 score (optional; learned files set it).

    `weights: share` (the default): a criterion adds `100 * weight / all weight`.
    `weights: points`: a criterion adds its weight as points. Every account starts at
    `base` points; penalties subtract. `icp train` writes points with a base equal to the
    largest total penalty an account can get, so no score is cut off at 0 or 100.
    """

    weights: Literal["share", "points"] = "share"
    base: Annotated[float, Field(ge=0, le=100)] = 0.0


class Calibration(_Strict):
    """`calibration:` score -> win probability, fitted by `icp train` on its holdout.

    P(win) = 1 / (1 + exp(-(intercept + slope * score))); scoring writes it, as 0-100,
    into the optional `win_probability` output.
    """

    method: Literal["platt"] = "platt"
    intercept: float
    slope: float
    ece: float | None = None
    """Expected calibration error on the holdout (cross-fitted), for people reading."""


class IcpCriteria(_Strict):
    """A whole criteria file."""

    version: Literal[1] = 1
    name: str | None = None
    description: str | None = None
    criteria: Groups
    tiers: dict[str, Annotated[float, Field(ge=0, le=100)]] = Field(
        default_factory=lambda: {"A": 75.0, "B": 50.0, "C": 25.0, "D": 0.0}
    )
    anti_patterns: list[AntiPattern] = Field(default_factory=list)
    segments: list[Segment] = Field(default_factory=list)
    routing: list[Route] = Field(default_factory=list)
    expansion: list[Criterion] = Field(default_factory=list)
    """Traits of customers likely to expand (learned by `icp train` from expansion deals):
    scored 0-100 for existing customers into the optional `expansion` output."""
    scale: Scale = Field(default_factory=Scale)
    calibration: Calibration | None = None
    learned: dict[str, Any] | None = None
    """Metadata written by `icp train` (window, counts, holdout metrics)."""

    def all_criteria(self) -> list[tuple[str, int, Criterion]]:
        """(group, index, criterion) in file order."""
        return [(g, i, c) for g in GROUPS for i, c in enumerate(getattr(self.criteria, g))]

    def tier_order(self) -> list[tuple[str, float]]:
        """Tiers from the best (highest threshold) to the worst."""
        return sorted(self.tiers.items(), key=lambda item: -item[1])

    def located_conditions(
        self, fields: dict[str, str]
    ) -> list[tuple[Path, Condition, dict[str, str]]]:
        """Every condition in the file with its key path and the fields it may test.

        An inline condition's path is its rule's (`criteria.must_have.0`); one under `when`
        is `...when.N`. Routing may also test what scoring produced (score, tier, segment).
        """
        return locate_conditions(self.model_dump(by_alias=True, exclude_none=True), fields)

    def problems(self, fields: dict[str, str]) -> list[tuple[Path, str]]:
        """Mistakes only visible with the mapping at hand: unknown fields, wrong types...

        Args:
            fields: canonical field -> type ("text", "number", ...) the accounts will have.
        """
        found: list[tuple[Path, str]] = []
        if not self.all_criteria():
            found.append((("criteria",), "needs at least one criterion"))
        if not self.tiers:
            found.append((("tiers",), "needs at least one tier"))
        elif min(self.tiers.values()) != 0:
            found.append((("tiers",), "the lowest tier must start at 0 so every score has a tier"))
        if len(set(self.tiers.values())) != len(self.tiers):
            found.append((("tiers",), "two tiers share a threshold"))
        found += condition_problems(self.model_dump(by_alias=True, exclude_none=True), fields)
        for index, anti in enumerate(self.anti_patterns):
            if anti.cap_tier is not None and anti.cap_tier not in self.tiers:
                found.append(
                    (
                        ("anti_patterns", index, "cap_tier"),
                        f"must be a tier. Got {anti.cap_tier!r}; valid: {', '.join(self.tiers)}",
                    )
                )
        first_match: list[tuple[str, Sequence[Segment | Route]]] = [
            ("segments", self.segments),
            ("routing", self.routing),
        ]
        for key, rules in first_match:
            for index, rule in enumerate(rules[:-1]):
                if not rule.when:
                    found.append(
                        (
                            (key, index),
                            "has no `when`, so it matches everything: the rules after it "
                            "can never match. Move it last",
                        )
                    )
        return found


def locate_conditions(
    data: Any, fields: dict[str, str]
) -> list[tuple[Path, Condition, dict[str, str]]]:
    """The well-formed conditions of a criteria document, valid as a whole or not.

    Works on the parsed YAML, so that a file with a mistake in one rule still has the
    conditions of every other rule checked in the same pass.
    """
    data = data if isinstance(data, dict) else {}
    criteria = data.get("criteria") if isinstance(data.get("criteria"), dict) else {}
    routing_fields = {**fields, **COMPUTED_FIELDS}
    rules: list[tuple[Path, Any, dict[str, str]]] = []
    for group in GROUPS:
        rules += [(("criteria", group, i), rule, fields) for i, rule in _items(criteria, group)]
    for key in ("anti_patterns", "segments", "routing", "expansion"):
        allowed = routing_fields if key == "routing" else fields
        rules += [((key, i), rule, allowed) for i, rule in _items(data, key)]
    located: list[tuple[Path, Condition, dict[str, str]]] = []
    for path, rule, allowed in rules:
        if not isinstance(rule, dict):
            continue
        if "field" in rule:
            inline = {k: v for k, v in rule.items() if k == "field" or k in OPERATORS}
            located += [(path, c, allowed) for c in _condition(inline)]
        for i, when in _items(rule, "when"):
            located += [((*path, "when", i), c, allowed) for c in _condition(when)]
    return located


def condition_problems(data: Any, fields: dict[str, str]) -> list[tuple[Path, str]]:
    """Conditions on unknown fields, or with an operator the field's type cannot take."""
    found: list[tuple[Path, str]] = []
    for path, condition, allowed in locate_conditions(data, fields):
        found += _condition_problems(condition, path, allowed)
    return found


def _items(container: Any, key: str) -> list[tuple[int, Any]]:
    value = container.get(key) if isinstance(container, dict) else None
    return list(enumerate(value)) if isinstance(value, list) else []


def _condition(data: Any) -> list[Condition]:
    try:
        return [Condition.model_validate(data)]
    except ValidationError:  # reported by the schema check of the whole file
        return []


def _condition_problems(
    condition: Condition, path: Path, fields: dict[str, str]
) -> list[tuple[Path, str]]:
    if condition.field not in fields:
        return [
            (
                (*path, "field"),
                f"unknown field {condition.field!r}; valid fields: {', '.join(sorted(fields))}",
            )
        ]
    kind = fields[condition.field]
    op = condition.operators()[0]
    if op in ORDERED_OPERATORS and kind not in ("number", "date", "datetime"):
        return [((*path, op), f"needs a number or date field; {condition.field!r} is {kind}")]
    if op in ORDERED_OPERATORS and kind == "number":
        bounds = condition.operand()
        if any(isinstance(v, date) for v in (bounds if isinstance(bounds, list) else [bounds])):
            message = f"{condition.field!r} is a number field. Got a date: {_show(bounds)}"
            return [((*path, op), message)]
    if op == "contains" and kind not in ("multi", "text"):
        return [((*path, op), f"needs a multi-select or text field; {condition.field!r} is {kind}")]
    if kind == "number" and op in ("eq", "in", "not_in"):
        values = condition.operand()
        values = values if isinstance(values, list) else [values]
        if any(isinstance(v, str) for v in values):
            return [((*path, op), f"{condition.field!r} is a number field. Got {values!r}")]
    return []


def _show(value: Any) -> str:
    """A condition's operand as it was written (`[2020-01-01, 50]`), not as Python repr."""
    if isinstance(value, list):
        return "[" + ", ".join(str(v) for v in value) + "]"
    return str(value)
