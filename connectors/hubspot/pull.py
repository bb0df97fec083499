"""Reading HubSpot companies and deals: list pages for everything, search for what changed.

- Full pull: `GET /crm/v3/objects/{object}` in pages of 100 following `after`, with
  exactly the mapped properties (plus the output properties of companies) and, for a
  field mapped as `associations.<object>`, the associations inline.
- Incremental pull: `POST /crm/v3/objects/{object}/search` on `hs_lastmodifieddate GTE
  since`, sorted ascending, 200 a page. One search can page through 10,000 results at
  most, so when the next page would pass that cap a new search starts at the last
  modified time seen, and ids already yielded are skipped. Should 10,000 records share
  one millisecond (a bulk import), that instant is read on its own, keyed by
  `hs_object_id`. Search results carry no associations: they come from the v4
  associations batch read, one call per page.
- Deleted records: HubSpot's list and search never return archived records, so
  `archived_ids` pages the archive (`archived=true`, ids only) instead.
"""

from __future__ import annotations

from collections.abc import Collection, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pandas as pd
from icp_engine.connectors.hubspot.client import Transport, Unreadable
from icp_engine.connectors.mapping import CrmMapping

LIST_PAGE = 100
SEARCH_PAGE = 200
SEARCH_CAP = 10_000
"""A search pages through this many results at most; asking beyond is a 400."""
ASSOCIATION_BATCH = 1_000
"""Ids per v4 associations batch read."""
MODIFIED = "hs_lastmodifieddate"
OBJECT_ID = "hs_object_id"
ASSOCIATION_PREFIX = "associations."
PRIMARY_TYPE_IDS = {("deals", "companies"): 5, ("companies", "deals"): 6}
"""HubSpot-defined "Primary" association type ids (v4; labels are not to be relied on)."""
PRIMARY_TYPE_NAMES = {
    ("deals", "companies"): "deal_to_company",
    ("companies", "deals"): "company_to_deal",
}
"""The same as v3 list responses name them (the unlabelled kind ends in `_unlabeled`)."""
_PRIMARY = "primary"

FRAME_ROWS = 2_000
"""Records per canonical frame: API pages are gathered (converting costs per call)."""

Record = dict[str, Any]


@dataclass(frozen=True)
class ReadSpec:
    """What to read for one kind: the HubSpot object, its properties, its associations."""

    kind: str
    object: str
    properties: tuple[str, ...]
    associations: dict[str, str]
    """Raw column (`associations.companies`) -> associated object (`companies`)."""


def read_spec(mapping: CrmMapping, kind: str) -> ReadSpec:
    """The properties a kind's pull asks for: the mapped ones (and outputs for accounts)."""
    object_map = getattr(mapping.objects, kind)
    names: list[str] = []
    associations: dict[str, str] = {}
    for spec in object_map.fields.values():
        if spec.field.startswith(ASSOCIATION_PREFIX):
            associations[spec.field] = spec.field[len(ASSOCIATION_PREFIX) :]
        elif spec.field != "id":
            names.append(spec.field)
    if kind == "account":
        names.extend(output.field for output in mapping.outputs.values())
    names.extend([OBJECT_ID, MODIFIED])  # the id and the search cursor, always
    return ReadSpec(kind, object_map.object, tuple(dict.fromkeys(names)), associations)


