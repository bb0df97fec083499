"""Propose a mapping from what the CRM holds: which field is which, and which spellings
mean which canonical value.

Fields are matched by name (API names and labels, with the usual CRM synonyms:
`NumberOfEmployees`, `numberofemployees`, `headcount` are all `employees`) and checked
by type (a number field is never proposed for a text one and back). Only canonical fields
that are unmapped, or mapped to a field the CRM lacks, get a proposal: a working mapping
is left alone. Value maps get the values found in the data that no spelling catches,
each proposed for the canonical value it is closest to. `icp mappings suggest` prints the
proposals as a YAML diff; the editor page offers them one click each.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from icp_engine.connectors.mapping import CANONICAL_FIELDS, normalise_key
from icp_engine.sync.mapedit import Edit
from icp_engine.sync.sourcedata import KINDS, Column, SourceData

SYNONYMS: dict[str, dict[str, tuple[str, ...]]] = {
    "account": {
        "account_id": ("id", "hs_object_id", "accountid", "companyid", "recordid"),
        "name": ("name", "accountname", "companyname", "company"),
        "domain": ("website", "domain", "url", "site", "companydomain"),
        "industry": ("industry", "sector", "vertical"),
        "employees": (
            "numberofemployees",
            "employees",
            "headcount",
            "employeecount",
            "numemployees",
        ),
        "annual_revenue": ("annualrevenue", "revenue", "annualrev"),
        "country": ("billingcountry", "country", "hqcountry", "countryregion"),
        "region": ("region", "georegion"),
        "created_at": ("createddate", "createdate", "createdat", "hs_createdate"),
        "modified_at": ("systemmodstamp", "lastmodifieddate", "hs_lastmodifieddate", "modifiedat"),
    },
    "opportunity": {
        "opportunity_id": ("id", "hs_object_id", "opportunityid", "dealid"),
        "account_id": ("accountid", "companyid", "associatedcompanyid"),
        "stage": ("stagename", "dealstage", "stage"),
        "is_closed": ("isclosed", "hs_is_closed", "closed"),
        "is_won": ("iswon", "hs_is_closed_won", "won"),
        "amount": ("amount", "dealamount", "value"),
        "created_at": ("createddate", "createdate", "createdat", "hs_createdate"),
        "closed_at": ("closedate", "closeddate", "closedat"),
        "type": ("type", "dealtype", "opportunitytype"),
        "loss_reason": ("lossreason", "closed_lost_reason", "closedlostreason", "reasonlost"),
        "modified_at": ("systemmodstamp", "lastmodifieddate", "hs_lastmodifieddate"),
    },
}
_COMPATIBLE = {
    "number": {"number", "double", "int", "long", "currency", "percent"},
    "boolean": {"boolean", "bool", "text", "string", "enumeration"},
    "date": {"date", "datetime"},
    "datetime": {"datetime", "date"},
}


@dataclass(frozen=True)
class Suggestion:
    """One proposed edit, and why it is proposed (for people)."""

    edit: Edit
    why: str

    def to_json(self) -> dict[str, Any]:
        return {"edit": self.edit.to_json(), "why": self.why}


def mapped_fields(mapping_data: Any, kind: str) -> dict[str, str]:
    """canonical -> CRM field as the (possibly invalid) mapping file says."""
    try:
        fields = mapping_data["objects"][kind]["fields"]
    except (KeyError, TypeError):
        return {}
    found: dict[str, str] = {}
    for name, spec in (fields or {}).items():
        value = spec.get("field") if isinstance(spec, Mapping) else spec
        if isinstance(value, str):
            found[str(name)] = value
    return found


def suggest(mapping_data: Any, data: SourceData) -> list[Suggestion]:
    """Every proposal for this mapping against this CRM's fields and values."""
    return list(_field_suggestions(mapping_data, data)) + list(
        _value_suggestions(mapping_data, data)
    )


def _norm(name: str) -> str:
    name = re.sub(r"__c$", "", name.strip(), flags=re.IGNORECASE)
    return re.sub(r"[^a-z0-9]", "", name.casefold())


def _field_suggestions(mapping_data: Any, data: SourceData) -> Iterator[Suggestion]:
    for kind in KINDS:
        columns = data.columns.get(kind, {})
        if not columns:
            continue
        mapped = mapped_fields(mapping_data, kind)
        taken = {field for field in mapped.values() if field in columns}
        wanted = list(CANONICAL_FIELDS[kind]) + [
            n for n in mapped if n not in CANONICAL_FIELDS[kind]
        ]
        for canonical in wanted:
            current = mapped.get(canonical)
            if current is not None and (current in columns or "." in current):
                continue
            kind_type = CANONICAL_FIELDS[kind].get(canonical)
            best = _best_column(kind, canonical, current, kind_type, columns, taken)
            if best is None:
                continue
            taken.add(best.name)
            fill = f", {best.fill:.0%} filled" if best.fill is not None else ""
            why = (
                f"{current!r} is not in {data.origin}; {best.name!r} ({best.type}{fill}) is "
                "the closest name"
                if current is not None
                else f"{best.name!r} ({best.type}{fill}) matches {canonical!r} by name"
            )
            yield Suggestion(Edit("field", best.name, kind=kind, name=canonical), why)


