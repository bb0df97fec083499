"""The scorecard compiled to one SQL `SELECT`, so scoring runs where the data is.

Given the criteria in use and the type of each field, `compile_scorecard` writes one
statement (a chain of CTEs ending in a SELECT) over a table with one row per account and
the canonical feature columns (`account_id`, `industry`, `employees`, `technologies`,
any enrichment field...). It returns the same columns as `scoring.criteria.score_accounts`:
account_id, score, tier, segment, route, reasons, expansion, win_probability, with the
same values: the same arithmetic in IEEE doubles added in the same order, the same
half-to-even rounding as numpy, the same case-insensitive text matching, nulls that never
match, `;`-separated multi-select values for `contains`, tier caps, first-match segments
and routes (routing may test score, tier and segment), and reasons ordered and cut at a
whole reason exactly as the Python scorer does.

The statement is written in DuckDB's dialect and translated by SQLGlot into the one
asked for (`postgres`, `snowflake`, `bigquery`, `duckdb`...). Usable as a view or a dbt
model: `icp score --sql postgres > icp_scores.sql`.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any

import pandas as pd
from icp_engine.scoring.criteria import NO_MATCH_REASON
from icp_engine.scoring.labels import format_points
from icp_engine.scoring.schema import Condition, IcpCriteria

DEFAULT_TABLE = "icp_features"
COMPUTED = {"score": "number", "tier": "text", "segment": "text"}
"""Fields routing may test besides the account's own: what scoring produced."""


class SqlCompileError(ValueError):
    """The scorecard cannot be written for this dialect or these fields."""


def dialects() -> list[str]:
    """The dialect names SQLGlot writes."""
    import sqlglot  # here, not at the top: only `icp score --sql/--url` needs it (90 ms)

    return sorted(d.value for d in sqlglot.Dialects if d.value)


def _ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _text(value: Any) -> str:
    return "'" + str(value).replace("'", "''") + "'"


def _num(value: float) -> str:
    """A float literal that stays an IEEE double (never an exact DECIMAL)."""
    return f"CAST({float(value)!r} AS DOUBLE)"


def _stamp(value: Any) -> str:
    stamp = pd.Timestamp(value if isinstance(value, date | datetime) else str(value))
    stamp = stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")
    return f"CAST({_text(stamp.tz_localize(None).isoformat(sep=' '))} AS TIMESTAMP)"


def _truth(value: Any) -> bool:
    if isinstance(value, str):
        return value.strip().casefold() in ("true", "1", "yes")
    return bool(value)


def _has_text(value: Any) -> bool:
    values = value if isinstance(value, list) else [value]
    return any(isinstance(v, str) for v in values)


