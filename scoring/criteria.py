"""YAML criteria -> score 0-100, tier, segment, route and reasons, for a whole frame at once.

Each condition is evaluated once over the whole column (text through its categories,
so a million rows cost a few thousand string comparisons); scores are a matrix product
of the match matrix and the points; reasons are built once per distinct pattern of
matches and broadcast back. No Python loop runs per account per criterion.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from itertools import compress
from typing import Any

import numpy as np
import pandas as pd
from icp_engine.scoring.labels import format_points
from icp_engine.scoring.schema import Condition, IcpCriteria

NO_MATCH_REASON = "no criteria matched"


@dataclass(frozen=True)
class _Item:
    """One entry a reason can mention: a criterion (+points) or an anti-pattern (-points)."""

    label: str
    points: float
    cap: str | None = None

    def text(self) -> str:
        if self.points:
            sign = "+" if self.points > 0 else "-"
            text = f"{sign}{_points(abs(self.points))} {self.label}"
        else:
            text = self.label
        return f"{text} (tier capped at {self.cap})" if self.cap else text


def _points(value: float) -> str:
    """Whole points, as a seller reads them (`+12`); a tenth only below one point."""
    return format_points(value)


class ConditionEvaluator:
    """Evaluates conditions over a frame, caching each text column's categories."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self.frame = frame
        self.extra: dict[str, pd.Series] = {}
        """Columns computed after the frame was built (score, tier, segment for routing)."""
        self._categorical: dict[str, tuple[np.ndarray, pd.Index]] = {}

    def _series(self, column: str) -> pd.Series:
        if column in self.extra:
            return self.extra[column]
        if column not in self.frame:  # a field this CRM's mapping does not provide (a
            # warning at load): every value unknown, so the condition matches no account
            return pd.Series(None, index=self.frame.index, dtype=object)
        return self.frame[column]

    def _categories(self, column: str) -> tuple[np.ndarray, pd.Index]:
        if column not in self._categorical:
            series = self._series(column)
            distinct: Sequence[Any]
            if isinstance(series.dtype, pd.CategoricalDtype):
                codes, distinct = np.asarray(series.cat.codes), list(series.cat.categories)
            elif isinstance(series.dtype, pd.StringDtype):  # Arrow strings: no object per row
                codes, uniques = series.factorize(sort=False)
                distinct = uniques.tolist()
            else:
                codes, uniques = pd.factorize(series.to_numpy(dtype=object), sort=False)
                distinct = list(uniques)
            folded = pd.Index([str(v).strip().casefold() for v in distinct])
            self._categorical[column] = (np.asarray(codes), folded)
        return self._categorical[column]

    def _text_mask(self, column: str, test: Callable[[str], bool]) -> np.ndarray:
        codes, folded = self._categories(column)
        per_category = np.fromiter((test(v) for v in folded), dtype=bool, count=len(folded))
        return np.append(per_category, False)[codes]  # code -1 (null) picks the final False

    def mask(self, condition: Condition) -> np.ndarray:
        """Boolean array: rows where the condition holds (null values never match).

        Booleans and timestamps compare as such; otherwise the operand decides: `contains`
        or a text operand compares text (case-insensitively, through the column's
        categories), a number operand compares numbers.
        """
        series = self._series(condition.field)
        op = condition.operators()[0]
        value = condition.operand()
        if op == "is_null":
            return np.asarray(series.isna()) == bool(value)
        if pd.api.types.is_bool_dtype(series) or isinstance(series.dtype, pd.BooleanDtype):
            return self._boolean(series, op, value)
        if pd.api.types.is_datetime64_any_dtype(series):
            return self._ordered(series, op, value, _timestamp)
        if op == "contains" or _has_text(value):
            return self._text(condition.field, op, value)
        return self._ordered(series, op, value, float)

    def _boolean(self, series: pd.Series, op: str, value: Any) -> np.ndarray:
        known = np.asarray(series.notna())
        data = np.asarray(series.fillna(False).astype(bool))
        wanted = value if isinstance(value, list) else [value]
        truthy = [_truth(v) for v in wanted]
        if op in ("eq", "in"):
            return known & np.isin(data, truthy)
        if op == "not_in":
            return known & ~np.isin(data, truthy)
        return np.zeros(len(series), dtype=bool)

    def _ordered(
        self, series: pd.Series, op: str, value: Any, cast: Callable[[Any], Any]
    ) -> np.ndarray:
        if pd.api.types.is_datetime64_any_dtype(series):
            data = series
            known = np.asarray(series.notna())
        else:
            data = pd.to_numeric(series, errors="coerce").astype("float64")
            known = np.asarray(data.notna())
        with np.errstate(invalid="ignore"):
            if op == "between":
                low, high = cast(value[0]), cast(value[1])
                result = (data >= low) & (data <= high)
            elif op in ("eq", "in", "not_in"):
                wanted = [cast(v) for v in (value if isinstance(value, list) else [value])]
                result = data.isin(wanted)
                if op == "not_in":
                    result = ~result
            else:
                bound = cast(value)
                result = {
                    "gt": data > bound,
                    "gte": data >= bound,
                    "lt": data < bound,
                    "lte": data <= bound,
                }[op]
        return known & np.asarray(result, dtype=bool)

    def _text(self, column: str, op: str, value: Any) -> np.ndarray:
        wanted = {
            str(v).strip().casefold() for v in (value if isinstance(value, list) else [value])
        }
        if op in ("eq", "in"):
            return self._text_mask(column, lambda v: v in wanted)
        if op == "not_in":
            return self._text_mask(column, lambda v: v not in wanted)
        if op == "contains":
            return self._text_mask(
                column, lambda v: bool(wanted & {p.strip() for p in v.split(";")})
            )
        return np.zeros(len(self.frame), dtype=bool)

    def all_of(self, conditions: list[Condition]) -> np.ndarray:
        result = np.ones(len(self.frame), dtype=bool)
        for condition in conditions:
            result &= self.mask(condition)
        return result