def _best_column(
    kind: str,
    canonical: str,
    current: str | None,
    canonical_type: str | None,
    columns: Mapping[str, Column],
    taken: set[str],
) -> Column | None:
    free = [c for c in columns.values() if c.name not in taken and _fits(c, canonical_type)]
    by_norm = {_norm(c.name): c for c in free}
    by_label = {_norm(c.label): c for c in free if c.label}
    if current is not None:  # a typo of a real name first
        hit = difflib.get_close_matches(_norm(current), list(by_norm), n=1, cutoff=0.8)
        if hit:
            return by_norm[hit[0]]
    for synonym in (*SYNONYMS.get(kind, {}).get(canonical, ()), _norm(canonical)):
        key = _norm(synonym)
        if key in by_norm:
            return by_norm[key]
        if key in by_label:
            return by_label[key]
    hit = difflib.get_close_matches(_norm(canonical), list(by_norm), n=1, cutoff=0.85)
    return by_norm[hit[0]] if hit else None


def _fits(column: Column, canonical_type: str | None) -> bool:
    """A number field for a number, a date for a date; text takes anything (ids may be
    numbers, as HubSpot's hs_object_id is)."""
    if canonical_type not in _COMPATIBLE:
        return True
    return column.type.lower() in _COMPATIBLE[canonical_type]


def _value_suggestions(mapping_data: Any, data: SourceData) -> Iterator[Suggestion]:
    for kind, name, spec, column in _value_fields(mapping_data, data):
        lookup = value_lookup(spec["values"])
        for value, count in column.values.items():
            if normalise_key(value) in lookup:
                continue
            target = closest_value(value, lookup)
            if target is None:
                continue
            canonical, like = target
            records = f"{count} records say" if count else "the CRM offers"
            why = f"{records} {value!r}, close to {like!r} ({canonical})"
            yield Suggestion(Edit("value", value, kind=kind, name=name, canonical=canonical), why)


def uncaught(mapping_data: Any, data: SourceData) -> dict[str, list[tuple[str, int]]]:
    """`kind.field` -> values in the data that no spelling catches and nothing resembles
    (most frequent first): what the admin must decide on."""
    found: dict[str, list[tuple[str, int]]] = {}
    for kind, name, spec, column in _value_fields(mapping_data, data):
        lookup = value_lookup(spec["values"])
        left = [
            (value, count)
            for value, count in column.values.items()
            if normalise_key(value) not in lookup and closest_value(value, lookup) is None
        ]
        if left:
            found[f"{kind}.{name}"] = left
    return found


def _value_fields(
    mapping_data: Any, data: SourceData
) -> Iterator[tuple[str, str, Mapping[str, Any], Column]]:
    """(kind, canonical, its block, the CRM field's column) for every field with a value
    map whose CRM field has values in the data."""
    for kind in KINDS:
        try:
            fields = mapping_data["objects"][kind]["fields"] or {}
        except (KeyError, TypeError):
            continue
        for name, spec in fields.items():
            if not isinstance(spec, Mapping) or not isinstance(spec.get("values"), Mapping):
                continue
            column = data.columns.get(kind, {}).get(str(spec.get("field")))
            if column is not None and column.values:
                yield kind, str(name), spec, column


def value_lookup(values: Mapping[Any, Any]) -> dict[str, tuple[str, str]]:
    """normalised spelling -> (canonical value, the spelling as written)."""
    table: dict[str, tuple[str, str]] = {}
    for canonical, spellings in values.items():
        table[normalise_key(str(canonical))] = (str(canonical), str(canonical))
        listed = spellings if isinstance(spellings, list) else [spellings]
        for spelling in listed:
            table[normalise_key(str(spelling))] = (str(canonical), str(spelling))
    return table


def closest_value(value: str, lookup: Mapping[str, tuple[str, str]]) -> tuple[str, str] | None:
    """(canonical, the spelling it resembles) for a value no spelling catches, if any is close."""
    key = normalise_key(value)
    hit = difflib.get_close_matches(key, list(lookup), n=1, cutoff=0.8)
    if hit:
        return lookup[hit[0]]
    words = set(re.findall(r"[a-z0-9]+", key))
    for spelling, target in lookup.items():
        if len(spelling) >= 4 and (spelling in words or set(spelling.split()) <= words):
            return target
    return None
