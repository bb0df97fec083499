"""The CRM mapping files (`mappings/csv.yaml`, `salesforce.yaml`, `hubspot.yaml`).

A mapping says which CRM field feeds which canonical field (with value maps that
normalise picklists and spellings), and which CRM field receives each output
(with the write policy that protects a person's edits). Connectors own this schema;
`sync` only loads the file and reports the errors it finds.
"""

from __future__ import annotations

import re
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

FieldType = Literal["text", "number", "boolean", "date", "datetime", "multi", "domain"]

ACCOUNT_FIELDS: dict[str, FieldType] = {
    "account_id": "text",
    "name": "text",
    "domain": "domain",
    "industry": "text",
    "employees": "number",
    "annual_revenue": "number",
    "country": "text",
    "region": "text",
    "created_at": "datetime",
    "modified_at": "datetime",
}
OPPORTUNITY_FIELDS: dict[str, FieldType] = {
    "opportunity_id": "text",
    "account_id": "text",
    "stage": "text",
    "is_closed": "boolean",
    "is_won": "boolean",
    "amount": "number",
    "created_at": "datetime",
    "closed_at": "datetime",
    "type": "text",
    "loss_reason": "text",
    "modified_at": "datetime",
}
CANONICAL_FIELDS: dict[str, dict[str, FieldType]] = {
    "account": ACCOUNT_FIELDS,
    "opportunity": OPPORTUNITY_FIELDS,
}
ID_FIELDS = {"account": "account_id", "opportunity": "opportunity_id"}
OUTPUT_KEYS = (
    "score",
    "tier",
    "segment",
    "reasons",
    "route",
    "expansion",
    "win_probability",
    "nurture_track",
)
CURRENT_PREFIX = "current_"
"""Account-frame columns holding an output field's value now in the CRM: `current_score`..."""

_NAME = re.compile(r"^[a-z][a-z0-9_]*$")


class WritePolicy(StrEnum):
    """When the engine may replace a value already in the CRM."""

    OVERWRITE = "overwrite"
    IF_UNCHANGED = "if_unchanged"
    IF_EMPTY = "if_empty"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class FieldMap(_Strict):
    """One canonical field fed by one CRM field."""

    field: Annotated[str, Field(min_length=1)]
    type: FieldType | None = None
    values: dict[str, list[str]] = Field(default_factory=dict)
    """Canonical value -> the CRM spellings that mean it (matched ignoring case and spaces)."""
    date_format: Annotated[str, Field(min_length=2, pattern=r"%")] | None = None
    """For dates that are not ISO 8601: a `strftime` layout such as `%d-%m-%Y`."""
    label: Annotated[str, Field(min_length=1, max_length=40)] | None = None
    """What people read for this field in reasons, segment names and the report
    (`Funding stage`); default: the built-in label, or the name in words."""

    @field_validator("values", mode="before")
    @classmethod
    def _listify(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: [v] if isinstance(v, str) else v for k, v in value.items()}
        return value

    def lookup(self) -> dict[str, str]:
        """The value map as normalised CRM spelling -> canonical value."""
        table = {normalise_key(k): k for k in self.values}
        for canonical, spellings in self.values.items():
            for spelling in spellings:
                table[normalise_key(spelling)] = canonical
        return table


def normalise_key(value: str) -> str:
    """The form under which CRM spellings are matched: case-folded, spaces collapsed."""
    return " ".join(str(value).split()).casefold()


def _field_map(value: Any) -> Any:
    return {"field": value} if isinstance(value, str) else value


class ObjectMap(_Strict):
    """How one CRM object (Account, Company, Deal...) maps to a canonical frame."""

    object: Annotated[str, Field(min_length=1)]
    fields: dict[str, FieldMap]

    @field_validator("fields", mode="before")
    @classmethod
    def _shorthand(cls, value: Any) -> Any:
        if isinstance(value, dict):
            return {k: _field_map(v) for k, v in value.items()}
        return value


class Objects(_Strict):
    account: ObjectMap
    opportunity: ObjectMap


class OutputField(_Strict):
    """One output written to the CRM, and the rule protecting what is there."""

    field: Annotated[str, Field(min_length=1)]
    type: Literal["number", "text", "picklist"] = "text"
    policy: WritePolicy = WritePolicy.OVERWRITE
    length: Annotated[int, Field(gt=0, le=131072)] | None = None
    scale: Annotated[int, Field(ge=0, le=8)] = 0
    values: dict[str, str] = Field(default_factory=dict)
    """Engine value -> CRM value, for picklists whose values differ (A -> "Tier A")."""


class CrmMapping(_Strict):
    """A whole `mappings/<crm>.yaml` file."""

    crm: Literal["csv", "salesforce", "hubspot", "warehouse"]
    objects: Objects
    outputs: dict[str, OutputField]
    settings: dict[str, Any] = Field(default_factory=dict)
    """Connector-specific settings, checked by the connector's own `Settings` model."""

    def problems(self) -> list[tuple[tuple[str | int, ...], str]]:
        """Every mistake the schema alone cannot catch, each with its key path."""
        found: list[tuple[tuple[str | int, ...], str]] = []
        for key in self.outputs:
            if key not in OUTPUT_KEYS:
                found.append(
                    (("outputs", key), f"unknown output {key!r}; valid: {', '.join(OUTPUT_KEYS)}")
                )
        for kind in ("account", "opportunity"):
            object_map: ObjectMap = getattr(self.objects, kind)
            core = CANONICAL_FIELDS[kind]
            base: tuple[str | int, ...] = ("objects", kind, "fields")
            required = [ID_FIELDS[kind]] + (["account_id"] if kind == "opportunity" else [])
            for name in required:
                if name not in object_map.fields:
                    found.append((base, f"must map the canonical field {name!r}; it is missing"))
            for name, spec in object_map.fields.items():
                if not _NAME.match(name):
                    found.append(((*base, name), "canonical names must be lowercase snake_case"))
                elif name.startswith(CURRENT_PREFIX):
                    found.append(((*base, name), f"the prefix {CURRENT_PREFIX!r} is reserved"))
                if name in core and spec.type is not None and spec.type != core[name]:
                    found.append(
                        (
                            (*base, name, "type"),
                            f"must be {core[name]!r} for this core field. Got {spec.type!r}",
                        )
                    )
        return found

    def field_types(self, kind: str) -> dict[str, FieldType]:
        """Every canonical field of `kind` this mapping provides, with its type."""
        core = CANONICAL_FIELDS[kind]
        object_map: ObjectMap = getattr(self.objects, kind)
        return {
            name: core.get(name) or spec.type or "text" for name, spec in object_map.fields.items()
        }

    def labels(self) -> dict[str, str]:
        """Canonical field -> the `label:` the mapping gives it (fields without one left out)."""
        found: dict[str, str] = {}
        for kind in ("opportunity", "account"):  # an account field's label wins
            object_map: ObjectMap = getattr(self.objects, kind)
            found.update({k: v.label for k, v in object_map.fields.items() if v.label})
        return found

    def value_domain(self, kind: str, name: str) -> set[str]:
        """The canonical values a value map can produce for one field (empty if unmapped)."""
        object_map: ObjectMap = getattr(self.objects, kind)
        spec = object_map.fields.get(name)
        return set(spec.values) if spec else set()
