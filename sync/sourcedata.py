"""What the CRM really holds, for the mapping editor and `icp mappings suggest`.

For each object (account, opportunity) the fields the CRM offers with their type, label
and fill rate, and for text fields the distinct values with their counts: read from an
export's CSV files (`--source DIR`, every row), or from a connector's `describe()` (field
types and picklist values, no counts), or from the org itself (`from_crm`: describe plus
a sample of records read through the connector). The raw rows of an export are kept too, so the
editor can score them with an edited mapping and show what the change does.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from icp_engine import connectors
from icp_engine.connectors.base import Connector, FieldInfo
from icp_engine.connectors.csvfiles import _detect_encoding
from icp_engine.connectors.errors import SourceError
from icp_engine.connectors.mapping import ID_FIELDS, CrmMapping

KINDS = ("account", "opportunity")
EXPORT_ABSENT = "{object}.csv has no column"
ORG_ABSENT = "{object} has no field (or none the integration user can read) named"
MAX_VALUES = 200
"""Distinct values listed per field (the most frequent); more is an id or free text."""
_TRUTHS = {"true", "false", "0", "1", "yes", "no"}


@dataclass
class Column:
    """One CRM field (or export column) as the admin picks it."""

    name: str
    type: str
    label: str = ""
    fill: float | None = None
    """Share of records with a value (None when only metadata was read)."""
    values: dict[str, int] = field(default_factory=dict)
    """Distinct values -> records holding each, most frequent first (text fields only)."""

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "type": self.type,
            "label": self.label,
            "fill": self.fill,
            "values": [[v, n] for v, n in self.values.items()],
        }


@dataclass
class SourceData:
    """Fields (and, from an export, rows) of the CRM the mapping targets."""

    origin: str
    columns: dict[str, dict[str, Column]]
    raw: dict[str, pd.DataFrame] = field(default_factory=dict)
    """kind -> every row of the export as text (CRM field names as columns); empty
    when the fields came from metadata only."""
    absent: str = ORG_ABSENT
    """How a mapped name missing here is announced (see `sync.fieldcheck.check_fields`)."""

    @property
    def has_rows(self) -> bool:
        return all(kind in self.raw for kind in KINDS)


def from_export(objects: Mapping[str, str], source: Path) -> SourceData:
    """Read `<Object>.csv` for each kind (`objects`: kind -> CRM object name).

    Raises:
        SourceError: the directory or a file is missing or unreadable.
    """
    if not source.is_dir():
        msg = f"--source {source}: no such directory"
        raise SourceError(msg)
    columns: dict[str, dict[str, Column]] = {}
    raw: dict[str, pd.DataFrame] = {}
    for kind in KINDS:
        path = source / f"{objects[kind]}.csv"
        if not path.is_file():
            msg = f"{path}: file not found (expected a Data Export CSV with API field names)"
            raise SourceError(msg)
        try:
            frame = pd.read_csv(
                path,
                dtype=str,
                keep_default_na=False,
                encoding=_detect_encoding(path),
            )
        except (OSError, ValueError, pd.errors.ParserError) as exc:
            msg = f"{path}: cannot be read as CSV ({exc})"
            raise SourceError(msg) from exc
        raw[kind] = frame
        columns[kind] = {str(name): profile(str(name), frame[name]) for name in frame.columns}
    return SourceData(f"the export in {source}", columns, raw, EXPORT_ABSENT)


def from_describe(described: Mapping[str, Mapping[str, FieldInfo]], origin: str) -> SourceData:
    """Fields from a connector's `describe()`: types, labels, picklist values (no counts)."""
    columns = {
        kind: {
            name: Column(name, info.type, info.label, None, dict.fromkeys(info.picklist_values, 0))
            for name, info in described.get(kind, {}).items()
        }
        for kind in KINDS
    }
    return SourceData(origin, columns)


def profile(name: str, series: pd.Series) -> Column:
    """Type guess, fill rate and value counts of one export column."""
    text = series.fillna("").astype(str).str.strip()
    present = text[text != ""]
    fill = len(present) / len(text) if len(text) else 0.0
    kind = _guess_type(present)
    values: dict[str, int] = {}
    if kind in ("text", "boolean") and len(present):
        if present.str.contains(";", regex=False).mean() > 0.3:  # multi-select: each value
            present = present.str.split(";").explode().str.strip()
            present = present[present != ""]
        counts = present.value_counts()
        if counts.iloc[0] > 1 or len(counts) <= 20:  # not a column of unique names or ids
            values = {str(v): int(n) for v, n in counts.head(MAX_VALUES).items()}
    return Column(name, kind, "", round(fill, 4), values)


def _guess_type(present: pd.Series) -> str:
    if not len(present):
        return "text"
    sample = present.head(2000)
    if (
        sample.str.lower().isin(_TRUTHS).all()
        and sample.str.lower().isin(_TRUTHS - {"0", "1"}).any()
    ):
        return "boolean"
    numbers = pd.to_numeric(sample.str.replace(",", "", regex=False), errors="coerce")
    if numbers.notna().mean() >= 0.95:
        return "number"
    if sample.str.match(r"^\d{4}-\d{2}-\d{2}").mean() >= 0.95:
        return "datetime" if sample.str.contains("T").any() else "date"
    return "text"


