"""A fake HubSpot portal behind a real HTTP server, for end-to-end tests and cassettes.

    with FakeHubSpot() as portal:
        ids = portal.add_companies([{"name": "Acme", "domain": "acme.com"}])
        client = HubSpot(access_token=portal.token, host=portal.base_url)
        client.crm.companies.basic_api.get_page(limit=100)

It speaks the CRM v3/v4 wire formats hubspot-api-client 12 sends and parses: objects
(list, get, PATCH, create, search, batch read/update), v4 associations, properties and
property groups, deal pipelines; HubSpot's auth error, rate limits (ten-secondly window,
daily allowance, search's 5/s) with their 429 bodies and headers; and injected faults.
Modules: `hubspot_schema` (property definitions, pipelines), `hubspot_values` (datetimes,
value rules), `hubspot_store` (records, search-index versions, associations),
`hubspot_search`, `hubspot_wire` (replies, errors), `hubspot_api` (object endpoints,
routing), `hubspot_meta` (associations, properties, pipelines), `hubspot_http` (server,
auth, limits, faults).
"""

from __future__ import annotations

import copy
import threading
from collections.abc import Callable, Iterable
from datetime import UTC, datetime, timedelta
from types import TracebackType
from typing import Any

from tests.fakes.hubspot import schema
from tests.fakes.hubspot import values as vals
from tests.fakes.hubspot.api import Api
from tests.fakes.hubspot.http import Fault, Gateway, Limits, RecordedRequest, Server
from tests.fakes.hubspot.store import Record, Store

__all__ = ["FakeHubSpot", "RecordedRequest", "StrictClock"]

_FIELD_TYPE = {
    "number": "number",
    "enumeration": "select",
    "bool": "booleancheckbox",
    "datetime": "date",
    "date": "date",
    "string": "text",
}
_GROUP = {"companies": "companyinformation", "deals": "dealinformation"}


class StrictClock:
    """The portal's default clock: wall time to the millisecond, never the same stamp twice."""

    def __init__(self) -> None:
        self._last: datetime | None = None
        self._lock = threading.Lock()

    def __call__(self) -> datetime:
        with self._lock:
            now = datetime.now(UTC)
            now = now.replace(microsecond=now.microsecond // 1000 * 1000)
            if self._last is not None and now <= self._last:
                now = self._last + timedelta(milliseconds=1)
            self._last = now
            return now


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.title() for part in rest)


