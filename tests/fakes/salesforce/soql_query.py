"""A parsed SOQL query of the fake Salesforce org (`Soql`): its columns, filter, ordering
and paging, run against an sObject's records and rendered as REST query records; plus the
comparisons the parser builds WHERE predicates from."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.salesforce.describe import SObject
from tests.fakes.salesforce.values import STRING_TYPES, json_value


@dataclass
class Column:
    header: str  # "Name" or "Account.Name"
    name: str  # field name on the queried object or on the parent
    field: dict[str, Any]  # its describe
    relationship: str | None = None  # "Account" for a parent field
    parent_type: str = ""
    parent: Callable[[dict[str, Any]], dict[str, Any] | None] | None = None

    def get(self, rec: dict[str, Any]) -> Any:
        if self.parent is None:
            return rec.get(self.name)
        parent = self.parent(rec)
        return None if parent is None else parent.get(self.name)


@dataclass
class Soql:
    text: str
    sobject: SObject
    columns: list[Column]
    count_only: bool = False
    where: Callable[[dict[str, Any]], bool] | None = None
    order: list[tuple[Callable[[dict[str, Any]], Any], bool]] = field(default_factory=list)
    limit: int | None = None
    offset: int = 0

    def run(self, include_deleted: bool) -> list[str]:
        """Ids of the matching records, sorted; the caller holds the org's lock."""
        pred = self.where
        rows = [
            r
            for r in self.sobject.records.values()
            if (include_deleted or not r.get("IsDeleted")) and (pred is None or pred(r))
        ]
        for key, desc in reversed(self.order):
            rows.sort(key=key, reverse=desc)
        ids = [r["Id"] for r in rows][self.offset :]
        return ids if self.limit is None else ids[: self.limit]

    def render(self, rec: dict[str, Any], version: str) -> dict[str, Any]:
        """One record of a REST query page: attributes first, then the SELECT order."""

        def attributes(obj: str, rid: str) -> dict[str, str]:
            return {"type": obj, "url": f"/services/data/v{version}/sobjects/{obj}/{rid}"}

        out: dict[str, Any] = {"attributes": attributes(self.sobject.name, rec["Id"])}
        for col in self.columns:
            if col.parent is None or col.relationship is None:
                out[col.name] = json_value(rec.get(col.name))
                continue
            parent = col.parent(rec)
            if col.relationship not in out:
                out[col.relationship] = (
                    None
                    if parent is None
                    else {"attributes": attributes(col.parent_type, parent["Id"])}
                )
            if parent is not None:
                out[col.relationship][col.name] = json_value(parent.get(col.name))
        return out


def normalizer(type_: str) -> Callable[[Any], Any]:
    if type_ in STRING_TYPES:
        return lambda v: v.casefold() if isinstance(v, str) else v
    return lambda v: v


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": lambda a, b: a < b,
    "<=": lambda a, b: a <= b,
    ">": lambda a, b: a > b,
    ">=": lambda a, b: a >= b,
}


def compare(
    get: Callable[[dict[str, Any]], Any], norm: Callable[[Any], Any], op: str, value: Any
) -> Callable[[dict[str, Any]], bool]:
    if value is None:
        if op == "=":
            return lambda r: get(r) is None
        if op == "!=":
            return lambda r: get(r) is not None
        return lambda r: False
    target = norm(value)
    if op == "=":
        return lambda r: (v := get(r)) is not None and norm(v) == target
    if op == "!=":
        return lambda r: (v := get(r)) is None or norm(v) != target
    test = _OPS[op]
    return lambda r: (v := get(r)) is not None and test(norm(v), target)
