"""The connector contract: what every CRM connector gives the sync loop.

`sync` talks to Salesforce, HubSpot and CSV exports only through `Connector`; a new
CRM is a new subclass and no change to `sync/`. A connector:

- pulls accounts and opportunities changed since a watermark, as pages of canonical
  frames (`pull`), account pages carrying the output values now in the CRM as
  `current_<output>` columns, so reading them costs no extra call;
- reports records deleted since the watermark (`deleted_ids`);
- says how it will write a run's changes and what that costs (`begin_write` answers a
  `WritePlan`), then writes batches of field updates and answers per record (`write`);
- describes its fields for validation (`describe`).

Everything crosses the seam as a value: a pull takes a `PullContext` (the watermark, the
ids already read at it, when the last run started, the memo the connector saved last
time) and gives back its frames and then a `PullReport` (rows, unreadable rows, API calls,
the memo to save). Nothing outside a connector writes its attributes. API calls are
counted in one place, the connector's `CallCounter` (`api_calls`, `write_calls`).
"""

from __future__ import annotations

import copy
import threading
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

import pandas as pd
from icp_engine.connectors.canonical import RowIssue
from icp_engine.connectors.id_set import Ids
from icp_engine.connectors.mapping import CrmMapping, OutputField

ObjectKind = Literal["account", "opportunity"]


@dataclass(frozen=True)
class RecordUpdate:
    """New values for one record: CRM field name -> value (None clears the field)."""

    record_id: str
    values: Mapping[str, Any]


@dataclass(frozen=True)
class WriteResult:
    """What the CRM said about one record of a batch.

    `code` and `message` are the CRM's own (`UNABLE_TO_LOCK_ROW`, `STRING_TOO_LONG`...);
    `transient` says whether the same write may succeed if tried again; `deleted` that
    the record no longer exists, so it should leave the engine's state.
    """

    record_id: str
    ok: bool
    code: str | None = None
    message: str | None = None
    transient: bool = False
    deleted: bool = False
    retry_after: float | None = None


@dataclass(frozen=True)
class FieldInfo:
    """A CRM field as its describe call reports it."""

    name: str
    type: str
    label: str = ""
    updateable: bool = True
    length: int | None = None
    scale: int | None = None
    picklist_values: tuple[str, ...] = ()
    visible: bool = True
    """False: the field exists but field-level security hides it from the integration
    user (so it cannot be read or written until an admin grants access)."""


