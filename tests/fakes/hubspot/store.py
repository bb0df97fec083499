"""The fake HubSpot portal's data: records, their search-index versions, associations.

Every record keeps its current properties (`Snapshot`, never mutated once made) and the
recent versions with the moment each was written, so search can lag behind writes the way
HubSpot's index does. Live records sit in a dict in id order (ids only grow), with a
sorted id list for list paging, so every read is a dict lookup or a bisect.
"""

from __future__ import annotations

import threading
import time
from bisect import bisect_left, insort
from collections.abc import Callable, Iterable
from typing import Any

from tests.fakes.hubspot import schema
from tests.fakes.hubspot import values as vals

_HISTORY = 16  # versions kept per record for lagging search


class Snapshot:
    """One version of a record's properties (strings); `typed` caches parsed values."""

    __slots__ = ("props", "typed")

    def __init__(self, props: dict[str, str]) -> None:
        self.props = props
        self.typed: dict[tuple[str, str], Any] = {}


class Record:
    __slots__ = ("archived_at", "history", "id", "num", "snap")

    def __init__(self, record_id: str, snap: Snapshot, written: float) -> None:
        self.id = record_id
        self.num = int(record_id)
        self.snap = snap
        self.history: list[tuple[float, Snapshot]] = [(written, snap)]
        self.archived_at: str | None = None

    def write(self, props: dict[str, str], written: float) -> Snapshot:
        self.snap = Snapshot(props)
        self.history.append((written, self.snap))
        if len(self.history) > _HISTORY:
            del self.history[0]
        return self.snap

    def visible(self, now: float, lag: float) -> Snapshot | None:
        """The version search sees `lag` seconds behind the writes (None: not yet indexed)."""
        if lag <= 0:
            return self.snap
        cutoff = now - lag
        for written, snap in reversed(self.history):
            if written <= cutoff:
                return snap
        return None


