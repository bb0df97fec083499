"""HubSpot property definitions: describe them, and create the missing `icp_*` outputs.

`describe` reads `GET /crm/v3/properties/{object}` for companies and deals and reports
each property in the engine's vocabulary (`text`, `number`, `picklist`, `multi`,
`boolean`, `date`, `datetime`); read-only and calculated properties are not updateable.

`create` puts the output properties in a group of their own (`icp`, "ICP Engine"):
score as number, tier as an enumeration whose options are the tier values (the output's
`values` map when it has one, else A B C D), segment and route as single-line text,
reasons as multi-line text. Without the `crm.schemas.companies.write` scope HubSpot
answers 403 `MISSING_SCOPES`; each field then says what to create by hand.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from icp_engine.connectors.base import FieldCreation, FieldInfo
from icp_engine.connectors.hubspot.client import HubSpotRequestError, Transport
from icp_engine.connectors.hubspot.pull import ASSOCIATION_PREFIX
from icp_engine.connectors.mapping import CrmMapping, OutputField

GROUP = "icp"
GROUP_LABEL = "ICP Engine"
DEFAULT_TIERS = ("A", "B", "C", "D")
SCHEMA_SCOPE = "crm.schemas.companies.write"
_TYPES = {
    "string": "text",
    "phone_number": "text",
    "number": "number",
    "bool": "boolean",
    "date": "date",
    "datetime": "datetime",
}


def field_info(prop: dict[str, Any]) -> FieldInfo:
    """One property definition as a `FieldInfo`."""
    kind, field_type = str(prop.get("type", "string")), str(prop.get("fieldType", ""))
    if kind == "enumeration":
        engine_type = "multi" if field_type == "checkbox" else "picklist"
    else:
        engine_type = _TYPES.get(kind, kind)
    metadata = prop.get("modificationMetadata") or {}
    read_only = bool(metadata.get("readOnlyValue")) or bool(prop.get("calculated"))
    return FieldInfo(
        name=str(prop.get("name")),
        type=engine_type,
        label=str(prop.get("label") or ""),
        updateable=not read_only,
        length=None,
        picklist_values=tuple(
            str(o.get("value")) for o in prop.get("options") or [] if not o.get("hidden")
        ),
    )


def describe(transport: Transport, mapping: CrmMapping) -> dict[str, dict[str, FieldInfo]]:
    """Properties of the mapped objects, keyed by kind then property name."""
    described: dict[str, dict[str, FieldInfo]] = {}
    for kind in ("account", "opportunity"):
        object_map = getattr(mapping.objects, kind)
        answer = transport.retried(kind, "properties.core_api", "get_all", object_map.object)
        fields = {}
        for prop in answer.body.get("results") or []:
            info = field_info(prop)
            fields[info.name] = info
        for spec in object_map.fields.values():  # associations read like fields
            if spec.field.startswith(ASSOCIATION_PREFIX):
                target = spec.field[len(ASSOCIATION_PREFIX) :]
                fields[spec.field] = FieldInfo(
                    spec.field, "reference", f"Associated {target}", updateable=False
                )
        described[kind] = fields
    return described


def _output_key(mapping: CrmMapping, spec: OutputField) -> str:
    return next((k for k, o in mapping.outputs.items() if o.field == spec.field), spec.field)


def definition(key: str, spec: OutputField) -> dict[str, Any] | str:
    """The `POST /crm/v3/properties/companies` body for one output, or why there is none."""
    body: dict[str, Any] = {
        "name": spec.field,
        "label": f"ICP {key.replace('_', ' ').title()}",
        "groupName": GROUP,
        "description": f"Written by ICP Engine ({key}).",
    }
    if spec.type == "number":
        return {**body, "type": "number", "fieldType": "number"}
    if spec.type == "picklist":
        values = list(dict.fromkeys(spec.values.values())) or (
            list(DEFAULT_TIERS) if key == "tier" else []
        )
        if not values:
            return f"give outputs.{key}.values in hubspot.yaml so its options are known"
        options = [
            {"label": v, "value": v, "displayOrder": i, "hidden": False}
            for i, v in enumerate(values)
        ]
        return {**body, "type": "enumeration", "fieldType": "select", "options": options}
    long_text = key == "reasons" or (spec.length or 0) > 255
    return {**body, "type": "string", "fieldType": "textarea" if long_text else "text"}


def by_hand(key: str, spec: OutputField) -> str:
    """What to create in Settings > Properties when the API may not."""
    body = definition(key, spec)
    if isinstance(body, str):
        return body
    options = [o["value"] for o in body.get("options", [])]
    kind = f"{body['type']}/{body['fieldType']}" + (f" with options {options}" if options else "")
    return (
        f"create the company property {spec.field} ({kind}, group {GROUP_LABEL!r}) in "
        f"Settings > Properties, or grant the private app the {SCHEMA_SCOPE} scope"
    )


def create(
    transport: Transport, mapping: CrmMapping, missing: Sequence[OutputField]
) -> list[FieldCreation]:
    """Create the group (if absent) and each missing output property; answer per field."""
    if not missing:
        return []
    object_type = mapping.objects.account.object
    keyed = [(_output_key(mapping, spec), spec) for spec in missing]
    try:
        _ensure_group(transport, object_type)
    except HubSpotRequestError as exc:
        if exc.status == 403:
            return [FieldCreation(s.field, False, by_hand(k, s)) for k, s in keyed]
        raise
    return [_create_one(transport, object_type, key, spec) for key, spec in keyed]


def _ensure_group(transport: Transport, object_type: str) -> None:
    try:
        transport.retried("account", "properties.groups_api", "get_by_name", object_type, GROUP)
        return
    except HubSpotRequestError as exc:
        if exc.status != 404:
            raise
    body = {"name": GROUP, "label": GROUP_LABEL, "displayOrder": -1}
    try:
        transport.retried("account", "properties.groups_api", "create", object_type, body)
    except HubSpotRequestError as exc:
        if exc.status != 409:  # created meanwhile
            raise


def _create_one(
    transport: Transport, object_type: str, key: str, spec: OutputField
) -> FieldCreation:
    body = definition(key, spec)
    if isinstance(body, str):
        return FieldCreation(spec.field, False, body)
    try:
        transport.retried("account", "properties.core_api", "create", object_type, body)
    except HubSpotRequestError as exc:
        if exc.status == 409:
            return FieldCreation(spec.field, True, f"{spec.field} already exists")
        if exc.status == 403:
            return FieldCreation(spec.field, False, f"{exc.category}: {by_hand(key, spec)}")
        return FieldCreation(spec.field, False, f"HubSpot refused it: {exc.category}: {exc.detail}")
    return FieldCreation(spec.field, True, f"created {spec.field} ({_kind(body)})")


def _kind(body: dict[str, Any]) -> str:
    return f"{body['type']}/{body['fieldType']}"
