"""An encoded trait (`Feature`): a level per account, each level expressible as YAML.

Numbers are binned at thresholds (`[t[k-1], t[k])`), missing being a level of its
own; text values are kept or grouped as "other"; a multi-select value is has/lacks.
Every set of levels a criterion may use knows the criteria-schema conditions that
select exactly its accounts (integer columns use inclusive ranges such as
`between: [50, 500]`, others `gte`/`lt` pairs), so a fitted weight becomes a YAML
criterion without approximation. How the levels are fitted: `scoring.learn_binning`.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
from icp_engine.scoring.labels import describe_rule, field_label

NUMBER, CATEGORY, HAS = "number", "category", "has"
NICEST = {1.0: 0, 5.0: 0, 2.0: 1, 2.5: 1, 3.0: 2, 1.5: 2, 4.0: 2, 6.0: 2, 7.5: 2}
"""How round a mantissa is (lower is rounder): 50 reads better than 60."""


@dataclass
class Feature:
    """One candidate trait, encoded as a level index per account.

    Levels: numbers: bins `[t[k-1], t[k])` then missing; categories: kept values, then
    other, then missing; has-features: lacks (0), has (1).
    """

    name: str
    field: str
    kind: str
    codes: np.ndarray
    n_levels: int
    missing: int | None = None
    other: int | None = None
    thresholds: tuple[float, ...] = ()
    integer: bool = False
    values: tuple[Any, ...] = ()
    groups: list[tuple[int, ...]] = dataclasses.field(default_factory=list)

    def __post_init__(self) -> None:
        if not self.groups:
            self.groups = [(i,) for i in range(self.n_levels)]

    def group_codes(self) -> np.ndarray:
        table = np.zeros(self.n_levels, dtype=np.int16)
        for g, levels in enumerate(self.groups):
            table[list(levels)] = g
        return table[self.codes]

    def mask(self, levels: Sequence[int]) -> np.ndarray:
        return np.isin(self.codes, np.asarray(levels, dtype=self.codes.dtype))

    def conditions(self, levels: Sequence[int]) -> list[dict[str, Any]] | None:
        """Conditions (all must hold) selecting exactly these levels; None if none can."""
        levels = sorted(levels)
        f = self.field
        if self.missing is not None and levels == [self.missing]:
            return [{"field": f, "is_null": True}]
        if self.missing is not None and self.missing in levels:
            return None
        if self.kind == HAS:
            return [{"field": f, "contains": self.values[0]}] if levels == [1] else None
        if self.kind == NUMBER:
            return self._range(levels[0], levels[-1])
        kept = [self.values[i] for i in levels if i != self.other]
        if self.other is not None and self.other in levels:
            rest = [v for i, v in enumerate(self.values) if i not in levels]
            return [{"field": f, "not_in": rest} if rest else {"field": f, "is_null": False}]
        if len(kept) == 1:
            return [{"field": f, "eq": kept[0]}]
        return [{"field": f, "in": kept}]

    def _range(self, lo: int, hi: int) -> list[dict[str, Any]]:
        f, t = self.field, self.thresholds
        low = t[lo - 1] if lo > 0 else None
        high = t[hi] if hi < len(t) else None
        if low is None and high is None:
            return [{"field": f, "is_null": False}]
        if not self.integer:
            out = [] if low is None else [{"field": f, "gte": _num(low)}]
            return out + ([] if high is None else [{"field": f, "lt": _num(high)}])
        top = None if high is None else high - 1
        if low is None:
            assert top is not None
            if roundness(top + 1) < roundness(top):
                return [{"field": f, "lt": _num(top + 1)}]
            return [{"field": f, "lte": _num(top)}]
        if top is None:
            if roundness(low - 1) < roundness(low):
                return [{"field": f, "gt": _num(low - 1)}]
            return [{"field": f, "gte": _num(low)}]
        if low == top:
            return [{"field": f, "eq": _num(low)}]
        return [{"field": f, "between": [_num(low), _num(top)]}]

    def label(self, levels: Sequence[int]) -> str:
        """A short trait phrase: `employees 50-500`, `industry SaaS or Media`."""
        conditions = self.conditions(levels)
        if conditions is None:  # a has-feature's "lacks" level
            return f"{field_label(self.field)}: no {self.values[0]}"
        return describe(conditions)


def describe(conditions: list[dict[str, Any]]) -> str:
    """Human text for a conjunction of conditions, in field labels (`scoring.labels`)."""
    return describe_rule(conditions)


def _num(value: float) -> int | float:
    return int(value) if float(value).is_integer() else float(f"{value:.6g}")


def roundness(value: float) -> float:
    """How round a number is: 0 for 1 and 5 times a power of ten, more for others."""
    if value == 0:
        return 0.0
    exponent = math.floor(math.log10(abs(value)))
    mantissa = round(abs(value) / 10**exponent, 6)
    return float(NICEST.get(mantissa, 5))
