"""The fake HubSpot portal's object endpoints and its router.

`Api.handle` turns one authenticated, admitted request into a `Reply`; transport, auth,
rate limits and injected faults live in `hubspot_http`, the association, property and
pipeline endpoints in `hubspot_meta`. Bodies follow HubSpot's wire format (camelCase JSON,
every property value a string or null).
"""

from __future__ import annotations

import json
import random
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import urlencode

from tests.fakes.hubspot import schema
from tests.fakes.hubspot import values as vals
from tests.fakes.hubspot.meta import MetaEndpoints
from tests.fakes.hubspot.search import SearchError, search
from tests.fakes.hubspot.store import Store
from tests.fakes.hubspot.wire import (
    ApiError,
    Reply,
    batch_inputs,
    dumps,
    object_type,
    parse_json,
    query_flag,
    query_names,
    reply,
)


def _shuffled(items: list[Any]) -> list[Any]:
    """Batch results come back in no particular order (never simply the request's)."""
    out = list(items)
    random.Random(len(out)).shuffle(out)
    if len(out) > 1 and out == items:
        out = out[1:] + out[:1]
    return out


def _associations(query: dict[str, list[str]]) -> list[str]:
    """Requested association types; unknown ones are ignored, as HubSpot ignores them."""
    asked = query_names(query, "associations") or []
    return list(dict.fromkeys(schema.OBJECT_TYPES[a] for a in asked if a in schema.OBJECT_TYPES))