def _listed(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def condition_sql(condition: Condition, types: Mapping[str, str]) -> str:
    """One condition as a SQL boolean that is never NULL (a null value never matches)."""
    column = _ident(condition.field)
    kind = types.get(condition.field, "text")
    op = condition.operators()[0]
    value = condition.operand()
    if op == "is_null":
        return f"({column} IS {'' if value else 'NOT '}NULL)"
    if kind == "boolean":
        wanted = ", ".join("TRUE" if _truth(v) else "FALSE" for v in _listed(value))
        if op in ("eq", "in"):
            return f"COALESCE({column} IN ({wanted}), FALSE)"
        if op == "not_in":
            return f"COALESCE({column} NOT IN ({wanted}), FALSE)"
        return "FALSE"
    if kind in ("date", "datetime"):
        return _ordered(f"CAST({column} AS TIMESTAMP)", op, value, _stamp)
    if op == "contains" or _has_text(value):
        folded = f"LOWER(TRIM(CAST({column} AS VARCHAR)))"
        wanted_text = [str(v).strip().casefold() for v in _listed(value)]
        listed = ", ".join(_text(v) for v in dict.fromkeys(wanted_text))
        if op in ("eq", "in"):
            return f"COALESCE({folded} IN ({listed}), FALSE)"
        if op == "not_in":
            return f"COALESCE({folded} NOT IN ({listed}), FALSE)"
        if op == "contains":
            parts = f"REPLACE(REPLACE({folded}, ' ;', ';'), '; ', ';')"
            padded = f"(';' || {parts} || ';')"
            tests = " OR ".join(
                f"STRPOS({padded}, {_text(';' + w + ';')}) > 0" for w in wanted_text
            )
            return f"COALESCE(({tests}), FALSE)"
        return "FALSE"
    return _ordered(f"CAST({column} AS DOUBLE)", op, value, _num)


def _ordered(column: str, op: str, value: Any, literal: Any) -> str:
    if op == "between":
        test = f"{column} >= {literal(value[0])} AND {column} <= {literal(value[1])}"
    elif op in ("eq", "in", "not_in"):
        listed = ", ".join(literal(v) for v in _listed(value))
        test = f"{column} {'NOT IN' if op == 'not_in' else 'IN'} ({listed})"
    else:
        symbol = {"gt": ">", "gte": ">=", "lt": "<", "lte": "<="}[op]
        test = f"{column} {symbol} {literal(value)}"
    return f"COALESCE(({test}), FALSE)"


def all_of(conditions: list[Condition], types: Mapping[str, str]) -> str:
    if not conditions:
        return "TRUE"
    return "(" + " AND ".join(condition_sql(c, types) for c in conditions) + ")"


def _round_even(expression: str, scale: int) -> str:
    """numpy's round: x * 10^scale to the nearest integer, ties to even, / 10^scale."""
    scaled = expression if scale == 0 else f"({expression}) * {_num(10.0**scale)}"
    low = f"FLOOR({scaled})"
    rounded = (
        f"(CASE WHEN {scaled} - {low} > 0.5 THEN {low} + 1 "
        f"WHEN {scaled} - {low} < 0.5 THEN {low} "
        f"WHEN {low} - 2 * FLOOR({low} / 2) = 0 THEN {low} ELSE {low} + 1 END)"
    )
    return rounded if scale == 0 else f"({rounded} / {_num(10.0**scale)})"


def _item_text(label: str, points: float, cap: str | None) -> str:
    if points:
        sign = "+" if points > 0 else "-"
        text = f"{sign}{format_points(abs(points))} {label}"
    else:
        text = label
    return f"{text} (tier capped at {cap})" if cap else text


def compile_scorecard(
    icp: IcpCriteria,
    field_types: Mapping[str, str],
    dialect: str = "duckdb",
    table: str = DEFAULT_TABLE,
    reasons_length: int | None = None,
    score_scale: int = 0,
    pretty: bool = True,
    value_maps: Mapping[str, Mapping[str, str]] | None = None,
) -> str:
    """The whole scorecard as one SQL statement in `dialect`.

    Args:
        icp: the validated criteria (hand-written or learned).
        field_types: canonical field -> type (text, number, boolean, date, datetime,
            multi, domain) of the table's columns; fields not listed are read as text.
        dialect: a SQLGlot dialect name (`duckdb`, `postgres`, `snowflake`, `bigquery`...).
        table: the table or view holding one row per account (may be schema-qualified).
        reasons_length: the reasons field's length; reasons are cut at a whole reason.
        score_scale: decimal places the score field stores; tiers use the rounded score.
        value_maps: field -> {CRM spelling (case-folded) -> canonical value}, for a table
            that holds the CRM's own spellings (the mapping's `values:`); single-valued
            text fields only.

    Raises:
        SqlCompileError: an unknown dialect.
    """
    if dialect not in dialects():
        msg = f"unknown SQL dialect {dialect!r}; valid: {', '.join(dialects())}"
        raise SqlCompileError(msg)
    types = {**field_types, **COMPUTED}
    criteria = icp.all_criteria()
    base = icp.scale.base
    total = sum(c.weight for _, _, c in criteria) or 1.0
    unit = 1.0 if icp.scale.weights == "points" else (100.0 - base) / total
    items: list[tuple[str, float, str | None, str]] = [
        (c.name, unit * c.weight, None, all_of(c.conditions(), types)) for _, _, c in criteria
    ]
    items += [
        (a.name, -(a.penalty or 0.0), a.cap_tier, all_of(a.conditions(), types))
        for a in icp.anti_patterns
    ]
    used = {"account_id"}
    for condition in _every_condition(icp):
        if condition.field not in COMPUTED:
            used.add(condition.field)
    if icp.expansion:
        used.add("is_customer")
    present = [name for name in sorted(used) if name == "account_id" or name in field_types]
    source_columns = ", ".join(
        _mapped(name, (value_maps or {}).get(name), types) for name in present
    )

    flags = [f"{sql} AS m{i}" for i, (_, _, _, sql) in enumerate(items)]
    raw = " + ".join(
        [_num(base)]
        + [
            f"(CASE WHEN m{i} THEN {_num(p)} ELSE {_num(0.0)} END)"
            for i, (_, p, _, _) in enumerate(items)
        ]
    )
    segment = _first_match([(s.name, s.when) for s in icp.segments], types)
    expansion = "CAST(NULL AS DOUBLE)"
    if icp.expansion and "is_customer" in field_types:
        weight_total = sum(c.weight for c in icp.expansion) or 1.0
        parts = [_num(0.0)] + [
            f"(CASE WHEN {all_of(c.conditions(), types)} THEN "
            f"{_num(100.0 * c.weight / weight_total)} ELSE {_num(0.0)} END)"
            for c in icp.expansion
        ]
        clipped = f"GREATEST(LEAST({' + '.join(parts)}, {_num(100.0)}), {_num(0.0)})"
        expansion = (
            f"CASE WHEN COALESCE({_ident('is_customer')}, FALSE) "
            f"THEN {_round_even(clipped, score_scale)} END"
        )

    tiers = icp.tier_order()
    rank = {name: i for i, (name, _) in enumerate(tiers)}
    tier_index = (
        "CASE "
        + " ".join(f"WHEN icp_score >= {_num(t)} THEN {i}" for i, (_, t) in enumerate(tiers))
        + " ELSE 0 END"
    )
    caps = [
        f"CASE WHEN m{len(criteria) + k} THEN {rank[a.cap_tier]} ELSE 0 END"
        for k, a in enumerate(icp.anti_patterns)
        if a.cap_tier is not None
    ]
    capped = f"GREATEST({tier_index}, {', '.join(caps)})" if caps else tier_index
    tier_name = (
        "CASE icp_tier_index "
        + " ".join(f"WHEN {i} THEN {_text(name)}" for i, (name, _) in enumerate(tiers))
        + " END"
    )
    route = _first_match([(r.route, r.when) for r in icp.routing], types)
    win = "CAST(NULL AS DOUBLE)"
    if icp.calibration is not None:
        c = icp.calibration
        logit = f"({_num(c.intercept)} + {_num(c.slope)} * icp_score)"
        win = _round_even(f"{_num(100.0)} / ({_num(1.0)} + EXP(-{logit}))", score_scale)

    cost_columns, joined_reasons, reasons = _reasons_sql(items, reasons_length)
    costs = ", ".join(["*", *cost_columns])

    def clip(expression: str) -> str:
        return f"GREATEST(LEAST({expression}, {_num(100.0)}), {_num(0.0)})"

    keep = ", ".join(_ident(n) for n in present if n != "account_id")
    keep = f", {keep}" if keep else ""
    flag_list = ", ".join(f"m{i}" for i in range(len(items)))
    flag_list = f", {flag_list}" if flag_list else ""
    sql = f"""
WITH icp_source AS (
  SELECT {source_columns} FROM {table}
), icp_matched AS (
  SELECT *{", " if flags else ""}{", ".join(flags)} FROM icp_source
), icp_raw AS (
  SELECT *, {raw} AS icp_raw_score FROM icp_matched
), icp_scored AS (
  SELECT *, {_round_even(clip("icp_raw_score"), score_scale)} AS icp_score FROM icp_raw
), icp_tiered AS (
  SELECT *, {capped} AS icp_tier_index, {segment} AS icp_segment FROM icp_scored
), icp_routed AS (
  SELECT CAST({_ident("account_id")} AS VARCHAR) AS {_ident("account_id")}{keep}{flag_list},
    icp_score AS score, {tier_name} AS tier, icp_segment AS segment,
    {expansion} AS expansion, {win} AS win_probability
  FROM icp_tiered
), icp_costed AS (
  SELECT {costs} FROM icp_routed
), icp_reasoned AS (
  SELECT *, {joined_reasons} AS icp_reasons_all FROM icp_costed
)
SELECT account_id, score, tier, segment, {route} AS route, {reasons} AS reasons,
  expansion, win_probability
FROM icp_reasoned
"""
    import sqlglot  # here, not at the top: only `icp score --sql/--url` needs it (90 ms)
    import sqlglot.errors

    try:
        (out,) = sqlglot.transpile(sql, read="duckdb", write=dialect, pretty=pretty)
    except sqlglot.errors.SqlglotError as exc:
        msg = f"the scorecard cannot be written as {dialect} SQL: {exc}"
        raise SqlCompileError(msg) from exc
    return out + "\n"


def _mapped(name: str, lookup: Mapping[str, str] | None, types: Mapping[str, str]) -> str:
    """A source column, through its value map when it has one (unmapped values kept)."""
    column = _ident(name)
    if not lookup or types.get(name, "text") != "text":
        return column
    trimmed = f"TRIM(CAST({column} AS VARCHAR))"
    cases = " ".join(f"WHEN {_text(k)} THEN {_text(v)}" for k, v in lookup.items())
    return f"CASE LOWER({trimmed}) {cases} ELSE {trimmed} END AS {column}"


def _every_condition(icp: IcpCriteria) -> list[Condition]:
    found: list[Condition] = []
    for _, _, criterion in icp.all_criteria():
        found += criterion.conditions()
    for anti in icp.anti_patterns:
        found += anti.conditions()
    for segment in icp.segments:
        found += segment.when
    for route in icp.routing:
        found += route.when
    for criterion in icp.expansion:
        found += criterion.conditions()
    return found


def _first_match(rules: list[tuple[str, list[Condition]]], types: Mapping[str, str]) -> str:
    if not rules:
        return "CAST(NULL AS VARCHAR)"
    cases = " ".join(f"WHEN {all_of(when, types)} THEN {_text(name)}" for name, when in rules)
    return f"CASE {cases} END"


def _reasons_sql(
    items: list[tuple[str, float, str | None, str]], length: int | None
) -> tuple[list[str], str, str]:
    """Reasons as `score_accounts` writes them: points earned first (largest first), then
    penalties; cut at a whole reason to fit `length`, the first always kept.

    Returns the columns of the cost stage (characters used before each reason), the
    joined text (one column, computed once) and the final expression over `icp_reasons_all`.
    """
    if not items:
        return [], _text(""), _text(NO_MATCH_REASON)
    order = sorted(range(len(items)), key=lambda i: (items[i][1] < 0, -abs(items[i][1]), i))
    texts = [_item_text(items[i][0], items[i][1], items[i][2]) for i in order]
    flags = [f"m{i}" for i in order]
    costs_columns: list[str] = []
    if length is None or sum(len(t) + 2 for t in texts) - 2 <= length:
        shown = flags
    else:
        costs = [len(t) + 2 for t in texts]
        shown = []
        for k, flag in enumerate(flags):
            before = " + ".join(
                f"(CASE WHEN {f} THEN {costs[j]} ELSE 0 END)" for j, f in enumerate(flags[:k])
            )
            costs_columns.append(f"{before or '0'} AS icp_before{k}")
            shown.append(
                f"({flag} AND (icp_before{k} + {costs[k]} - 2 <= {length} OR icp_before{k} = 0))"
            )
    parts = ", ".join(
        f"CASE WHEN {s} THEN {_text(t)} END" for s, t in zip(shown, texts, strict=True)
    )
    joined = f"CONCAT_WS('; ', {parts})"
    final = "icp_reasons_all"
    if length is not None:
        final = (
            f"(CASE WHEN LENGTH(icp_reasons_all) > {length} "
            f"THEN SUBSTRING(icp_reasons_all, 1, {length}) ELSE icp_reasons_all END)"
        )
    return costs_columns, joined, f"COALESCE(NULLIF({final}, ''), {_text(NO_MATCH_REASON)})"
