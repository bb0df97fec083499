"""`POST /crm/v3/objects/{object}/search` for the fake HubSpot portal.

Filter groups are ORed and the filters inside a group ANDed; datetimes compare as instants
(epoch ms or ISO-8601 on the wire), numbers numerically, strings case-insensitively,
enumerations exactly. One sort (default `createdate` ascending), ties by id, missing
values last. Offsets past 10,000 results are refused as HubSpot refuses them.
"""

from __future__ import annotations

import fnmatch
import json
from collections.abc import Callable
from typing import Any

from tests.fakes.hubspot import schema
from tests.fakes.hubspot import values as vals
from tests.fakes.hubspot.store import Record, Snapshot, Store

MAX_GROUPS, MAX_FILTERS, MAX_TOTAL_FILTERS = 5, 6, 18
MAX_LIMIT, RESULT_CAP = 200, 10_000
OPERATORS = {
    "EQ", "NEQ", "LT", "LTE", "GT", "GTE", "BETWEEN", "IN", "NOT_IN",
    "HAS_PROPERTY", "NOT_HAS_PROPERTY", "CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN",
}  # fmt: skip
_MISSING = object()


class SearchError(Exception):
    """A request HubSpot answers with 400 VALIDATION_ERROR."""


def _kind(prop: dict[str, Any]) -> str:
    kind = prop["type"]
    if kind == "enumeration":
        return "multi" if prop["fieldType"] == "checkbox" else "enum"
    if kind in ("number", "datetime", "date", "bool"):
        return "time" if kind in ("datetime", "date") else kind
    return "string"


def _convert(value: Any, kind: str) -> Any:
    """A stored or filter value as the comparable key of its kind (None if unusable)."""
    if value is None:
        return None
    if kind == "number":
        try:
            return float(value)
        except (TypeError, ValueError):
            return None
    if kind == "time":
        return vals.parse_when(value)
    text = vals.as_text(value)
    if kind == "multi":
        return frozenset(p for p in text.split(";") if p)
    if kind == "enum":
        return text
    return text.casefold()


def _typed(snap: Snapshot, name: str, kind: str) -> Any:
    key = (name, kind)
    value = snap.typed.get(key, _MISSING)
    if value is _MISSING:
        value = _convert(snap.props.get(name), kind)
        snap.typed[key] = value
    return value


def _filter_value(raw: Any, kind: str, name: str) -> Any:
    if kind == "multi":
        return vals.as_text(raw)
    value = _convert(raw, kind)
    if value is None:
        msg = f"{raw!r} is not a valid value for property {name} in a search filter."
        raise SearchError(msg)
    return value


Test = Callable[[Record, Snapshot], bool]


