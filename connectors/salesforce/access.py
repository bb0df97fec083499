"""Granting the integration user field-level access to fields it cannot see (issue 13.6).

A field `icp mappings apply` creates through the Tooling API is invisible to every user
until field-level security grants it. Where the org lets the integration user manage
permission sets, `grant_access` does what an admin would: a permission set "ICP Engine"
(API name ICP_Engine) if absent, one `FieldPermissions` record per field on it (Read, and
Edit for an output), and the set assigned to the running user, all through sObject REST
and sObject Collections. Names from Salesforce's Object Reference:

- FieldPermissions: ParentId (the PermissionSet), SobjectType, Field ("must be prefixed
  with the SobjectType"), PermissionsRead, PermissionsEdit ("Requires PermissionsRead");
  https://developer.salesforce.com/docs/atlas.en-us.object_reference.meta/object_reference/sforce_api_objects_fieldpermissions.htm
- PermissionSetAssignment: AssigneeId (the User), PermissionSetId;
  .../sforce_api_objects_permissionsetassignment.htm
- the running user: `user_id` from the UserInfo endpoint (`/services/oauth2/userinfo`,
  help.salesforce.com remoteaccess_using_userinfo_endpoint.htm), or the User whose
  Username is SF_USERNAME.

When the org refuses (no "Manage Profiles and Permission Sets" / "Assign Permission
Sets"), each field's answer says what to grant by hand, with the Setup path.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from icp_engine.connectors.salesforce.session import error_code, translate
from simple_salesforce import Salesforce, format_soql
from simple_salesforce.exceptions import SalesforceError

log = logging.getLogger(__name__)

PERMISSION_SET = "ICP_Engine"
PERMISSION_SET_LABEL = "ICP Engine"


@dataclass(frozen=True)
class FieldAccess:
    """One field the integration user needs: Read, and Edit when `edit` (an output)."""

    obj: str
    field: str
    edit: bool


class Refused(Exception):
    """The org refused a step; the message says which and why."""


def by_hand(wanted: Sequence[FieldAccess]) -> str:
    """The Setup steps an admin follows to grant `wanted` to the integration user."""
    edit = [f"{a.obj}.{a.field}" for a in wanted if a.edit]
    read = [f"{a.obj}.{a.field}" for a in wanted if not a.edit]
    parts = []
    if edit:
        parts.append(f"Read and Edit on {', '.join(edit)}")
    if read:
        parts.append(f"Read on {', '.join(read)}")
    return (
        f"Setup > Permission Sets > New (label '{PERMISSION_SET_LABEL}', API name "
        f"{PERMISSION_SET}) > Object Settings > each object > Edit: {'; '.join(parts)}; "
        "then Manage Assignments > Add Assignment: the integration user. (Or Setup > "
        "Object Manager > the object > Fields & Relationships > the field > Set "
        "Field-Level Security for the integration user's profile.) The integration user "
        "needs 'Manage Profiles and Permission Sets' and 'Assign Permission Sets' for "
        "`icp mappings apply` to do this itself"
    )


def grant_access(sf: Salesforce, wanted: Sequence[FieldAccess]) -> dict[str, str | None]:
    """Grant every field of `wanted`; field -> None when granted, else what went wrong
    and what to grant by hand. Raises `ConnectorError` when Salesforce cannot be reached."""
    if not wanted:
        return {}
    try:
        user = _running_user(sf)
        permission_set = _permission_set(sf)
        outcome = _field_permissions(sf, permission_set, wanted)
        if any(v is None for v in outcome.values()):
            _assign(sf, permission_set, user)
    except Refused as exc:
        reason = f"Salesforce refused to grant access ({exc}); grant it by hand: {by_hand(wanted)}"
        return {a.field: reason for a in wanted}
    except Exception as exc:
        raise translate(exc, "granting field access") from exc
    return outcome


def _refusal(exc: SalesforceError, doing: str) -> Refused:
    code, message = error_code(exc)
    return Refused(f"{doing}: {code}: {message}")


def _records(sf: Salesforce, soql: str, doing: str) -> list[dict[str, Any]]:
    try:
        return list(sf.query_all(soql).get("records") or [])
    except SalesforceError as exc:
        raise _refusal(exc, doing) from exc


def _running_user(sf: Salesforce) -> str:
    """The integration user's Id: by SF_USERNAME, else from the UserInfo endpoint."""
    username = os.environ.get("SF_USERNAME", "").strip()
    if username:
        soql = format_soql("SELECT Id FROM User WHERE Username = {}", username)
        found = _records(sf, soql, "finding the integration user")
        if found:
            return str(found[0]["Id"])
    answer = sf.session.get(
        f"https://{sf.sf_instance}/services/oauth2/userinfo", headers=sf.headers, timeout=30
    )
    user = answer.json().get("user_id") if answer.ok else None
    if not user:
        raise Refused(f"finding the integration user: userinfo answered {answer.status_code}")
    return str(user)