class FakeHubSpot:
    """A HubSpot portal with one private app (`token`), served on 127.0.0.1."""

    def __init__(
        self,
        rate_limit: int | None = 100,
        interval: float = 10.0,
        daily_limit: int = 250_000,
        search_rate: int | None = 5,
        latency: float = 0.0,
        token: str = "pat-test-token",
        portal_id: int = 40_512_345,
    ) -> None:
        self.token = token
        self.clock: Callable[[], datetime] = StrictClock()
        self._store = Store(self._stamp, portal_id)
        self._poisoned: set[str] = set()
        self._conflicting: set[str] = set()
        self._api = Api(self._store, lambda: self.base_url, self._poisoned, self._conflicting)
        self._limits = Limits(rate_limit, interval, daily_limit, search_rate)
        self._gateway = Gateway(self._api, self._limits, lambda: self.token)
        self._gateway.latency = latency
        self._server: Server | None = None

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> FakeHubSpot:
        if self._server is None:
            self._server = Server(self._gateway)
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.stop()
            self._server = None

    def __enter__(self) -> FakeHubSpot:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    @property
    def base_url(self) -> str:
        """`http://127.0.0.1:PORT`; what HUBSPOT_BASE_URL (the SDK's `host`) should be."""
        if self._server is None:
            raise RuntimeError("the fake portal is not running: use `with FakeHubSpot()`")
        return self._server.base_url

    # --- time ----------------------------------------------------------------------------

    def now(self) -> datetime:
        """The portal's time (UTC, whole milliseconds) from `clock`; stamps every write."""
        moment = self.clock()
        if moment.tzinfo is None:
            moment = moment.replace(tzinfo=UTC)
        moment = moment.astimezone(UTC)
        return moment.replace(microsecond=moment.microsecond // 1000 * 1000)

    def _stamp(self) -> int:
        return vals.to_ms(self.now())

    # --- data ----------------------------------------------------------------------------

    def _seed(self, obj: str, row: dict[str, Any]) -> dict[str, str | None]:
        defined = self._store.props[obj]
        unknown = sorted(set(row) - set(defined))
        if unknown:
            raise KeyError(f"{obj} have no properties {unknown} (see portal.properties())")
        return {name: vals.seed_value(defined[name], raw) for name, raw in row.items()}

    def _create(self, obj: str, rows: Iterable[dict[str, Any]]) -> list[str]:
        ids = []
        store = self._store
        with store.lock:
            for row in rows:
                values = dict(row)
                company = values.pop("_company", None) if obj == "deals" else None
                values.pop("hs_object_id", None)
                if obj == "deals" and values.get("pipeline") in (None, ""):
                    values["pipeline"] = "default"
                seeded = self._seed(obj, values)
                if company is not None and str(company) not in store.records["companies"]:
                    raise KeyError(f"no company {company} for deal {values.get('dealname')!r}")
                record = store.create(obj, seeded, self._stamp())
                if company is not None:
                    store.link(record.id, str(company))
                ids.append(record.id)
        return ids

    def add_companies(self, rows: Iterable[dict[str, Any]]) -> list[str]:
        """Create companies as an import would; returns their ids (increasing)."""
        return self._create("companies", rows)

    def add_deals(self, rows: Iterable[dict[str, Any]]) -> list[str]:
        """Create deals; `_company` associates one with a company (primary + unlabeled)."""
        return self._create("deals", rows)

    def _record(self, obj: str, record_id: str) -> Record:
        record = self._store.get(schema.OBJECT_TYPES[obj], str(record_id))
        if record is None:
            raise KeyError(f"no live {obj} record {record_id}")
        return record

    def objects(self, obj: str) -> dict[str, dict[str, str | None]]:
        """Live records: id -> every defined property (strings; None when unset)."""
        obj = schema.OBJECT_TYPES[obj]
        with self._store.lock:
            names = list(self._store.props[obj])
            return {
                rid: {n: r.snap.props.get(n) for n in names}
                for rid, r in self._store.records[obj].items()
            }

    def edit(self, obj: str, record_id: str, changes: dict[str, Any]) -> None:
        """A person's edit in the UI: writes the values and bumps hs_lastmodifieddate."""
        obj = schema.OBJECT_TYPES[obj]
        store = self._store
        with store.lock:
            record = self._record(obj, record_id)
            values = dict(changes)
            company = values.pop("_company", None) if obj == "deals" else None
            seeded = self._seed(obj, values)
            store.update(obj, record, seeded, self._stamp())
            if company is not None:
                store.unlink_deal(record.id)
                store.link(record.id, str(company))

    def delete(self, obj: str, record_id: str) -> None:
        """Archive a record: gone from list, search and batch read; updates of it fail."""
        obj = schema.OBJECT_TYPES[obj]
        with self._store.lock:
            self._record(obj, record_id)
            self._store.archive(obj, str(record_id), self._stamp())

    def merge(self, obj: str, merged_id: str, primary_id: str) -> None:
        """Merge one record into another (`POST /crm/v3/objects/{obj}/merge`)."""
        obj = schema.OBJECT_TYPES[obj]
        with self._store.lock:
            self._record(obj, merged_id)
            self._record(obj, primary_id)
            self._store.merge(obj, str(merged_id), str(primary_id), self._stamp())

    # --- schema --------------------------------------------------------------------------

    def properties(self, obj: str) -> dict[str, dict[str, Any]]:
        with self._store.lock:
            return copy.deepcopy(self._store.props[schema.OBJECT_TYPES[obj]])

    def remove_property(self, obj: str, name: str) -> None:
        with self._store.lock:
            del self._store.props[schema.OBJECT_TYPES[obj]][name]
            self._store.search_cache.clear()

    def remove_custom_properties(self) -> list[str]:
        """A standard portal: drop every property the portal's admin created (not
        `hubspotDefined`: `readOnlyDefinition` false), on every object; the removed names."""
        removed = []
        with self._store.lock:
            for props in self._store.props.values():
                for name, prop in list(props.items()):
                    if not prop["modificationMetadata"]["readOnlyDefinition"]:
                        del props[name]
                        removed.append(name)
            self._store.search_cache.clear()
        return sorted(removed)

    def set_property(self, obj: str, name: str, **attrs: Any) -> None:
        """Create or change a property definition.

        Keys are the API's (camelCase or snake_case: `type`, `field_type`, `label`,
        `group_name`, `options`, ...); `options` may be plain strings; `read_only=True`
        sets `modificationMetadata.readOnlyValue`.
        """
        obj = schema.OBJECT_TYPES[obj]
        attrs = {_camel(k): v for k, v in attrs.items()}
        with self._store.lock:
            props = self._store.props[obj]
            prop = props.get(name)
            if prop is None:
                kind = attrs.get("type", "string")
                prop = schema.definition(
                    name,
                    attrs.get("label", name),
                    kind,
                    attrs.get("fieldType", _FIELD_TYPE.get(kind, "text")),
                    attrs.get("groupName", _GROUP[obj]),
                    hubspot_defined=False,
                    stamp=vals.iso(self._stamp()),
                )
            for key, value in attrs.items():
                if key in ("readOnly", "readOnlyValue"):
                    prop["modificationMetadata"]["readOnlyValue"] = bool(value)
                elif key == "options":
                    prop["options"] = [
                        schema.option(o, o, n) if isinstance(o, str) else dict(o)
                        for n, o in enumerate(value)
                    ]
                else:
                    prop[key] = value
            props[name] = prop
            self._store.search_cache.clear()

    def add_pipeline(
        self, label: str, stages: Iterable[Any], pipeline_id: str | None = None
    ) -> tuple[str, list[str]]:
        """A custom deal pipeline with numeric ids; returns (pipeline id, stage ids).

        `stages`: `(label, probability, is_closed)` tuples or dicts with `label`,
        `probability` and `isClosed`; closed at probability 1.0 is won, at 0.0 lost.
        """
        with self._store.lock:
            return self._store.add_pipeline(label, stages, pipeline_id)

    # --- observation ---------------------------------------------------------------------

    @property
    def requests(self) -> list[RecordedRequest]:
        with self._gateway.lock:
            return list(self._gateway.requests)

    @property
    def api_calls(self) -> int:
        """Authenticated calls received (including those refused with 429)."""
        return self._gateway.api_calls

    @property
    def rate_limited(self) -> int:
        """429s sent for the ten-secondly, daily or search limits."""
        return self._limits.rate_limited

    @property
    def server_errors(self) -> list[str]:
        """Tracebacks of bugs in the fake itself (answered 500); should stay empty."""
        with self._gateway.lock:
            return list(self._gateway.server_errors)

    @property
    def search_lag(self) -> float:
        return self._store.search_lag

    @search_lag.setter
    def search_lag(self, seconds: float) -> None:
        with self._store.lock:
            self._store.search_lag = seconds
            self._store.search_cache.clear()

    @property
    def search_clock(self) -> Callable[[], float]:
        """Seconds (monotonic) that `search_lag` is measured in; a test may set its own."""
        return self._store.search_clock

    @search_clock.setter
    def search_clock(self, clock: Callable[[], float]) -> None:
        with self._store.lock:
            self._store.search_clock = clock

    @property
    def connections_closed(self) -> int:
        """Connections the server has finished with (answered and closed, or cut off)."""
        return self._server.httpd.closed if self._server is not None else 0

    @property
    def latency(self) -> float:
        return self._gateway.latency

    @latency.setter
    def latency(self, seconds: float) -> None:
        self._gateway.latency = seconds

    @property
    def daily_remaining(self) -> int:
        return self._limits.daily_remaining

    @daily_remaining.setter
    def daily_remaining(self, calls: int) -> None:
        with self._limits.lock:
            self._limits.daily_remaining = calls

    # --- fault injection -----------------------------------------------------------------

    def fail(
        self,
        status: int = 503,
        times: int = 1,
        method: str | None = None,
        path_contains: str | None = None,
    ) -> None:
        """Answer the next matching requests with `status` (not applied)."""
        self._gateway.add_fault(Fault("fail", times, method, path_contains, status=status))

    def drop(
        self,
        times: int = 1,
        method: str | None = None,
        path_contains: str | None = None,
        after_apply: bool = False,
    ) -> None:
        """Close the connection without answering (after applying the request, if asked)."""
        fault = Fault("drop", times, method, path_contains, after_apply=after_apply)
        self._gateway.add_fault(fault)

    def slow(
        self,
        seconds: float,
        times: int = 1,
        method: str | None = None,
        path_contains: str | None = None,
    ) -> None:
        """Hold the answer of the next matching requests (already applied) for `seconds`."""
        self._gateway.add_fault(Fault("slow", times, method, path_contains, seconds=seconds))

    def secondly(
        self, times: int = 1, method: str | None = None, path_contains: str | None = None
    ) -> None:
        """Answer the next matching requests 429 with policy SECONDLY (not applied)."""
        fault = Fault("fail", times, method, path_contains, status=429, policy="SECONDLY")
        self._gateway.add_fault(fault)

    def garble(
        self,
        body: str = "html",
        times: int = 1,
        method: str | None = None,
        path_contains: str | None = None,
        after_apply: bool = False,
    ) -> None:
        """Answer the next matching requests 200 with a body that is not JSON: `html` (a
        proxy's page), `empty` or `truncated`; applied first only if `after_apply`."""
        fault = Fault("garble", times, method, path_contains, after_apply=after_apply, body=body)
        self._gateway.add_fault(fault)

    def hollow(self, times: int = 1, path_contains: str | None = "/search") -> None:
        """Answer the next matching pages with `results: []`, `paging.next.after` kept."""
        self._gateway.add_fault(Fault("hollow", times, None, path_contains))

    def poison(self, ids: Iterable[str]) -> None:
        """Any update touching these ids fails whole with 400 VALIDATION_ERROR."""
        with self._store.lock:
            self._poisoned.update(str(i) for i in ids)

    def conflict(self, ids: Iterable[str]) -> None:
        """Any update touching these ids fails whole with 409 CONFLICT."""
        with self._store.lock:
            self._conflicting.update(str(i) for i in ids)

    def burst(self, n: int) -> None:
        """The next n authenticated calls get 429 TEN_SECONDLY_ROLLING."""
        with self._limits.lock:
            self._limits.burst += n

    def clear_faults(self) -> None:
        """Forget pending fail/drop/slow/burst faults and the poisoned/conflicting ids."""
        with self._gateway.lock:
            self._gateway.faults.clear()
        with self._store.lock:
            self._poisoned.clear()
            self._conflicting.clear()
        with self._limits.lock:
            self._limits.burst = 0