SKIPPED_TYPES = frozenset(
    {"address", "location", "base64", "anytype", "complexvalue", "encryptedstring", "textarea"}
)
"""Salesforce compound and long fields: never a canonical field, and a Bulk API query
(used for large pulls) "can't access or query compound address or compound geolocation
fields" (Salesforce, Bulk API "Using Bulk Query": developer.salesforce.com/docs/
atlas.en-us.api_asynch.meta/api_asynch/asynch_api_using_bulk_query.htm); their
components (BillingCountry...) are ordinary fields and stay."""
MAX_FIELDS = 150
"""Fields read per object for the sample (mapped ones first, then custom, then standard)."""
NAME_BUDGET = 6_000
"""Characters of field names (each counted with 12 more for `&properties=`) one sample
query may carry. Both APIs take the field list in the URL of a GET, and HubSpot answers
414 URI Too Long somewhere between 8,000 and 16,000 characters (dlt-hub/verified-sources
#305, PostHog/posthog#31617; hubspot-api-client repeats `properties=` per name,
HubSpot/hubspot-api-python#334)."""


def from_crm(
    crm: str, mapping: CrmMapping, limit: int, connector: Connector | None = None
) -> SourceData:
    """The org's fields (describe) and a sample of its records (up to `limit` per object).

    The records are read through the connector itself (real client, its paging and
    retries), with a throw-away mapping that maps every readable field as text, so the
    values come back as the CRM spells them: what the value maps must catch.
    """
    connector = connector or connectors.create(crm, mapping)
    connector.connect()
    described = connector.describe()
    wide, names = _wide_mapping(mapping, described)
    reader = connectors.create(crm, wide)
    reader.connect()
    raw: dict[str, pd.DataFrame] = {}
    for kind in KINDS:
        pages: list[pd.DataFrame] = []
        rows = 0
        for page in reader.pull(kind):  # type: ignore[arg-type]
            pages.append(page)
            rows += len(page)
            if rows >= limit:
                break
        frame = pd.concat(pages, ignore_index=True).head(limit) if pages else pd.DataFrame()
        frame = frame.rename(columns=names[kind])
        kept = [c for c in dict.fromkeys(names[kind].values()) if c in frame]
        raw[kind] = frame[kept].map(_text) if len(frame) else pd.DataFrame(columns=kept)
    columns: dict[str, dict[str, Column]] = {}
    for kind in KINDS:
        columns[kind] = {}
        for name, info in described.get(kind, {}).items():
            column = Column(
                name, info.type, info.label, None, dict.fromkeys(info.picklist_values, 0)
            )
            if name in raw[kind] and len(raw[kind]):
                seen = profile(name, raw[kind][name])
                column.fill = seen.fill
                column.values = seen.values or column.values
            columns[kind][name] = column
    count = len(raw["account"])
    place = "HubSpot portal" if crm == "hubspot" else f"{crm.capitalize()} org"
    origin = f"the {place} ({count} accounts read{', a sample' if count >= limit else ''})"
    return SourceData(origin, columns, raw)


def _text(value: object) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    return str(value)


def _wide_mapping(
    mapping: CrmMapping, described: Mapping[str, Mapping[str, FieldInfo]]
) -> tuple[CrmMapping, dict[str, dict[str, str]]]:
    """A mapping reading every useful field as text (`f1`, `f2`...), and the way back."""
    objects: dict[str, Any] = {}
    names: dict[str, dict[str, str]] = {}
    for kind in KINDS:
        object_map = getattr(mapping.objects, kind)
        ids = [ID_FIELDS[kind]] + (["account_id"] if kind == "opportunity" else [])
        fields: dict[str, Any] = {}
        back: dict[str, str] = {}
        for canonical in ids:
            spec = object_map.fields.get(canonical)
            if spec is not None:
                fields[canonical] = {"field": spec.field}
                back[canonical] = spec.field
        mapped = {spec.field for spec in object_map.fields.values()}
        candidates = [
            info
            for info in described.get(kind, {}).values()
            if info.type.lower() not in SKIPPED_TYPES and info.name not in back.values()
        ]
        candidates.sort(key=lambda i: (i.name not in mapped, not i.name.endswith("__c")))
        budget = NAME_BUDGET - sum(len(name) + 12 for name in back.values())
        for number, info in enumerate(candidates[:MAX_FIELDS], 1):
            budget -= len(info.name) + 12
            if budget < 0:
                break
            fields[f"f{number}"] = {"field": info.name, "type": "text"}
            back[f"f{number}"] = info.name
        objects[kind] = {"object": object_map.object, "fields": fields}
        names[kind] = back
    wide = CrmMapping.model_validate(
        {"crm": mapping.crm, "objects": objects, "outputs": {}, "settings": mapping.settings}
    )
    return wide, names