def to_millis(value: Any) -> int:
    """A datetime, ISO string or epoch-millisecond string as epoch milliseconds."""
    if isinstance(value, str) and value.isdigit():
        return int(value)
    stamp = pd.Timestamp(value)
    if stamp.tzinfo is None:
        stamp = stamp.tz_localize("UTC")
    return int(stamp.value // 1_000_000)


def page_records(body: dict[str, Any], what: str) -> list[Record]:
    """The `results` of a list or search page; `Unreadable` when the page has none.

    A page without a `results` list is not an empty page: taking it for one would end
    the pull early and read the records behind it as deleted (issue 10)."""
    records = body.get("results")
    if not isinstance(records, list) or not all(isinstance(r, dict) for r in records):
        keys = ", ".join(sorted(map(str, body))) or "nothing"
        raise Unreadable(f"{what}: HubSpot's page has no list of results (it holds {keys})")
    return records


def pick_association(entries: list[tuple[str, bool]]) -> str | None:
    """The one associated id to keep (the same company is listed once per association
    type): the primary one if marked, else the first."""
    if not entries:
        return None
    primary = [i for i, is_primary in entries if is_primary]
    return primary[0] if primary else entries[0][0]


@dataclass
class _Search:
    """One search query, and where its paging stopped."""

    filters: list[Record]
    sort: str
    last: int | None = None
    """`hs_lastmodifieddate` of the last record read, in epoch milliseconds."""
    last_text: str | None = None
    ties: int = 0
    """Records read in a row with that same `hs_lastmodifieddate`."""
    top_id: int | None = None
    capped: bool = False
    """Stopped because the next page would pass the 10,000-result cap."""


def _filter(name: str, operator: str, value: int) -> Record:
    return {"propertyName": name, "operator": operator, "value": str(value)}


class Reader:
    """Pages of raw HubSpot records (property name -> string) for one portal."""

    def __init__(self, transport: Transport, mapping: CrmMapping) -> None:
        self.transport = transport
        self.mapping = mapping
        self.search_page = SEARCH_PAGE
        self.search_cap = SEARCH_CAP
        self.known: tuple[int, AbstractSet[str]] = (0, frozenset())
        """(watermark in epoch ms, ids read at exactly that instant by the previous run):
        such a record found again unchanged is dropped by the sync, so its associations
        are not read (a quiet sync then costs no associations call)."""

    def rows(self, spec: ReadSpec, records: list[Record]) -> list[Record]:
        """Records as flat rows keyed by property name (and `associations.<object>`)."""
        out = []
        for record in records:
            properties = record.get("properties") or {}
            row = {name: properties.get(name) for name in spec.properties}
            row["id"] = str(record.get("id"))
            if row.get(OBJECT_ID) is None:
                row[OBJECT_ID] = row["id"]
            for column, target in spec.associations.items():
                inline = ((record.get("associations") or {}).get(target) or {}).get("results")
                primary = (PRIMARY_TYPE_NAMES.get((spec.object, target)), _PRIMARY)
                entries = [(str(e.get("id")), e.get("type") in primary) for e in inline or []]
                row[column] = pick_association(entries)
            out.append(row)
        return out

    # -- full pull ------------------------------------------------------------------------

    def everything(
        self, spec: ReadSpec, archived: bool = False, first: dict[str, Any] | None = None
    ) -> Iterator[list[Record]]:
        """Every record of the object, a list page (100) at a time (`first`: the first
        page's answer, already read)."""
        after: str | None = None
        options: dict[str, Any] = {"limit": LIST_PAGE, "archived": archived}
        if archived:
            options["properties"] = [OBJECT_ID]
        else:
            options["properties"] = list(spec.properties)
            if spec.associations:
                options["associations"] = sorted(set(spec.associations.values()))
        while True:
            if after is not None:
                options["after"] = after
            if first is not None:
                body, first = first, None
            else:
                body = self.transport.retried(
                    spec.kind, "objects.basic_api", "get_page", spec.object, **options
                ).body
            records = page_records(body, f"{spec.object} list")
            if records:
                yield records
            following = ((body.get("paging") or {}).get("next") or {}).get("after")
            if not following:  # only a missing cursor ends the list, never an empty page
                return
            if following == after:
                raise Unreadable(
                    f"{spec.object} list: HubSpot answered the same paging cursor "
                    f"{after!r} twice; stopping rather than reading the same page forever"
                )
            after = str(following)

    def archived_ids(
        self, spec: ReadSpec, known: Collection[str], first: dict[str, Any] | None = None
    ) -> set[str]:
        """Ids among `known` now in HubSpot's recycle bin."""
        wanted = set(known)
        found: set[str] = set()
        for records in self.everything(spec, archived=True, first=first):
            found.update(str(r.get("id")) for r in records if str(r.get("id")) in wanted)
        return found

    # -- incremental pull -----------------------------------------------------------------

    def changed(self, spec: ReadSpec, since: datetime) -> Iterator[list[Record]]:
        """Records modified at or after `since`, oldest first, each once."""
        seen: set[str] = set()
        lower, operator = to_millis(since), "GTE"
        while True:
            search = _Search([_filter(MODIFIED, operator, lower)], MODIFIED)
            yield from self._pages(spec, search, seen)
            if not search.capped or search.last is None:
                return
            stuck = search.last == lower and operator == "GTE"
            lower, operator = search.last, "GTE"  # a new search from the last time seen
            if stuck or search.ties + self.search_page > self.search_cap:
                # so many records share that millisecond (a bulk import) that a new search
                # could not page past them: read that instant by id, then go on after it
                yield from self._instant(spec, lower, seen)
                operator = "GT"

    def _instant(self, spec: ReadSpec, millis: int, seen: set[str]) -> Iterator[list[Record]]:
        last_id = 0
        while True:
            filters = [_filter(MODIFIED, "EQ", millis), _filter(OBJECT_ID, "GT", last_id)]
            search = _Search(filters, OBJECT_ID)
            yield from self._pages(spec, search, seen)
            if not search.capped or search.top_id is None or search.top_id <= last_id:
                return
            last_id = search.top_id

    def _pages(self, spec: ReadSpec, search: _Search, seen: set[str]) -> Iterator[list[Record]]:
        """One search, to its end or to its cap (`search.capped`); new records only."""
        after = 0
        while True:
            body = {
                "filterGroups": [{"filters": search.filters}],
                "sorts": [{"propertyName": search.sort, "direction": "ASCENDING"}],
                "properties": list(spec.properties),
                "limit": self.search_page,
                "after": str(after),
            }
            answer = self.transport.retried(
                spec.kind, "objects.search_api", "do_search", spec.object, body, search=True
            )
            records = page_records(answer.body, f"{spec.object} search")
            for record in records:
                value = (record.get("properties") or {}).get(MODIFIED)
                if value and value == search.last_text:
                    search.ties += 1
                elif value:
                    search.last_text, search.ties = value, 1
            if records:
                search.last = to_millis(search.last_text) if search.last_text else None
                search.top_id = max(int(r["id"]) for r in records)
            fresh = [r for r in records if str(r.get("id")) not in seen]
            seen.update(str(r.get("id")) for r in fresh)
            if fresh:
                to_link = [r for r in fresh if not self._already_read(r)]
                if spec.associations and to_link:
                    self._associate(spec, to_link)
                yield fresh
            following = ((answer.body.get("paging") or {}).get("next") or {}).get("after")
            # Only a missing cursor ends a search: HubSpot can answer `results: []` with a
            # `paging.next.after` and more records behind it (seen by Airbyte: "continue
            # CRM search pagination on short pages", airbytehq/airbyte#80745).
            if not following:
                return
            try:
                following_at = int(following)
            except (TypeError, ValueError):
                raise Unreadable(
                    f"{spec.object} search: HubSpot's paging cursor {following!r} is not an offset"
                ) from None
            if following_at <= after:
                raise Unreadable(
                    f"{spec.object} search: HubSpot's paging cursor went from {after} to "
                    f"{following_at}; stopping rather than reading the same page forever"
                )
            after = following_at
            if after + self.search_page > self.search_cap:
                search.capped = True
                return

    def _already_read(self, record: Record) -> bool:
        millis, ids = self.known
        if str(record.get("id")) not in ids:
            return False
        value = (record.get("properties") or {}).get(MODIFIED)
        return bool(value) and to_millis(value) == millis

    def _associate(self, spec: ReadSpec, records: list[Record]) -> None:
        """Fill `associations` of search results from the v4 batch read (as a list would)."""
        for target in set(spec.associations.values()):
            primary_type = PRIMARY_TYPE_IDS.get((spec.object, target))
            found: dict[str, list[Record]] = {}
            ids = [str(r["id"]) for r in records]
            for start in range(0, len(ids), ASSOCIATION_BATCH):
                body = {"inputs": [{"id": i} for i in ids[start : start + ASSOCIATION_BATCH]]}
                answer = self.transport.retried(
                    spec.kind, "associations.v4.batch_api", "get_page", spec.object, target, body
                )
                # a 207 names the ids without associations in `errors`; an answer without
                # a `results` list is no answer (deals would lose their company)
                for result in page_records(answer.body, f"{spec.object} associations"):
                    source = str((result.get("from") or {}).get("id"))
                    entries = []
                    for to in result.get("to") or []:
                        types = to.get("associationTypes") or []
                        is_primary = any(
                            t.get("typeId") == primary_type or t.get("label") == "Primary"
                            for t in types
                        )
                        entries.append(
                            {
                                "id": str(to.get("toObjectId")),
                                "type": _PRIMARY if is_primary else "other",
                            }
                        )
                    found[source] = entries
            for record in records:
                record.setdefault("associations", {})[target] = {
                    "results": found.get(str(record["id"]), [])
                }


def gathered(pages: Iterator[list[Record]]) -> Iterator[list[Record]]:
    """API pages gathered into runs of about `FRAME_ROWS` rows (memory stays bounded)."""
    rows: list[Record] = []
    for page in pages:
        rows.extend(page)
        if len(rows) >= FRAME_ROWS:
            yield rows
            rows = []
    if rows:
        yield rows
