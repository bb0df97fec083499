"""The fake org's field-level security through permission sets (issue 13, item 6).

A field the API creates is hidden from the integration user (`new_fields_hidden`) until a
`FieldPermissions` record with `PermissionsRead` on a `PermissionSet` assigned to that user
(`PermissionSetAssignment`) grants it; then describe, SOQL and writes see it
(`PermissionsEdit` false: visible, not updateable). Object and field names as Salesforce's
Object Reference gives them:
https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_fieldpermissions.htm
(Field "must be prefixed with the SobjectType", ParentId = the PermissionSet),
sforce_api_objects_permissionsetassignment.htm (AssigneeId, PermissionSetId) and
sforce_api_objects_permissionset.htm (Name, Label). The running user comes from the
UserInfo endpoint (`GET /services/oauth2/userinfo`: `user_id`, `preferred_username`).

`can_manage_permissions = False` is an integration user without "Manage Profiles and
Permission Sets" / "Assign Permission Sets": each create answers
INSUFFICIENT_ACCESS_OR_READONLY (the code Salesforce gives a create the user may not make).
"""

from __future__ import annotations

import json
from typing import Any

from tests.fakes.salesforce.describe import SObject, make_field
from tests.fakes.salesforce.store import OrgStore
from tests.fakes.salesforce.wire import ApiError, Request, Response, json_response

PERMISSION_OBJECTS = ("PermissionSet", "FieldPermissions", "PermissionSetAssignment")


def _sobject(name: str, plural: str, prefix: str, spec: list[tuple[str, str]]) -> SObject:
    fields = {"Id": make_field("Id", "id")}
    for field_name, type_ in spec:
        fields[field_name] = make_field(field_name, type_)
    for stamp in ("CreatedDate", "LastModifiedDate", "SystemModstamp"):
        fields[stamp] = make_field(stamp, "datetime", updateable=False)
    fields["IsDeleted"] = make_field("IsDeleted", "boolean", updateable=False)
    return SObject(name, name, plural, prefix, fields)


def permission_objects() -> dict[str, SObject]:
    """User, PermissionSet, FieldPermissions and PermissionSetAssignment (key prefixes as
    a real org's: 005, 0PS, 01k, 0Pa)."""
    return {
        "User": _sobject("User", "Users", "005", [("Username", "string")]),
        "PermissionSet": _sobject(
            "PermissionSet",
            "Permission Sets",
            "0PS",
            [("Name", "string"), ("Label", "string"), ("Description", "textarea")],
        ),
        "FieldPermissions": _sobject(
            "FieldPermissions",
            "Field Permissions",
            "01k",
            [
                ("ParentId", "reference"),
                ("SobjectType", "string"),
                ("Field", "string"),
                ("PermissionsRead", "boolean"),
                ("PermissionsEdit", "boolean"),
            ],
        ),
        "PermissionSetAssignment": _sobject(
            "PermissionSetAssignment",
            "Permission Set Assignments",
            "0Pa",
            [("AssigneeId", "reference"), ("PermissionSetId", "reference")],
        ),
    }


class PermissionEndpoints(OrgStore):
    """Creating permission records (one, or a collection) and what they grant."""

    can_manage_permissions: bool
    user_id: str
    username: str
    org_id: str

    def _userinfo(self) -> Response:
        return json_response(
            200,
            {
                "sub": f"https://login.salesforce.com/id/{self.org_id}/{self.user_id}",
                "user_id": self.user_id,
                "organization_id": self.org_id,
                "preferred_username": self.username,
            },
        )

    def _create_one(self, sobject: SObject, values: dict[str, Any]) -> dict[str, Any]:
        """A create result: {"id", "success", "errors"} (the sObject Rows shape)."""
        if sobject.name not in PERMISSION_OBJECTS:
            raise ApiError(400, "INVALID_TYPE", f"the fake org cannot create {sobject.name}")
        if not self.can_manage_permissions:
            return _failure(
                "INSUFFICIENT_ACCESS_OR_READONLY",
                f"insufficient access rights on object id: you cannot create {sobject.name}",
            )
        unknown = [k for k in values if sobject.field(k) is None]
        if unknown:
            return _failure("INVALID_FIELD", f"No such column '{unknown[0]}' on {sobject.name}")
        if sobject.name == "PermissionSet" and any(
            r.get("Name") == values.get("Name") for r in sobject.records.values()
        ):
            return _failure("DUPLICATE_DEVELOPER_NAME", "This API name is already in use")
        if sobject.name == "FieldPermissions":
            obj, _, name = str(values.get("Field") or "").partition(".")
            target = self.sobject(obj)
            if (
                target is None
                or obj != values.get("SobjectType")
                or (target.field(name) is None and name not in target.hidden)
            ):
                return _failure(
                    "INVALID_OR_NULL_FOR_RESTRICTED_PICKLIST",
                    f"Field Name: bad value for restricted picklist field: {values.get('Field')}",
                )
        (rid,) = self.add_records(sobject.name, [values])
        self._apply_permissions()
        return {"id": rid, "success": True, "errors": []}

    def _create_record(self, req: Request, sobject: SObject) -> Response:
        body = _json(req)
        if not isinstance(body, dict):
            raise ApiError(400, "JSON_PARSER_ERROR", "Expected a JSON object")
        result = self._create_one(sobject, body)
        if not result["success"]:
            error = result["errors"][0]
            raise ApiError(400, error["statusCode"], error["message"], error["fields"])
        return json_response(201, result)

    def _collections_create(self, req: Request) -> Response:
        body = _json(req)
        records = body.get("records") if isinstance(body, dict) else None
        if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
            raise ApiError(400, "JSON_PARSER_ERROR", 'Expected {"records": [...]}')
        results = []
        for rec in records:
            sobject = self.sobject(str((rec.get("attributes") or {}).get("type")))
            if sobject is None:
                raise ApiError(400, "INVALID_TYPE", "Must send a concrete entity type.")
            values = {k: v for k, v in rec.items() if k != "attributes"}
            results.append(self._create_one(sobject, values))
        return json_response(200, results)

    def _apply_permissions(self) -> None:
        """Make visible each hidden field a permission set assigned to the user grants."""
        with self._lock:
            assigned = {
                r["PermissionSetId"]
                for r in self.sobjects["PermissionSetAssignment"].records.values()
                if r.get("AssigneeId") == self.user_id
            }
            for perm in self.sobjects["FieldPermissions"].records.values():
                if perm.get("ParentId") not in assigned or not perm.get("PermissionsRead"):
                    continue
                obj, _, name = str(perm["Field"]).partition(".")
                target = self.sobjects[obj]
                if name in target.hidden:
                    self.grant_field(obj, name)
                    if not perm.get("PermissionsEdit"):
                        target.fields[name]["updateable"] = False


def _json(req: Request) -> Any:
    try:
        return json.loads(req.body or b"null")
    except ValueError as exc:
        raise ApiError(400, "JSON_PARSER_ERROR", f"Unexpected character: {exc}") from None


def _failure(code: str, message: str) -> dict[str, Any]:
    return {"success": False, "errors": [{"statusCode": code, "message": message, "fields": []}]}