class Store:
    """All portal state. Callers hold `lock` around anything that reads and then writes."""

    def __init__(self, stamp: Callable[[], int], portal_id: int) -> None:
        self.lock = threading.RLock()
        self.stamp = stamp  # epoch ms for the next write
        self.portal_id = portal_id
        self.records: dict[str, dict[str, Record]] = {"companies": {}, "deals": {}}
        self.order: dict[str, list[int]] = {"companies": [], "deals": []}
        self.archived: dict[str, dict[str, Record]] = {"companies": {}, "deals": {}}
        self.merged: dict[str, dict[str, str]] = {"companies": {}, "deals": {}}
        """Merged-away id -> the surviving record's id (not in the recycle bin)."""
        self.next_id = {"companies": 5_790_000_001, "deals": 12_450_000_001}
        self.props = schema.default_properties()
        self.groups = schema.default_groups()
        self.pipelines: dict[str, dict[str, Any]] = {"default": schema.default_pipeline()}
        self.next_pipeline = 75_000_001
        self.links: dict[tuple[str, str], dict[str, dict[str, None]]] = {
            pair: {} for pair in schema.ASSOCIATION_TYPES
        }
        self.version = 0  # bumped by every change search can see
        self.search_lag = 0.0
        self.search_clock: Callable[[], float] = time.monotonic
        """When a write lands and a search runs (seconds), for `search_lag`; injectable."""
        self.search_cache: dict[tuple[Any, ...], list[tuple[Record, Snapshot]]] = {}

    # --- reads ---------------------------------------------------------------------------

    def get(self, obj: str, record_id: str) -> Record | None:
        return self.records[obj].get(record_id)

    def page(self, obj: str, after: int, limit: int) -> tuple[list[Record], int | None]:
        """Live records with id >= after, in id order; and the next cursor id, if any."""
        order = self.order[obj]
        start = bisect_left(order, after)
        ids = order[start : start + limit]
        records = self.records[obj]
        nxt = order[start + limit] if start + limit < len(order) else None
        return [records[str(num)] for num in ids], nxt

    def linked(self, from_obj: str, to_obj: str, record_id: str) -> list[str]:
        """Ids of live `to_obj` records associated with the record, in the order linked."""
        targets = self.links.get((from_obj, to_obj), {}).get(record_id, {})
        live = self.records[to_obj]
        return [tid for tid in targets if tid in live]

    def stages(self) -> dict[str, dict[str, Any]]:
        return {s["id"]: s for p in self.pipelines.values() for s in p["stages"]}

    def allowed(self, obj: str, name: str) -> set[str] | None:
        """Valid values of a property whose options live outside it (pipeline, dealstage)."""
        if obj != "deals":
            return None
        if name == "pipeline":
            return set(self.pipelines)
        if name == "dealstage":
            return set(self.stages())
        return None

    # --- writes --------------------------------------------------------------------------

    def _changed(self) -> None:
        self.version += 1
        if self.search_cache:
            self.search_cache.clear()

    def create(self, obj: str, values: dict[str, str | None], stamp_ms: int) -> Record:
        record_id = str(self.next_id[obj])
        self.next_id[obj] += 1
        when = vals.iso(stamp_ms)
        props = {k: v for k, v in values.items() if v is not None}
        props.setdefault("createdate", when)
        props.setdefault("hs_lastmodifieddate", props["createdate"])
        props["hs_object_id"] = record_id
        if obj == "deals":
            self._deal_outcome(props)
        record = Record(record_id, Snapshot(props), self.search_clock())
        self.records[obj][record_id] = record
        insort(self.order[obj], record.num)
        self._changed()
        return record

    def update(
        self, obj: str, record: Record, changes: dict[str, str | None], stamp_ms: int | None
    ) -> Snapshot:
        """Apply changes (None clears) and bump hs_lastmodifieddate (unless stamp is None)."""
        props = dict(record.snap.props)
        for name, value in changes.items():
            if value is None:
                props.pop(name, None)
            else:
                props[name] = value
        if stamp_ms is not None:
            props["hs_lastmodifieddate"] = vals.iso(stamp_ms)
        if obj == "deals":
            self._deal_outcome(props)
        snap = record.write(props, self.search_clock())
        self._changed()
        return snap

    def archive(self, obj: str, record_id: str, stamp_ms: int) -> bool:
        record = self.records[obj].pop(record_id, None)
        if record is None:
            return False
        order = self.order[obj]
        del order[bisect_left(order, record.num)]
        record.archived_at = vals.iso(stamp_ms)
        self.archived[obj][record_id] = record
        self._changed()
        return True

    def merge(self, obj: str, merged_id: str, primary_id: str, stamp_ms: int) -> None:
        """Merge `merged_id` into `primary_id`, as HubSpot's merge does: the merged record
        leaves list, search and the recycle bin; the primary lists it in
        `hs_merged_object_ids` and is modified; reading the old id reads the primary."""
        record = self.records[obj].pop(merged_id)
        order = self.order[obj]
        del order[bisect_left(order, record.num)]
        self.merged[obj][merged_id] = primary_id
        primary = self.records[obj][primary_id]
        before = primary.snap.props.get("hs_merged_object_ids") or ""
        ids = [i for i in before.split(";") if i] + [merged_id]
        self.update(obj, primary, {"hs_merged_object_ids": ";".join(ids)}, stamp_ms)

    def resolve(self, obj: str, record_id: str) -> Record | None:
        """The live record an id reads: its own, or the survivor of a merge."""
        seen: set[str] = set()
        while record_id in self.merged[obj] and record_id not in seen:
            seen.add(record_id)
            record_id = self.merged[obj][record_id]
        return self.records[obj].get(record_id)

    def link(self, deal_id: str, company_id: str) -> None:
        """Deal -> company association (primary and unlabeled), and its reverse."""
        self.links[("deals", "companies")].setdefault(deal_id, {})[company_id] = None
        self.links[("companies", "deals")].setdefault(company_id, {})[deal_id] = None
        self._changed()

    def unlink_deal(self, deal_id: str) -> None:
        for company_id in self.links[("deals", "companies")].pop(deal_id, {}):
            self.links[("companies", "deals")].get(company_id, {}).pop(deal_id, None)
        self._changed()

    def _deal_outcome(self, props: dict[str, str]) -> None:
        stage_id = props.get("dealstage")
        stage = None
        if stage_id is not None:
            pipeline = self.pipelines.get(props.get("pipeline", ""))
            candidates = pipeline["stages"] if pipeline else []
            stage = next((s for s in candidates if s["id"] == stage_id), None)
            stage = stage or self.stages().get(stage_id)
        closed, won, lost = schema.stage_outcome(stage)
        props["hs_is_closed"], props["hs_is_closed_won"], props["hs_is_closed_lost"] = (
            closed,
            won,
            lost,
        )

    def add_pipeline(
        self, label: str, stages: Iterable[Any], pipeline_id: str | None = None
    ) -> tuple[str, list[str]]:
        pid = pipeline_id or str(self.next_pipeline)
        self.next_pipeline += 1
        stamp = vals.iso(self.stamp())
        rows = []
        for order, item in enumerate(stages):
            if isinstance(item, dict):
                name = item["label"]
                probability = item.get("probability", 0.0)
                closed = item.get("isClosed", item.get("closed", False))
            else:
                name, probability, closed = item
            sid = str(self.next_pipeline)
            self.next_pipeline += 1
            closed = closed in (True, "true")
            rows.append(schema.stage(sid, name, order, str(float(probability)), closed, stamp))
        self.pipelines[pid] = schema.pipeline(pid, label, len(self.pipelines), rows, stamp)
        return pid, [s["id"] for s in rows]

    # --- rendering -----------------------------------------------------------------------

    def render(
        self,
        obj: str,
        record: Record,
        snap: Snapshot,
        names: Iterable[str] | None,
        associations: Iterable[str] = (),
    ) -> dict[str, Any]:
        """A record as the v3 object APIs return it."""
        defined = self.props[obj]
        wanted = schema.DEFAULT_READ[obj] if names is None else (*names, *schema.ALWAYS_READ)
        source = snap.props
        props = {n: source.get(n) for n in sorted(set(wanted)) if n in defined}
        out: dict[str, Any] = {
            "id": record.id,
            "properties": props,
            "createdAt": source.get("createdate"),
            "updatedAt": source.get("hs_lastmodifieddate"),
            "archived": record.archived_at is not None,
        }
        if record.archived_at is not None:
            out["archivedAt"] = record.archived_at
        assoc: dict[str, Any] = {}
        for to_obj in associations:
            types = schema.ASSOCIATION_TYPES.get((obj, to_obj))
            targets = self.linked(obj, to_obj, record.id) if types else []
            if targets:
                results = [{"id": t, "type": kind[3]} for t in targets for kind in types or ()]
                assoc[to_obj] = {"results": results}
        if assoc:
            out["associations"] = assoc
        out["url"] = (
            f"https://app.hubspot.com/contacts/{self.portal_id}/record/"
            f"{schema.TYPE_IDS[obj]}/{record.id}"
        )
        return out

    def written(self, obj: str, record: Record, names: Iterable[str]) -> dict[str, Any]:
        """A record as batch/update and PATCH return it: the written properties only."""
        return self.render(obj, record, record.snap, list(names))