def _permission_set(sf: Salesforce) -> str:
    """The Id of the ICP Engine permission set, created if absent."""
    soql = format_soql("SELECT Id FROM PermissionSet WHERE Name = {}", PERMISSION_SET)
    found = _records(sf, soql, "looking for the permission set")
    if found:
        return str(found[0]["Id"])
    body = {
        "Name": PERMISSION_SET,
        "Label": PERMISSION_SET_LABEL,
        "Description": "Access to the fields ICP Engine reads and writes "
        "(created by `icp mappings apply`)",
    }
    try:
        created = sf.restful("sobjects/PermissionSet", method="POST", json=body)
    except SalesforceError as exc:
        raise _refusal(exc, f"creating permission set {PERMISSION_SET}") from exc
    if not isinstance(created, dict) or not created.get("id"):
        raise Refused(f"creating permission set {PERMISSION_SET}: answered {created!r}")
    log.info("created permission set %s (%s)", PERMISSION_SET, created["id"])
    return str(created["id"])


def _field_permissions(
    sf: Salesforce, permission_set: str, wanted: Sequence[FieldAccess]
) -> dict[str, str | None]:
    """Create (or widen) one FieldPermissions record per field on the permission set."""
    soql = format_soql(
        "SELECT Id, Field, PermissionsRead, PermissionsEdit FROM FieldPermissions "
        "WHERE ParentId = {}",
        permission_set,
    )
    existing = {str(r["Field"]): r for r in _records(sf, soql, "reading field permissions")}
    outcome: dict[str, str | None] = {}
    create, update = [], []
    for access in wanted:
        name = f"{access.obj}.{access.field}"
        values = {"PermissionsRead": True, "PermissionsEdit": access.edit}
        have = existing.get(name)
        if have is None:
            record = {"attributes": {"type": "FieldPermissions"}, "ParentId": permission_set,
                      "SobjectType": access.obj, "Field": name, **values}  # fmt: skip
            create.append((access.field, record))
        elif not have.get("PermissionsRead") or (access.edit and not have.get("PermissionsEdit")):
            record = {"attributes": {"type": "FieldPermissions"}, "Id": have["Id"], **values}
            update.append((access.field, record))
        else:
            outcome[access.field] = None
    for method, batch in (("POST", create), ("PATCH", update)):
        for start in range(0, len(batch), 200):  # a collection takes up to 200 records
            chunk = batch[start : start + 200]
            body = {"allOrNone": False, "records": [r for _, r in chunk]}
            try:
                answers = sf.restful("composite/sobjects", method=method, json=body)
            except SalesforceError as exc:
                raise _refusal(exc, "granting field permissions") from exc
            answers = answers if isinstance(answers, list) else []
            for index, (field, _) in enumerate(chunk):
                answer = answers[index] if index < len(answers) else {}
                if isinstance(answer, dict) and answer.get("success") is True:
                    outcome[field] = None
                    continue
                errors = answer.get("errors") if isinstance(answer, dict) else None
                first = (errors or [{}])[0]
                code = first.get("statusCode") or "NO_RESULT"
                message = first.get("message") or "no confirmation in the answer"
                if code.startswith("INSUFFICIENT_ACCESS"):
                    raise Refused(f"granting field permissions: {code}: {message}")
                outcome[field] = f"not granted ({code}: {message})"
    return outcome


def _assign(sf: Salesforce, permission_set: str, user: str) -> None:
    """Assign the permission set to the running user unless it already is."""
    soql = format_soql(
        "SELECT Id FROM PermissionSetAssignment WHERE AssigneeId = {} AND PermissionSetId = {}",
        user,
        permission_set,
    )
    if _records(sf, soql, "reading permission set assignments"):
        return
    body = {"AssigneeId": user, "PermissionSetId": permission_set}
    try:
        sf.restful("sobjects/PermissionSetAssignment", method="POST", json=body)
    except SalesforceError as exc:
        raise _refusal(exc, f"assigning {PERMISSION_SET} to the integration user") from exc