class Api(MetaEndpoints):
    def __init__(
        self,
        store: Store,
        base_url: Callable[[], str],
        poisoned: set[str],
        conflicting: set[str],
    ) -> None:
        self.store = store
        self.base_url = base_url
        self.poisoned = poisoned
        self.conflicting = conflicting
        obj = r"(?P<obj>[^/]+)"
        rid = r"(?P<rid>[^/]+)"
        name = r"(?P<name>[^/]+)"
        routes: list[tuple[str, str, Callable[..., Reply]]] = [
            ("POST", rf"/crm/v3/objects/{obj}/search", self.search),
            ("POST", rf"/crm/v3/objects/{obj}/batch/read", self.batch_read),
            ("POST", rf"/crm/v3/objects/{obj}/batch/update", self.batch_update),
            ("GET", rf"/crm/v3/objects/{obj}", self.list_objects),
            ("POST", rf"/crm/v3/objects/{obj}", self.create),
            ("GET", rf"/crm/v3/objects/{obj}/{rid}", self.get),
            ("PATCH", rf"/crm/v3/objects/{obj}/{rid}", self.patch),
            ("DELETE", rf"/crm/v3/objects/{obj}/{rid}", self.delete),
            ("GET", rf"/crm/v4/objects/{obj}/{rid}/associations/(?P<to>[^/]+)", self.links),
            ("POST", rf"/crm/v4/associations/{obj}/(?P<to>[^/]+)/batch/read", self.link_batch),
            ("GET", rf"/crm/v3/properties/{obj}/groups", self.groups),
            ("POST", rf"/crm/v3/properties/{obj}/groups", self.group_create),
            ("GET", rf"/crm/v3/properties/{obj}/groups/{name}", self.group_get),
            ("GET", rf"/crm/v3/properties/{obj}", self.props),
            ("POST", rf"/crm/v3/properties/{obj}", self.prop_create),
            ("GET", rf"/crm/v3/properties/{obj}/{name}", self.prop_get),
            ("DELETE", rf"/crm/v3/properties/{obj}/{name}", self.prop_delete),
            ("GET", rf"/crm/v3/pipelines/{obj}", self.pipelines),
            ("GET", rf"/crm/v3/pipelines/{obj}/(?P<pid>[^/]+)", self.pipeline),
            ("GET", rf"/crm/v3/pipelines/{obj}/(?P<pid>[^/]+)/stages", self.stages),
        ]
        self.routes = [(m, re.compile(p + "$"), h) for m, p, h in routes]

    def handle(self, method: str, path: str, query: dict[str, list[str]], body: bytes) -> Reply:
        path = path.rstrip("/") or "/"
        allowed = False
        for route_method, pattern, handler in self.routes:
            match = pattern.match(path)
            if match is None:
                continue
            if route_method != method:
                allowed = True
                continue
            try:
                return handler(query=query, body=body, **match.groupdict())
            except ApiError as err:
                return err.reply()
        if allowed:
            return ApiError(405, f"Method {method} is not supported on {path}").reply()
        return ApiError(404, f"No route for {method} {path}", "OBJECT_NOT_FOUND").reply()

    # --- objects -------------------------------------------------------------------------

    def list_objects(self, obj: str, query: dict[str, list[str]], body: bytes) -> Reply:
        obj = object_type(obj)
        try:
            limit = int(query.get("limit", ["10"])[-1])
            after = int(query.get("after", ["0"])[-1] or 0)
        except ValueError:
            raise ApiError(400, "limit and after must be integers") from None
        if limit < 1 or limit > 100:
            raise ApiError(400, f"limit must be between 1 and 100, got {limit}")
        names = query_names(query, "properties")
        assoc = _associations(query)
        store = self.store
        with store.lock:
            if query_flag(query, "archived"):
                gone = sorted(store.archived[obj].values(), key=lambda r: r.num)
                start = next((i for i, r in enumerate(gone) if r.num >= after), len(gone))
                records = gone[start : start + limit]
                nxt = gone[start + limit].num if start + limit < len(gone) else None
            else:
                records, nxt = store.page(obj, after, limit)
            results = [store.render(obj, r, r.snap, names, assoc) for r in records]
        out: dict[str, Any] = {"results": results}
        if nxt is not None:
            params = [(k, v) for k, vs in query.items() if k != "after" for v in vs]
            link = f"{self.base_url()}/crm/v3/objects/{obj}?{urlencode([*params, ('after', nxt)])}"
            out["paging"] = {"next": {"after": str(nxt), "link": link}}
        return reply(200, out)

    def get(self, obj: str, rid: str, query: dict[str, list[str]], body: bytes) -> Reply:
        obj = object_type(obj)
        store = self.store
        with store.lock:
            pool = store.archived[obj] if query_flag(query, "archived") else store.records[obj]
            record = pool.get(rid)
            if record is None:
                raise self._not_found(obj, rid)
            assoc = _associations(query)
            out = store.render(obj, record, record.snap, query_names(query, "properties"), assoc)
        return reply(200, out)

    def _not_found(self, obj: str, rid: str) -> ApiError:
        message = (
            "Object not found.  objectId are usually numeric."
            if not rid.isdigit()
            else (f"Object not found. No {schema.UPPER[obj]} with id {rid} exists.")
        )
        return ApiError(404, message, context={"id": [rid]})

    def _validate(self, obj: str, inputs: list[dict[str, Any]]) -> list[dict[str, str | None]]:
        """Stored forms of every input's properties; one 400 listing all invalid values."""
        defined = self.store.props[obj]
        problems: dict[tuple[str, str, str], dict[str, Any]] = {}
        changes: list[dict[str, str | None]] = []
        for item in inputs:
            props = item.get("properties", {})
            if not isinstance(props, dict):
                raise ApiError(400, "Invalid input JSON: `properties` must be an object.")
            out: dict[str, str | None] = {}
            for name, raw in props.items():
                prop = defined.get(name)
                if prop is None:
                    code, value = "PROPERTY_DOESNT_EXIST", None
                    message = f'Property "{name}" does not exist'
                elif prop["modificationMetadata"]["readOnlyValue"]:
                    code, value = "READ_ONLY_VALUE", None
                    message = f'"{name}" is a read only property; its value cannot be set.'
                else:
                    try:
                        out[name] = vals.check_value(prop, raw, self.store.allowed(obj, name))
                        continue
                    except vals.Invalid as bad:
                        code, message, value = bad.code, bad.message, vals.as_text(raw)
                key = (name, code, str(value))
                problems.setdefault(key, self._problem(name, code, message, value))
            changes.append(out)
        if problems:
            raise self._invalid(list(problems.values()))
        return changes

    def _problem(self, name: str, code: str, message: str, value: str | None) -> dict[str, Any]:
        item: dict[str, Any] = {"isValid": False, "message": message, "error": code, "name": name}
        item["localizedErrorMessage"] = message
        if value is not None:
            item["propertyValue"] = value
        item["portalId"] = self.store.portal_id
        return item

    def _invalid(self, items: list[dict[str, Any]]) -> ApiError:
        text = json.dumps(items, separators=(",", ":"), ensure_ascii=False)
        errors = [
            {"message": i["message"], "code": i["error"], "context": {"propertyName": [i["name"]]}}
            for i in items
        ]
        return ApiError(400, f"Property values were not valid: {text}", errors=errors)

    def _faults(self, obj: str, inputs: list[dict[str, Any]], ids: list[str]) -> None:
        for item, rid in zip(inputs, ids, strict=True):
            if rid in self.poisoned:
                props = item.get("properties") or {"name": ""}
                name = next(iter(props))
                value = vals.as_text(props[name])
                prop = self.store.props[obj].get(name, {"type": "string"})
                code, message = {
                    "enumeration": (
                        "INVALID_OPTION",
                        f"{value} was not one of the allowed options",
                    ),
                    "number": ("INVALID_INTEGER", f"{value} was not a valid number."),
                }.get(prop["type"], ("INVALID_PROPERTY_VALUE", f"{value} is not valid for {name}."))
                raise self._invalid([self._problem(name, code, message, value)])
        clash = [rid for rid in ids if rid in self.conflicting]
        if clash:
            message = (
                f"Unable to update {schema.UPPER[obj]} {clash[0]}: it was modified by a "
                "concurrent request. Retry the update."
            )
            raise ApiError(409, message, context={"ids": clash})

    def create(self, obj: str, query: dict[str, list[str]], body: bytes) -> Reply:
        obj = object_type(obj)
        data = parse_json(body)
        if not isinstance(data, dict):
            raise ApiError(400, "Invalid input JSON: expected an object.")
        store = self.store
        with store.lock:
            (changes,) = self._validate(obj, [data])
            record = store.create(obj, changes, store.stamp())
            for assoc in data.get("associations") or []:
                target = str((assoc.get("to") or {}).get("id", ""))
                if obj == "deals" and target in store.records["companies"]:
                    store.link(record.id, target)
                elif obj == "companies" and target in store.records["deals"]:
                    store.link(target, record.id)
            out = store.written(obj, record, changes)
        return reply(201, out)

    def patch(self, obj: str, rid: str, query: dict[str, list[str]], body: bytes) -> Reply:
        obj = object_type(obj)
        data = parse_json(body)
        if not isinstance(data, dict):
            raise ApiError(400, "Invalid input JSON: expected an object.")
        store = self.store
        with store.lock:
            (changes,) = self._validate(obj, [data])
            self._faults(obj, [data], [rid])
            record = store.get(obj, rid)
            if record is None:
                raise self._not_found(obj, rid)
            store.update(obj, record, changes, store.stamp())
            out = store.written(obj, record, changes)
        return reply(200, out)

    def delete(self, obj: str, rid: str, query: dict[str, list[str]], body: bytes) -> Reply:
        obj = object_type(obj)
        with self.store.lock:
            self.store.archive(obj, rid, self.store.stamp())
        return Reply(204)

    def search(self, obj: str, query: dict[str, list[str]], body: bytes) -> Reply:
        obj = object_type(obj)
        try:
            out = search(self.store, obj, parse_json(body))
        except SearchError as err:
            raise ApiError(400, str(err)) from None
        return Reply(200, dumps(out), search=True)

    def _batch(
        self, obj: str, results: list[dict[str, Any]], missing: list[str], started: str
    ) -> Reply:
        out: dict[str, Any] = {
            "completedAt": vals.iso_now(),
            "status": "COMPLETE",
            "startedAt": started,
            "results": _shuffled(results),
        }
        if not missing:
            return reply(200, out)
        out["numErrors"] = 1
        message = (
            f"Could not get some {schema.UPPER[obj]} objects, they may be deleted or not exist. "
            "Check that ids are valid."
        )
        out["errors"] = [
            {
                "status": "error",
                "category": "OBJECT_NOT_FOUND",
                "message": message,
                "context": {"ids": missing},
            }
        ]
        return reply(207, out)

    def batch_read(self, obj: str, query: dict[str, list[str]], body: bytes) -> Reply:
        obj = object_type(obj)
        started = vals.iso_now()
        data = parse_json(body)
        _, ids = batch_inputs(data)
        self._id_property(obj, data)
        names = data.get("properties") or None
        store = self.store
        results, missing = [], []
        with store.lock:
            for rid in dict.fromkeys(ids):
                record = store.resolve(obj, rid)  # a merged-away id reads the survivor
                if record is None:
                    missing.append(rid)
                else:
                    results.append(store.render(obj, record, record.snap, names))
        return self._batch(obj, results, missing, started)

    def _id_property(self, obj: str, data: dict[str, Any]) -> None:
        id_property = data.get("idProperty")
        if id_property:
            message = (
                f"Unable to perform update/upsert by non-unique {schema.TYPE_IDS[obj]} property "
                f"{id_property} in portal ID {self.store.portal_id}"
            )
            raise ApiError(400, message)

    def batch_update(self, obj: str, query: dict[str, list[str]], body: bytes) -> Reply:
        obj = object_type(obj)
        started = vals.iso_now()
        data = parse_json(body)
        inputs, ids = batch_inputs(data)
        self._id_property(obj, data)
        seen: dict[str, int] = {}
        for rid in ids:
            seen[rid] = seen.get(rid, 0) + 1
        dupes = [rid for rid, n in seen.items() if n > 1]
        if dupes:
            listed = ", ".join(dupes)
            raise ApiError(
                400, f"Duplicate IDs found in batch input: [{listed}]. IDs must be unique"
            )
        store = self.store
        results, missing = [], []
        with store.lock:
            changes = self._validate(obj, inputs)
            self._faults(obj, inputs, ids)
            stamp = store.stamp()
            for rid, change in zip(ids, changes, strict=True):
                if rid in store.merged[obj]:
                    # a merged-away id: HubSpot answers 200 and leaves it out of `results`
                    # and `errors` alike (issue 13, item 8)
                    continue
                record = store.get(obj, rid)
                if record is None:
                    missing.append(rid)
                    continue
                store.update(obj, record, change, stamp)
                results.append(store.written(obj, record, change))
        return self._batch(obj, results, missing, started)
