"""An in-memory CRM speaking the connector contract: for tests of the sync that need no server.

`MemoryConnector` holds raw records under their CRM field names (the `csv` mapping's
Salesforce API names by default) and turns them into canonical frames with the same
`connectors.canonical.to_canonical` every real connector uses, so the frames are real.
It stamps every change with its own clock (`SystemModstamp`), so incremental pulls,
watermarks and deletions behave as they do against a CRM.

Writes land in the records' output fields; every `write` call is recorded (`batches`)
and counted as one API call, as is every page read. Failures can be injected: a
per-record answer (`reject`), or a whole-call error for the next calls (`fail_next`).
"""

from __future__ import annotations

import math
from collections.abc import Collection, Iterable, Iterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from icp_engine.connectors.base import (
    Connector,
    FieldInfo,
    ObjectKind,
    PullContext,
    PullReport,
    RecordUpdate,
    WritePlan,
    WriteResult,
)
from icp_engine.connectors.canonical import to_canonical
from icp_engine.connectors.mapping import ID_FIELDS, CrmMapping

KINDS: tuple[ObjectKind, ObjectKind] = ("account", "opportunity")


def _blank(value: Any) -> bool:
    """None, NaN or "": a field the record does not have."""
    return value is None or value == "" or (isinstance(value, float) and math.isnan(value))


class MemoryConnector(Connector):
    """A CRM held in dictionaries.

    Args:
        mapping: the mapping to read with (its field names are the records' keys).
        page_size: rows per pulled frame (each page costs one counted call).
        batch_size: the most records one `write` takes.
        start: the clock's first stamp (every change moves it on by a millisecond).
    """

    name = "memory"

    def __init__(
        self,
        mapping: CrmMapping,
        page_size: int = 100,
        batch_size: int = 50,
        start: datetime = datetime(2026, 1, 1, tzinfo=UTC),
    ) -> None:
        super().__init__(mapping)
        self.page_size, self.batch_size = page_size, batch_size
        self.records: dict[str, dict[str, dict[str, Any]]] = {kind: {} for kind in KINDS}
        self.deleted: dict[str, set[str]] = {kind: set() for kind in KINDS}
        self.batches: list[list[RecordUpdate]] = []
        """Every `write` call, with the updates it was given."""
        self.reject: dict[str, WriteResult] = {}
        """record id -> the answer its writes get (instead of being written)."""
        self.fail_next: list[Exception] = []
        """Errors the next `write` calls raise, one each, before writing anything."""
        self._now = start

    # -- the CRM side (what a test does to the data) ----------------------------------

    def _field(self, kind: ObjectKind, canonical: str) -> str:
        return str(getattr(self.mapping.objects, kind).fields[canonical].field)

    def _stamp(self) -> str:
        self._now += timedelta(milliseconds=1)
        return self._now.isoformat().replace("+00:00", "Z")

    def now(self) -> datetime:
        """The clock: every change made after this moment is stamped later."""
        return self._now

    def add(self, kind: ObjectKind, rows: Iterable[Mapping[str, Any]]) -> list[str]:
        """Add raw records (CRM field names, the id included); return their ids."""
        id_field, stamp_field = self._field(kind, ID_FIELDS[kind]), self._stamp_field(kind)
        ids = []
        for row in rows:
            record = {name: value for name, value in row.items() if not _blank(value)}
            if stamp_field:
                record[stamp_field] = self._stamp()
            self.records[kind][str(record[id_field])] = record
            ids.append(str(record[id_field]))
        return ids

    def edit(self, kind: ObjectKind, record_id: str, changes: Mapping[str, Any]) -> None:
        """Change a record as a CRM user would (its stamp moves on)."""
        record = self.records[kind][record_id]
        record.update(changes)
        if stamp := self._stamp_field(kind):
            record[stamp] = self._stamp()

    def delete(self, kind: ObjectKind, record_id: str) -> None:
        del self.records[kind][record_id]
        self.deleted[kind].add(record_id)

    def _stamp_field(self, kind: ObjectKind) -> str | None:
        fields = getattr(self.mapping.objects, kind).fields
        return str(fields["modified_at"].field) if "modified_at" in fields else None

    # -- the contract -------------------------------------------------------------------

    def read(
        self, kind: ObjectKind, context: PullContext, report: PullReport
    ) -> Iterator[pd.DataFrame]:
        stamp = self._stamp_field(kind)
        rows = sorted(self.records[kind].values(), key=lambda r: str(r.get(stamp or "", "")))
        if context.since is not None and stamp is not None:
            since = pd.Timestamp(context.since)
            rows = [r for r in rows if pd.Timestamp(r[stamp]) >= since]
        for start in range(0, len(rows), self.page_size):
            self._calls.add(kind)
            raw = pd.DataFrame(rows[start : start + self.page_size], dtype=object)
            frame, issues = to_canonical(raw, self.mapping, kind)
            report.issues.extend(issues)
            report.rows += len(frame)
            yield frame

    def deleted_ids(
        self, kind: ObjectKind, since: datetime | None, known: Collection[str]
    ) -> set[str]:
        return self.deleted[kind] & set(known)

    def begin_write(self, records: int) -> WritePlan:
        calls = math.ceil(records / self.batch_size)
        return WritePlan(records, self.batch_size, calls, "memory")

    def write(self, batch: Sequence[RecordUpdate]) -> list[WriteResult]:
        self._calls.add("write")
        self.batches.append(list(batch))
        if self.fail_next:
            raise self.fail_next.pop(0)
        results = []
        for update in batch:
            record = self.records["account"].get(update.record_id)
            if update.record_id in self.reject:
                results.append(self.reject[update.record_id])
            elif record is None:
                results.append(
                    WriteResult(
                        update.record_id, False, "NOT_FOUND", "no such record", deleted=True
                    )
                )
            else:
                record.update(update.values)
                results.append(WriteResult(update.record_id, ok=True))
        return results

    def describe(self) -> dict[str, dict[str, FieldInfo]]:
        described: dict[str, dict[str, FieldInfo]] = {}
        for kind in KINDS:
            names = {name for record in self.records[kind].values() for name in record}
            names |= {spec.field for spec in getattr(self.mapping.objects, kind).fields.values()}
            if kind == "account":
                names |= {output.field for output in self.mapping.outputs.values()}
            described[kind] = {n: FieldInfo(name=n, type="string") for n in sorted(names)}
        return described