@dataclass(frozen=True)
class WritePlan:
    """How a connector will write one run's changes, decided once by `begin_write`."""

    records: int
    """Records to write."""
    batch_size: int
    """The most records one `write` call takes."""
    calls: int
    """API calls the writes will take when nothing fails (retries cost more)."""
    method: str
    """How, for people: `sObject Collections`, `Bulk API 2.0`, `batch update x4`, `file`."""
    bulk: bool = False
    """True when the run writes through the CRM's bulk API rather than its REST batches."""
    note: str = ""

    @property
    def batches(self) -> int:
        """`write` calls the writer will make."""
        return -(-self.records // self.batch_size) if self.records else 0


@dataclass(frozen=True)
class CallEstimate:
    """The API calls a run is expected to cost, and how it will write (for people)."""

    pull_calls: int
    write_calls: int
    method: str
    note: str = ""

    @classmethod
    def of(cls, pull_calls: int, plan: WritePlan) -> CallEstimate:
        """The calls a pull made and the calls its write plan will make."""
        return cls(pull_calls, plan.calls, plan.method, plan.note)

    @property
    def total(self) -> int:
        return self.pull_calls + self.write_calls


@dataclass(frozen=True)
class FieldCreation:
    """What `create_output_fields` did for one field."""

    field: str
    created: bool
    message: str = ""


@dataclass(frozen=True)
class PullContext:
    """What the sync knows before it pulls one object."""

    since: datetime | None = None
    """The watermark: pull records modified at or after it (None: everything)."""
    already_read: Ids = field(default_factory=Ids)
    """Ids the previous run read at exactly `since` (the watermark's own instant): the sync
    drops them if they come back unchanged, so a connector need not pay extra calls
    (associations...) for them."""
    previous_run_started: datetime | None = None
    """When the last finished run against this CRM started. A CRM whose change feed lags
    (HubSpot's search index, Salesforce's late commits) need only look back for records
    stamped shortly before that moment, not before every watermark."""
    memo: Mapping[str, Any] = field(default_factory=dict)
    """What the connector saved after its last run (`PullReport.memo`). JSON only."""


@dataclass
class PullReport:
    """What one pull met on its way; complete once its frames have all been read."""

    rows: int = 0
    issues: list[RowIssue] = field(default_factory=list)
    api_calls: int = 0
    unreadable_ids: set[str] = field(default_factory=set)
    """Ids of rows that could not be read: still there, so never taken for deleted."""
    complete: bool = True
    """False when some rows could not be told apart (not even their id): then a record
    missing from the pull is no evidence that it was deleted."""
    memo: dict[str, Any] = field(default_factory=dict)
    """Facts about the CRM worth keeping between runs (fields an org lacks, say): the
    context's memo with what this pull learned. The sync saves it and hands it to the
    next pull. JSON only."""


class Pull(Iterator[pd.DataFrame]):
    """The frames of one pull, then (once they are all read) its `report`."""

    def __init__(self, frames: Iterator[pd.DataFrame], report: PullReport) -> None:
        self._frames, self.report = frames, report

    def __iter__(self) -> Pull:
        return self

    def __next__(self) -> pd.DataFrame:
        return next(self._frames)


class CallCounter:
    """The one tally of the API calls a connector made, by what they were for.

    Thread-safe: HubSpot writes from several threads at once.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: Counter[str] = Counter()

    def add(self, what: str, calls: int = 1) -> None:
        """Count `calls` calls made for `what` (`account`, `opportunity`, `write`...)."""
        with self._lock:
            self._counts[what] += calls

    @property
    def total(self) -> int:
        with self._lock:
            return sum(self._counts.values())

    def of(self, what: str) -> int:
        with self._lock:
            return self._counts[what]


class Connector(ABC):
    """A CRM the engine reads from and writes back to.

    Args:
        mapping: the validated CRM mapping (field maps, outputs, settings).
    """

    name: ClassVar[str]
    hands_over: ClassVar[bool] = False
    """True when `write` only hands changes over (an update file someone loads later): they
    stay pending until a later pull shows them, and every run hands over all of them again
    through `hand_over`."""
    takes_every_update: ClassVar[bool] = False
    """True when `write` takes every update and answers ok for each (a connector that
    `hands_over`): the engine then gives it whole batches through `accept` instead."""
    deletes_by_absence: ClassVar[bool] = False
    """True when the only evidence of a deletion is a record missing from a full read (a
    CSV export): a pull that loses many records at once then needs a confirmation."""

    def __init__(self, mapping: CrmMapping) -> None:
        self.mapping = mapping
        self._calls = CallCounter()

    @property
    def api_calls(self) -> int:
        """API calls made so far (pull and write)."""
        return self._calls.total

    @property
    def write_calls(self) -> int:
        """API calls made so far to write."""
        return self._calls.of("write")

    def connect(self) -> None:  # noqa: B027 - optional hook
        """Check the CRM is reachable and the credentials work; raise `ConnectError`."""

    def pull(self, kind: ObjectKind, context: PullContext | None = None) -> Pull:
        """The canonical frames of the records of `kind` modified at or after
        `context.since` (everything when None), then the pull's report.

        Frames have the canonical columns the mapping provides; account frames add
        `current_<output>` with the CRM's output values. Unreadable rows are left out and
        listed in the report, which also counts the API calls the frames cost.
        """
        context = context or PullContext()
        report = PullReport(memo=copy.deepcopy(dict(context.memo)))
        return Pull(self._metered(self.read(kind, context, report), report), report)

    def _metered(
        self, frames: Iterator[pd.DataFrame], report: PullReport
    ) -> Iterator[pd.DataFrame]:
        """`frames`, counting into `report` the calls made while producing them."""
        before = self._calls.total
        try:
            for frame in frames:
                report.api_calls += self._calls.total - before
                yield frame
                before = self._calls.total
        finally:
            report.api_calls += self._calls.total - before

    @abstractmethod
    def read(
        self, kind: ObjectKind, context: PullContext, report: PullReport
    ) -> Iterator[pd.DataFrame]:
        """Yield the frames of `pull`, recording in `report` what the reading met."""

    @abstractmethod
    def deleted_ids(
        self, kind: ObjectKind, since: datetime | None, known: Collection[str]
    ) -> set[str]:
        """Ids among `known` (records the engine has seen) that the CRM no longer holds."""

    @abstractmethod
    def write(self, batch: Sequence[RecordUpdate]) -> list[WriteResult]:
        """Write one batch (at most the plan's `batch_size`) and answer for every record in it.

        Raises `TransientError` when the whole call failed and may be retried,
        `ConnectError` or `LimitReachedError` when no more writes can be made.
        """

    @abstractmethod
    def describe(self) -> dict[str, dict[str, FieldInfo]]:
        """Fields of the mapped account and opportunity objects, keyed by CRM name."""

    @abstractmethod
    def begin_write(self, records: int) -> WritePlan:
        """Decide how this run writes `records` records, before the first `write`.

        Called once per run that may write, even when nothing will be written; makes no
        API call. A connector with more than one way of writing (REST batches or a bulk
        job) chooses it here; the plan says how many records each `write` takes and how
        many calls the writes will make.
        """

    def end_write(self) -> None:  # noqa: B027 - optional hook
        """Called once after the last `write` of a run that finished writing."""

    def accept(self, batches: int) -> None:
        """Take `batches` batches of updates into this run's hand-over at once, as that
        many `write` calls would, without an answer per record (`takes_every_update`
        connectors only; `hand_over` publishes the updates)."""
        raise NotImplementedError(f"{self.name} writes directly; it hands nothing over")

    def hand_over(
        self, updates: Sequence[RecordUpdate] | Iterator[Sequence[RecordUpdate]], run_id: int
    ) -> None:
        """Publish every pending change at once (connectors that `hands_over` only):
        the updates, or parts of them one after another, in record id order (a run that
        goes a slice of accounts at a time makes each part only when the one before is
        written).

        Must be atomic: after a crash the previous hand-over is intact or this one is.
        """
        raise NotImplementedError(f"{self.name} writes directly; it hands nothing over")

    def output_lock(self) -> tuple[Path, Path] | None:
        """(directory, lock file name) to lock while a run writes, when the output is a
        file other runs could write too; None when the CRM serialises writes itself."""
        return None

    def create_output_fields(self, missing: Sequence[OutputField]) -> list[FieldCreation]:
        """Create the output fields the CRM lacks, where its API and the user's rights allow.

        Answers per field; a field that could not be created says what to create by hand.
        """
        return [
            FieldCreation(spec.field, False, f"create {spec.field} by hand ({spec.type})")
            for spec in missing
        ]

    def grant_field_access(self, wanted: Sequence[tuple[str, str, bool]]) -> dict[str, str | None]:
        """Let the integration user see fields that exist but are hidden from it.

        `wanted`: (object, field, edit) triples. Answers field -> None when granted, else
        why not and what to grant by hand. Default: nothing to grant (no field-level
        security in this CRM).
        """
        return {}

    def describe_target(self) -> str:
        """Where the writes of this run go, for people: a file, an org, a portal."""
        return self.name
