"""Names that end up inside a query or a path, checked before anything runs.

The Salesforce connector splices object and field names into SOQL (values are escaped
by `format_soql`; names cannot be), so every name in salesforce.yaml must be an API
name: a letter, then letters, digits and underscores, at most 80 characters (custom
names end in `__c`, namespaced ones start with `ns__`). Anything else (`Account WHERE
Name != ''`, `Account--`) is a configuration error found by `icp mappings validate`,
not a query. The CSV connector turns object names into file names (`Account.csv`) and
HubSpot puts them into URL paths, so their object names must be plain names too.
See "Custom Object and Field API Names" in the Salesforce Object Reference:
https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_concepts.htm
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from icp_engine.connectors.mapping import CrmMapping

API_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,79}")
KeyPath = tuple[str | int, ...]


def _check(name: str, what: str) -> str | None:
    if API_NAME.fullmatch(name) and not name.endswith("_"):
        return None
    shown = name if len(name) <= 60 else name[:57] + "..."
    return (
        f"{shown!r} is not a {what}: letters, digits and underscores only, starting with a "
        "letter (e.g. Account, Industry, ICP_Score__c)"
    )


def name_problems(mapping: CrmMapping) -> list[tuple[KeyPath, str]]:
    """Every object or field name in `mapping` that must not reach a query or a path."""
    found: list[tuple[KeyPath, str]] = []
    crm_names = {"salesforce": "Salesforce API name", "csv": "file name", "hubspot": "object"}
    if mapping.crm not in crm_names:  # warehouse: names are quoted identifiers, never spliced
        return found
    what = crm_names[mapping.crm]
    for kind in ("account", "opportunity"):
        object_map = getattr(mapping.objects, kind)
        if (problem := _check(object_map.object, f"{what} for an object")) is not None:
            found.append((("objects", kind, "object"), problem))
        if mapping.crm != "salesforce":
            continue
        for name, spec in object_map.fields.items():
            if (problem := _check(spec.field, "Salesforce field API name")) is not None:
                found.append((("objects", kind, "fields", name), problem))
    if mapping.crm == "salesforce":
        for key, output in mapping.outputs.items():
            if (problem := _check(output.field, "Salesforce field API name")) is not None:
                found.append((("outputs", key, "field"), problem))
    return found