def _has_text(value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    return any(isinstance(v, str) for v in values)


def _timestamp(value: Any) -> pd.Timestamp:
    stamp = pd.Timestamp(value if isinstance(value, date | datetime) else str(value))
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def _truth(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().casefold() in ("true", "1", "yes")
    return bool(value)


def _first_match(
    evaluator: ConditionEvaluator, rules: list[tuple[str, list[Condition]]]
) -> np.ndarray:
    """The label of the first rule that holds per row, or None."""
    result = np.full(len(evaluator.frame), None, dtype=object)
    undecided = np.ones(len(evaluator.frame), dtype=bool)
    for label, conditions in rules:
        hit = undecided & evaluator.all_of(conditions)
        result[hit] = label
        undecided &= ~hit
    return result


def _reasons(matches: np.ndarray, items: list[_Item], length: int | None) -> np.ndarray:
    """Reason text per row, built once per distinct text and broadcast back.

    Items are put in reason order (points earned first, largest first, then penalties);
    items that would fall past `length` are dropped before grouping, so rows differing
    only in reasons that get cut share one text.
    """
    n = matches.shape[0]
    if not items:
        return np.full(n, NO_MATCH_REASON, dtype=object)
    order = sorted(range(len(items)), key=lambda i: (items[i].points < 0, -abs(items[i].points), i))
    texts = [items[i].text() for i in order]
    ordered = matches[:, order]
    if length is not None and sum(len(t) + 2 for t in texts) - 2 > length:
        cost = np.array([len(t) + 2 for t in texts], dtype=np.int32)
        fits = np.cumsum(ordered * cost, axis=1, dtype=np.int32) - 2 <= length
        fits[np.arange(n), np.argmax(ordered, axis=1)] = True  # the first reason always shows
        ordered &= fits
    packed = np.packbits(ordered, axis=1, bitorder="little")
    keys = np.ascontiguousarray(packed).view(np.dtype((np.void, packed.shape[1]))).ravel()
    _, first_row, inverse = np.unique(keys, return_index=True, return_inverse=True)
    out = np.empty(len(first_row), dtype=object)
    for u, row in enumerate(ordered[first_row].tolist()):
        parts = list(compress(texts, row))
        text = "; ".join(parts)  # already cut to fit, unless the first reason alone is too long
        if length is not None and len(text) > length:
            text = _join_within(parts, length)
        out[u] = text or NO_MATCH_REASON
    return out[inverse.ravel()]


def _join_within(parts: list[str], length: int | None) -> str:
    """Join reasons with '; ', dropping whole trailing reasons to fit `length`."""
    text = ""
    for part in parts:
        candidate = f"{text}; {part}" if text else part
        if length is not None and len(candidate) > length:
            break
        text = candidate
    return text or (parts[0][:length] if length else parts[0])


def score_accounts(
    features: pd.DataFrame,
    icp: IcpCriteria,
    reasons_length: int | None = None,
    score_scale: int = 0,
) -> pd.DataFrame:
    """Score every account of a feature frame.

    Args:
        features: one row per account (`scoring.features.build_features`).
        icp: the validated criteria.
        reasons_length: the reasons field's length; reasons are cut at a whole reason.
        score_scale: decimal places the score field stores; tiers use the rounded score.

    Returns:
        A frame aligned with `features`: account_id, score, tier, segment, route, reasons,
        expansion (customers only; NaN without expansion criteria), win_probability
        (0-100; NaN without a `calibration:` part).
    """
    evaluator = ConditionEvaluator(features)
    criteria = icp.all_criteria()
    base = icp.scale.base
    total = sum(c.weight for _, _, c in criteria) or 1.0
    unit = 1.0 if icp.scale.weights == "points" else (100.0 - base) / total
    items = [_Item(c.name, unit * c.weight) for _, _, c in criteria]
    items += [_Item(a.name, -(a.penalty or 0.0), a.cap_tier) for a in icp.anti_patterns]
    columns = [evaluator.all_of(c.conditions()) for _, _, c in criteria]
    columns += [evaluator.all_of(a.conditions()) for a in icp.anti_patterns]
    n = len(features)
    matches = np.column_stack(columns) if columns else np.zeros((n, 0), dtype=bool)
    raw = np.full(n, base)
    for column, item in zip(columns, items, strict=True):
        raw += column * item.points
    score = np.round(np.clip(raw, 0.0, 100.0), score_scale)

    tiers = icp.tier_order()
    names = np.array([name for name, _ in tiers], dtype=object)
    thresholds = np.array([threshold for _, threshold in tiers], dtype=float)
    tier_index = np.argmax(score[:, None] >= thresholds[None, :], axis=1)
    rank = {name: i for i, (name, _) in enumerate(tiers)}
    for offset, anti in enumerate(icp.anti_patterns):
        if anti.cap_tier is not None:
            capped = matches[:, len(criteria) + offset]
            tier_index = np.where(capped, np.maximum(tier_index, rank[anti.cap_tier]), tier_index)

    result = pd.DataFrame(
        {
            "account_id": features["account_id"].astype(str).to_numpy(dtype=object),
            "score": score,
            "tier": pd.Series(names[tier_index], dtype=object),
        }
    )
    result["segment"] = pd.Series(
        _first_match(evaluator, [(s.name, s.when) for s in icp.segments]), dtype=object
    )
    evaluator.extra = {
        name: pd.Series(result[name].to_numpy(), index=features.index)
        for name in ("score", "tier", "segment")
    }
    result["route"] = pd.Series(
        _first_match(evaluator, [(r.route, r.when) for r in icp.routing]), dtype=object
    )
    result["reasons"] = pd.Series(_reasons(matches, items, reasons_length), dtype=object)
    result["expansion"] = expansion_scores(features, icp, evaluator, score_scale)
    result["win_probability"] = win_probability(score, icp, score_scale)
    return result


def win_probability(score: np.ndarray, icp: IcpCriteria, scale: int = 0) -> np.ndarray:
    """The calibrated chance of winning, 0-100, from the written score (NaN without a
    `calibration:` part: hand-written criteria have none)."""
    if icp.calibration is None:
        return np.full(len(score), np.nan)
    c = icp.calibration
    logit = c.intercept + c.slope * np.asarray(score, dtype=float)
    return np.round(100.0 / (1.0 + np.exp(-logit)), scale)


def expansion_scores(
    features: pd.DataFrame, icp: IcpCriteria, evaluator: ConditionEvaluator, scale: int
) -> np.ndarray:
    """Customers' likelihood to expand, 0-100: the share of expansion weight they match.

    Only existing customers (`is_customer`) get a value; everyone else, and every account
    when the criteria have no expansion part, gets none (NaN).
    """
    n = len(features)
    if not icp.expansion or "is_customer" not in features:
        return np.full(n, np.nan)
    total = sum(c.weight for c in icp.expansion) or 1.0
    raw = np.zeros(n)
    for criterion in icp.expansion:
        raw += evaluator.all_of(criterion.conditions()) * (100.0 * criterion.weight / total)
    customers = features["is_customer"].fillna(False).astype(bool).to_numpy()
    return np.where(customers, np.round(np.clip(raw, 0.0, 100.0), scale), np.nan)
