"""Describe metadata of the fake Salesforce org: field dicts with the keys of a real
describe, and sObjects (their fields, records, ids and describe)."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from tests.fakes.salesforce.values import STRING_TYPES, make_id

_SOAP = {
    "id": "tns:ID",
    "reference": "tns:ID",
    "boolean": "xsd:boolean",
    "int": "xsd:int",
    "double": "xsd:double",
    "currency": "xsd:double",
    "percent": "xsd:double",
    "date": "xsd:date",
    "datetime": "xsd:dateTime",
}


def _picklist(values: Iterable[Any]) -> list[dict[str, Any]]:
    return [
        v
        if isinstance(v, dict)
        else {"active": True, "defaultValue": False, "label": v, "validFor": None, "value": v}
        for v in values
    ]


def make_field(name: str, type_: str = "string", **attrs: Any) -> dict[str, Any]:
    """A describe field dict with the keys (alphabetical) of a real describe."""
    fixed = type_ in ("id",) or attrs.get("updateable") is False
    nillable = attrs.get("nillable", not fixed and type_ != "boolean")
    length = attrs.get(
        "length",
        18
        if type_ in ("id", "reference")
        else 4099
        if type_ == "multipicklist"
        else 255
        if type_ in STRING_TYPES
        else 0,
    )
    label = attrs.pop("label", None) or name.removesuffix("__c").replace("_", " ")
    f: dict[str, Any] = {
        "aggregatable": type_ not in ("textarea", "boolean"),
        "aiPredictionField": False,
        "autoNumber": False,
        "byteLength": length if type_ in ("id", "reference") else length * 3,
        "calculated": False,
        "calculatedFormula": None,
        "cascadeDelete": False,
        "caseSensitive": False,
        "compoundFieldName": None,
        "controllerName": None,
        "createable": not fixed,
        "custom": name.endswith("__c"),
        "defaultValue": False if type_ == "boolean" else None,
        "defaultValueFormula": None,
        "defaultedOnCreate": fixed or type_ == "boolean",
        "dependentPicklist": False,
        "deprecatedAndHidden": False,
        "digits": 9 if type_ == "int" else 0,
        "displayLocationInDecimal": False,
        "encrypted": False,
        "externalId": False,
        "extraTypeInfo": "plaintextarea" if type_ == "textarea" else None,
        "filterable": True,
        "filteredLookupInfo": None,
        "formulaTreatNullNumberAsZero": False,
        "groupable": type_ not in ("double", "currency", "percent", "textarea", "datetime"),
        "highScaleNumber": False,
        "htmlFormatted": False,
        "idLookup": type_ == "id" or bool(attrs.get("nameField")),
        "inlineHelpText": None,
        "label": label,
        "length": length,
        "mask": None,
        "maskType": None,
        "name": name,
        "nameField": False,
        "namePointing": False,
        "nillable": nillable,
        "permissionable": nillable and not fixed,
        "picklistValues": [],
        "polymorphicForeignKey": False,
        "precision": 18 if type_ in ("double", "currency") else 0,
        "queryByDistance": False,
        "referenceTargetField": None,
        "referenceTo": [],
        "relationshipName": None,
        "relationshipOrder": None,
        "restrictedDelete": False,
        "restrictedPicklist": False,
        "scale": 0,
        "searchPrefilterable": type_ == "reference",
        "soapType": _SOAP.get(type_, "xsd:string"),
        "sortable": type_ != "textarea",
        "type": type_,
        "unique": False,
        "updateable": not fixed,
        "writeRequiresMasterRead": False,
    }
    update_field(f, **attrs)
    return f


def update_field(f: dict[str, Any], **attrs: Any) -> None:
    """Change describe attributes, keeping the derived ones (soapType, byteLength) in step."""
    if "picklistValues" in attrs:
        attrs["picklistValues"] = _picklist(attrs["picklistValues"])
    if "type" in attrs and "soapType" not in attrs:
        attrs["soapType"] = _SOAP.get(attrs["type"], "xsd:string")
    if "length" in attrs and "byteLength" not in attrs:
        attrs["byteLength"] = attrs["length"] * 3
    if attrs.get("updateable") is False:
        attrs.setdefault("createable", False)
    f.update(attrs)


@dataclass
class SObject:
    name: str
    label: str
    plural: str
    key_prefix: str
    fields: dict[str, dict[str, Any]]
    records: dict[str, dict[str, Any]] = field(default_factory=dict)
    custom: bool = False
    counter: int = 0
    hidden: dict[str, dict[str, Any]] = field(default_factory=dict)
    """Fields that exist but field-level security hides from the integration user: not
    in describe, SOQL or writes; listed by the Tooling API's FieldDefinition."""

    def field(self, name: str) -> dict[str, Any] | None:
        found = self.fields.get(name)
        if found is None:
            lower = name.lower()
            found = next((f for k, f in self.fields.items() if k.lower() == lower), None)
        return found

    def next_id(self) -> str:
        self.counter += 1
        return make_id(self.key_prefix, self.counter)

    def describe(
        self, version: str, instance_url: str, children: list[dict[str, Any]]
    ) -> dict[str, Any]:
        base = f"/services/data/v{version}/sobjects/{self.name}"
        return {
            "actionOverrides": [],
            "activateable": False,
            "associateEntityType": None,
            "associateParentEntity": None,
            "childRelationships": children,
            "compactLayoutable": True,
            "createable": True,
            "custom": self.custom,
            "customSetting": False,
            "deepCloneable": True,
            "defaultImplementation": None,
            "deletable": True,
            "deprecatedAndHidden": False,
            "extendedBy": None,
            "extendsInterfaces": None,
            "feedEnabled": True,
            "fields": list(self.fields.values()),
            "hasSubtypes": False,
            "implementedBy": None,
            "implementsInterfaces": None,
            "isInterface": False,
            "isSubtype": False,
            "keyPrefix": self.key_prefix,
            "label": self.label,
            "labelPlural": self.plural,
            "layoutable": True,
            "listviewable": None,
            "lookupLayoutable": None,
            "mergeable": self.name == "Account",
            "mruEnabled": True,
            "name": self.name,
            "namedLayoutInfos": [],
            "networkScopeFieldName": None,
            "queryable": True,
            "recordTypeInfos": [
                {
                    "active": True,
                    "available": True,
                    "defaultRecordTypeMapping": True,
                    "developerName": "Master",
                    "master": True,
                    "name": "Master",
                    "recordTypeId": "012000000000000AAA",
                    "urls": {"layout": f"{base}/describe/layouts/012000000000000AAA"},
                }
            ],
            "replicateable": True,
            "retrieveable": True,
            "searchLayoutable": True,
            "searchable": True,
            "sobjectDescribeOption": "FULL",
            "supportedScopes": [
                {"label": f"All {self.plural.lower()}", "name": "everything"},
                {"label": f"My {self.plural.lower()}", "name": "mine"},
            ],
            "triggerable": True,
            "undeletable": True,
            "updateable": True,
            "urls": {
                "compactLayouts": f"{base}/describe/compactLayouts",
                "rowTemplate": f"{base}/{{ID}}",
                "approvalLayouts": f"{base}/describe/approvalLayouts",
                "uiDetailTemplate": f"{instance_url}/{{ID}}",
                "uiEditTemplate": f"{instance_url}/{{ID}}/e",
                "listviews": f"{base}/listviews",
                "describe": f"{base}/describe",
                "uiNewRecord": f"{instance_url}/{self.key_prefix}/e",
                "quickActions": f"{base}/quickActions",
                "layouts": f"{base}/describe/layouts",
                "sobject": base,
            },
        }