def _compile(store: Store, obj: str, spec: Any) -> Test:
    if not isinstance(spec, dict):
        raise SearchError("Each filter must be an object.")
    name, op = spec.get("propertyName"), spec.get("operator", "EQ")
    if not isinstance(name, str) or not name:
        raise SearchError("A filter is missing its propertyName.")
    if op not in OPERATORS:
        raise SearchError(f"Unsupported operator '{op}' for property {name}.")
    if name.startswith("associations."):
        return _association_test(store, obj, name, op, spec)
    prop = store.props[obj].get(name)
    if prop is None:
        raise SearchError(f"Property '{name}' does not exist on {schema.UPPER[obj]} objects.")
    kind = _kind(prop)

    def got(record: Record, snap: Snapshot) -> Any:
        return _typed(snap, name, kind)

    if op == "HAS_PROPERTY":
        return lambda r, s: got(r, s) is not None
    if op == "NOT_HAS_PROPERTY":
        return lambda r, s: got(r, s) is None
    if op in ("IN", "NOT_IN"):
        values = spec.get("values")
        if not isinstance(values, list) or not values:
            raise SearchError(f"Operator {op} on {name} needs a non-empty `values` list.")
        wanted = {_filter_value(v, kind, name) for v in values}
        if kind == "multi":
            hit: Callable[[Any], bool] = lambda v: v is not None and not v.isdisjoint(wanted)  # noqa: E731
        else:
            hit = lambda v: v is not None and v in wanted  # noqa: E731
        if op == "IN":
            return lambda r, s: hit(got(r, s))
        return lambda r, s: not hit(got(r, s))
    if "value" not in spec:
        raise SearchError(f"Operator {op} on {name} needs a `value`.")
    if op in ("CONTAINS_TOKEN", "NOT_CONTAINS_TOKEN"):
        pattern = vals.as_text(spec["value"]).casefold()

        def contains(record: Record, snap: Snapshot) -> bool:
            text = snap.props.get(name)
            if text is None:
                return False
            tokens = text.casefold().replace(";", " ").split()
            return any(fnmatch.fnmatchcase(t, pattern) for t in tokens) or fnmatch.fnmatchcase(
                text.casefold(), pattern
            )

        if op == "CONTAINS_TOKEN":
            return contains
        return lambda r, s: not contains(r, s)
    target = _filter_value(spec["value"], kind, name)
    if kind == "multi":
        if op == "EQ":
            return lambda r, s: (v := got(r, s)) is not None and target in v
        if op == "NEQ":
            return lambda r, s: (v := got(r, s)) is None or target not in v
        raise SearchError(f"Operator {op} is not supported for multi-select property {name}.")
    if op == "EQ":
        return lambda r, s: got(r, s) == target
    if op == "NEQ":
        return lambda r, s: got(r, s) != target
    if op == "BETWEEN":
        if "highValue" not in spec:
            raise SearchError(f"Operator BETWEEN on {name} needs `value` and `highValue`.")
        high = _filter_value(spec["highValue"], kind, name)
        return lambda r, s: (v := got(r, s)) is not None and target <= v <= high
    compare: dict[str, Callable[[Any], bool]] = {
        "LT": lambda v: v < target,
        "LTE": lambda v: v <= target,
        "GT": lambda v: v > target,
        "GTE": lambda v: v >= target,
    }
    check = compare[op]
    return lambda r, s: (v := got(r, s)) is not None and check(v)


def _association_test(store: Store, obj: str, name: str, op: str, spec: dict[str, Any]) -> Test:
    other = schema.OBJECT_TYPES.get(name.split(".", 1)[1])
    if other is None or (obj, other) not in store.links or op not in ("EQ", "IN"):
        raise SearchError(f"Unsupported association filter {name} {op}.")
    raw = spec.get("values") if op == "IN" else [spec.get("value")]
    wanted = {vals.as_text(v) for v in raw or []}
    links = store.links[(obj, other)]
    return lambda r, s: not wanted.isdisjoint(links.get(r.id, ()))


def _sort_spec(body: dict[str, Any]) -> tuple[str, bool]:
    sorts = body.get("sorts") or []
    if not isinstance(sorts, list):
        raise SearchError("`sorts` must be a list.")
    if not sorts:
        return "createdate", False
    first = sorts[0]
    if isinstance(first, str):
        return (first[1:], True) if first.startswith("-") else (first, False)
    if isinstance(first, dict) and isinstance(first.get("propertyName"), str):
        direction = str(first.get("direction", "ASCENDING")).upper()
        if direction not in ("ASCENDING", "DESCENDING"):
            raise SearchError(f"Unknown sort direction {direction}.")
        return first["propertyName"], direction == "DESCENDING"
    raise SearchError("Each sort needs a propertyName.")


def _int(value: Any, name: str, default: int) -> int:
    if value is None:
        return default
    try:
        number = int(str(value))
    except ValueError:
        raise SearchError(f"`{name}` must be an integer, got {value!r}.") from None
    if number < 0:
        raise SearchError(f"`{name}` must not be negative.")
    return number


