"""The fake HubSpot portal's schema endpoints: v4 associations, properties, pipelines.

`MetaEndpoints` is mixed into `hubspot_api.Api`, which routes to these handlers.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from tests.fakes.hubspot import schema
from tests.fakes.hubspot import values as vals
from tests.fakes.hubspot.store import Store
from tests.fakes.hubspot.wire import (
    ApiError,
    Reply,
    batch_inputs,
    object_type,
    parse_json,
    reply,
)

MAX_ASSOC_BATCH = 1000
_NAME = re.compile(r"[a-z][a-z0-9_]*")
_FIELD_TYPES = {
    "string": {"text", "textarea", "file", "html", "phonenumber"},
    "number": {"number", "calculation_equation"},
    "enumeration": {"select", "radio", "checkbox", "booleancheckbox"},
    "bool": {"booleancheckbox"},
    "date": {"date"},
    "datetime": {"date"},
}


class MetaEndpoints:
    store: Store
    base_url: Callable[[], str]

    # --- associations v4 -----------------------------------------------------------------

    def _targets(self, obj: str, to: str, rid: str) -> list[dict[str, Any]]:
        types = schema.ASSOCIATION_TYPES.get((obj, to), ())
        spec = [{"category": c, "typeId": t, "label": label} for c, t, label, _ in types]
        return [
            {"toObjectId": int(target), "associationTypes": spec}
            for target in self.store.linked(obj, to, rid)
        ]

    def links(self, obj: str, rid: str, to: str, query: dict[str, list[str]], body: bytes) -> Reply:
        obj, to = object_type(obj), object_type(to)
        try:
            limit = min(int(query.get("limit", ["500"])[-1]), 500)
            after = int(query.get("after", ["0"])[-1] or 0)
        except ValueError:
            raise ApiError(400, "limit and after must be integers") from None
        if limit < 1 or after < 0:
            raise ApiError(400, f"limit must be between 1 and 500, got {limit}")
        with self.store.lock:
            targets = self._targets(obj, to, rid)
        out: dict[str, Any] = {"results": targets[after : after + limit]}
        if after + limit < len(targets):
            link = f"{self.base_url()}/crm/v4/objects/{obj}/{rid}/associations/{to}"
            nxt = str(after + limit)
            out["paging"] = {"next": {"after": nxt, "link": f"{link}?after={nxt}&limit={limit}"}}
        return reply(200, out)

    def link_batch(self, obj: str, to: str, query: dict[str, list[str]], body: bytes) -> Reply:
        obj, to = object_type(obj), object_type(to)
        started = vals.iso_now()
        _, ids = batch_inputs(parse_json(body), MAX_ASSOC_BATCH)
        results, errors = [], []
        with self.store.lock:
            for rid in dict.fromkeys(ids):
                targets = self._targets(obj, to, rid)
                if targets:
                    results.append({"from": {"id": rid}, "to": targets})
                    continue
                errors.append(
                    {
                        "status": "error",
                        "category": "OBJECT_NOT_FOUND",
                        "subCategory": "crm.associations.NO_ASSOCIATIONS_FOUND",
                        "context": {"fromObjectId": [rid]},
                        "message": f"No {schema.SINGULAR[to]} is associated with "
                        f"{schema.SINGULAR[obj]} {rid}.",
                    }
                )
        out: dict[str, Any] = {"status": "COMPLETE", "results": results}
        if errors:
            out["numErrors"] = len(errors)
            out["errors"] = errors
        out["startedAt"] = started
        out["completedAt"] = vals.iso_now()
        return reply(207 if errors else 200, out)

    # --- properties ----------------------------------------------------------------------

    def props(self, obj: str, query: dict[str, list[str]], body: bytes) -> Reply:
        obj = object_type(obj)
        with self.store.lock:
            return reply(200, {"results": list(self.store.props[obj].values())})

    def _no_property(self, obj: str, name: str) -> ApiError:
        type_id = schema.TYPE_IDS[obj]
        return ApiError(404, f"Unable to find property {name} on object type {type_id}")

    def prop_get(self, obj: str, name: str, query: dict[str, list[str]], body: bytes) -> Reply:
        obj = object_type(obj)
        with self.store.lock:
            prop = self.store.props[obj].get(name)
            if prop is None:
                raise self._no_property(obj, name)
            return reply(200, prop)

    def prop_delete(self, obj: str, name: str, query: dict[str, list[str]], body: bytes) -> Reply:
        obj = object_type(obj)
        with self.store.lock:
            if self.store.props[obj].pop(name, None) is None:
                raise self._no_property(obj, name)
            self.store.search_cache.clear()
        return Reply(204)

    def prop_create(self, obj: str, query: dict[str, list[str]], body: bytes) -> Reply:
        obj = object_type(obj)
        data = parse_json(body)
        if not isinstance(data, dict):
            raise ApiError(400, "Invalid input JSON: expected an object.")
        for key in ("name", "label", "type", "fieldType", "groupName"):
            if not isinstance(data.get(key), str) or not data[key]:
                raise ApiError(400, f"Property creation requires `{key}`.")
        name, kind, field_type = data["name"], data["type"], data["fieldType"]
        if not _NAME.fullmatch(name):
            message = f"Property name {name} must be lowercase letters, digits and underscores."
            raise ApiError(400, message)
        if field_type not in _FIELD_TYPES.get(kind, set()):
            raise ApiError(400, f"fieldType {field_type} is not valid for type {kind}.")
        store = self.store
        with store.lock:
            if data["groupName"] not in store.groups[obj]:
                raise ApiError(400, f"Property group {data['groupName']} does not exist.")
            if name in store.props[obj]:
                message = f"Property named '{name}' already exists."
                raise ApiError(409, message, context={"name": [name]})
            choices = []
            for order, opt in enumerate(data.get("options") or []):
                if not isinstance(opt, dict) or "value" not in opt or "label" not in opt:
                    raise ApiError(400, "Each option needs a label and a value.")
                choices.append(
                    {
                        "label": opt["label"],
                        "value": vals.as_text(opt["value"]),
                        "displayOrder": opt.get("displayOrder", order),
                        "hidden": bool(opt.get("hidden", False)),
                    }
                )
            stamp = vals.iso(store.stamp())
            prop = schema.definition(
                name, data["label"], kind, field_type, data["groupName"], choices=choices,
                hubspot_defined=False, order=data.get("displayOrder", -1), stamp=stamp,
            )  # fmt: skip
            prop["description"] = data.get("description", "")
            prop["hasUniqueValue"] = bool(data.get("hasUniqueValue", False))
            prop["hidden"] = bool(data.get("hidden", False))
            prop["formField"] = bool(data.get("formField", False))
            store.props[obj][name] = prop
            store.search_cache.clear()
        return reply(201, prop)

    def groups(self, obj: str, query: dict[str, list[str]], body: bytes) -> Reply:
        obj = object_type(obj)
        with self.store.lock:
            return reply(200, {"results": list(self.store.groups[obj].values())})

    def group_get(self, obj: str, name: str, query: dict[str, list[str]], body: bytes) -> Reply:
        obj = object_type(obj)
        with self.store.lock:
            group = self.store.groups[obj].get(name)
        if group is None:
            raise ApiError(404, f"Unable to find property group {name}")
        return reply(200, group)

    def group_create(self, obj: str, query: dict[str, list[str]], body: bytes) -> Reply:
        obj = object_type(obj)
        data = parse_json(body)
        if not isinstance(data, dict) or not data.get("name") or not data.get("label"):
            raise ApiError(400, "Property group creation requires `name` and `label`.")
        with self.store.lock:
            groups = self.store.groups[obj]
            if data["name"] in groups:
                raise ApiError(409, f"Property group named '{data['name']}' already exists.")
            group = {
                "name": data["name"],
                "label": data["label"],
                "displayOrder": data.get("displayOrder", -1),
                "archived": False,
            }
            groups[group["name"]] = group
        return reply(201, group)

    # --- pipelines -----------------------------------------------------------------------

    def pipelines(self, obj: str, query: dict[str, list[str]], body: bytes) -> Reply:
        obj = object_type(obj)
        with self.store.lock:
            found = list(self.store.pipelines.values()) if obj == "deals" else []
            return reply(200, {"results": found})

    def _pipeline(self, obj: str, pid: str) -> dict[str, Any]:
        found = self.store.pipelines.get(pid) if object_type(obj) == "deals" else None
        if found is None:
            raise ApiError(404, f"Unable to find pipeline {pid}")
        return found

    def pipeline(self, obj: str, pid: str, query: dict[str, list[str]], body: bytes) -> Reply:
        with self.store.lock:
            return reply(200, self._pipeline(obj, pid))

    def stages(self, obj: str, pid: str, query: dict[str, list[str]], body: bytes) -> Reply:
        with self.store.lock:
            return reply(200, {"results": self._pipeline(obj, pid)["stages"]})