def _matches(store: Store, obj: str, body: dict[str, Any]) -> list[tuple[Record, Snapshot]]:
    groups = body.get("filterGroups") or []
    if not isinstance(groups, list):
        raise SearchError("`filterGroups` must be a list.")
    if len(groups) > MAX_GROUPS:
        msg = f"Too many filter groups ({len(groups)}). The maximum is {MAX_GROUPS}."
        raise SearchError(msg)
    compiled: list[list[Test]] = []
    total = 0
    for group in groups:
        filters = group.get("filters") if isinstance(group, dict) else None
        if not isinstance(filters, list):
            raise SearchError("Each filter group needs a `filters` list.")
        if len(filters) > MAX_FILTERS:
            msg = f"Too many filters in a group ({len(filters)}). The maximum is {MAX_FILTERS}."
            raise SearchError(msg)
        total += len(filters)
        compiled.append([_compile(store, obj, f) for f in filters])
    if total > MAX_TOTAL_FILTERS:
        raise SearchError(f"Too many filters ({total}). The maximum is {MAX_TOTAL_FILTERS}.")
    sort_name, descending = _sort_spec(body)
    sort_prop = store.props[obj].get(sort_name)
    if sort_prop is None:
        raise SearchError(f"Cannot sort by '{sort_name}': no such {schema.UPPER[obj]} property.")
    query = body.get("query")
    needle = query.casefold() if isinstance(query, str) and query.strip() else None
    text_props = schema.SEARCHABLE_TEXT[obj]

    lag = store.search_lag
    now = store.search_clock()
    found: list[tuple[Record, Snapshot]] = []
    for record in store.records[obj].values():
        snap = record.visible(now, lag)
        if snap is None:
            continue
        if compiled and not any(all(t(record, snap) for t in tests) for tests in compiled):
            continue
        if needle is not None and not any(
            needle in (snap.props.get(p) or "").casefold() for p in text_props
        ):
            continue
        found.append((record, snap))
    kind = _kind(sort_prop)
    present = [(k, rs) for rs in found if (k := _typed(rs[1], sort_name, kind)) is not None]
    absent = [rs for rs in found if _typed(rs[1], sort_name, kind) is None]
    present.sort(key=lambda item: item[1][0].num)
    if kind == "multi":
        present = [(sorted(key), rs) for key, rs in present]
    present.sort(key=lambda item: item[0], reverse=descending)
    absent.sort(key=lambda rs: rs[0].num)
    return [rs for _, rs in present] + absent


def search(store: Store, obj: str, body: Any) -> dict[str, Any]:
    """The search response body; raises SearchError for a request HubSpot refuses."""
    if not isinstance(body, dict):
        raise SearchError("Invalid input JSON: expected an object.")
    limit = _int(body.get("limit"), "limit", 10)
    after = _int(body.get("after"), "after", 0)
    if limit > MAX_LIMIT:
        raise SearchError(f"limit {limit} is above the maximum page size of {MAX_LIMIT}.")
    if after + limit > RESULT_CAP:
        msg = (
            f"Search can return at most {RESULT_CAP:,} results per query: after={after} with "
            f"limit={limit} is hitting the 10,000 result limit. Narrow the query with filters "
            "(for example on hs_object_id or hs_lastmodifieddate) instead of paging further."
        )
        raise SearchError(msg)
    names = body.get("properties")
    if names is not None and not (
        isinstance(names, list) and all(isinstance(n, str) for n in names)
    ):
        raise SearchError("`properties` must be a list of property names.")
    names = names or None
    with store.lock:
        key = (obj, json.dumps([body.get(k) for k in ("filterGroups", "sorts", "query")]))
        cacheable = store.search_lag <= 0
        hits = store.search_cache.get(key) if cacheable else None
        if hits is None:
            hits = _matches(store, obj, body)
            if cacheable:
                if len(store.search_cache) > 32:
                    store.search_cache.clear()
                store.search_cache[key] = hits
        page = hits[after : after + limit]
        results = [store.render(obj, record, snap, names) for record, snap in page]
    out: dict[str, Any] = {"total": len(hits), "results": results}
    if limit and after + limit < len(hits):
        out["paging"] = {"next": {"after": str(after + limit)}}
    return out
