"""The connector contract: what every CRM connector gives the sync loop.

`sync` talks to Salesforce, HubSpot and CSV exports only through `Connector`; a new
CRM is a new subclass and no change to `sync/`. A connector:

- pulls accounts and opportunities changed since a watermark, as pages of canonical
  frames (`pull`), account pages carrying the output values now in the CRM as
  `current_<output>` columns, so reading them costs no extra call;
- reports records deleted since the watermark (`deleted_ids`);
- writes a batch of field updates and answers per record (`write`);
- describes its fields for validation (`describe`);
- estimates what a plan will cost in API calls (`estimate_calls`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, ClassVar, Literal

import pandas as pd
from icp_engine.connectors.canonical import RowIssue
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
class CallEstimate:
    """The API calls a run is expected to cost, and how it will write."""

    pull_calls: int
    write_calls: int
    method: str
    note: str = ""

    @property
    def total(self) -> int:
        return self.pull_calls + self.write_calls


@dataclass(frozen=True)
class FieldCreation:
    """What `create_output_fields` did for one field."""

    field: str
    created: bool
    message: str = ""


@dataclass
class PullStats:
    """What a pull met on its way: rows read, rows it could not read, API calls made."""

    rows: int = 0
    issues: list[RowIssue] = field(default_factory=list)
    api_calls: int = 0
    unreadable_ids: set[str] = field(default_factory=set)
    """Ids of rows that could not be read: still there, so never taken for deleted."""
    complete: bool = True
    """False when some rows could not be told apart (not even their id): then a record
    missing from the pull is no evidence that it was deleted."""


class Connector(ABC):
    """A CRM the engine reads from and writes back to.

    Args:
        mapping: the validated CRM mapping (field maps, outputs, settings).
    """

    name: ClassVar[str]
    max_batch_size: int
    """The most records one `write` call accepts."""
    hands_over: ClassVar[bool] = False
    """True when `write` only hands changes over (an update file someone loads later): they
    stay pending until a later pull shows them, and every run hands over all of them again
    through `hand_over`."""
    deletes_by_absence: ClassVar[bool] = False
    """True when the only evidence of a deletion is a record missing from a full read (a
    CSV export): a pull that loses many records at once then needs a confirmation."""

    def __init__(self, mapping: CrmMapping) -> None:
        self.mapping = mapping
        self.stats: dict[str, PullStats] = {"account": PullStats(), "opportunity": PullStats()}
        self.write_calls = 0
        self.memo: dict[str, Any] = {}
        """Facts about the CRM worth keeping between runs (fields an org lacks, say): sync
        loads it from the state before pulling and saves it after the run. JSON only."""
        self.already_read: dict[str, frozenset[str]] = {}
        """Per kind, ids an incremental pull's previous run read at exactly `since` (the
        watermark's own instant): the sync drops them if they come back unchanged, so a
        connector need not pay extra calls (associations...) for them."""
        self.previous_run_started: datetime | None = None
        """When the last finished run against this CRM started (set by sync before pulling).

        A CRM whose change feed lags (HubSpot's search index) need only look back for
        records stamped shortly before that moment, not before every watermark."""

    @property
    def api_calls(self) -> int:
        """API calls made so far (pull and write)."""
        return sum(s.api_calls for s in self.stats.values()) + self.write_calls

    def connect(self) -> None:  # noqa: B027 - optional hook
        """Check the CRM is reachable and the credentials work; raise `ConnectError`."""

    @abstractmethod
    def pull(self, kind: ObjectKind, since: datetime | None) -> Iterator[pd.DataFrame]:
        """Yield canonical frames of the records of `kind` modified at or after `since`.

        `since=None` pulls everything. Frames have the canonical columns the mapping
        provides; account frames add `current_<output>` with the CRM's output values.
        Unreadable rows are left out and recorded in `self.stats[kind].issues`.
        """

    @abstractmethod
    def deleted_ids(
        self, kind: ObjectKind, since: datetime | None, known: Collection[str]
    ) -> set[str]:
        """Ids among `known` (records the engine has seen) that the CRM no longer holds."""

    @abstractmethod
    def write(self, batch: Sequence[RecordUpdate]) -> list[WriteResult]:
        """Write one batch (at most `max_batch_size`) and answer for every record in it.

        Raises `TransientError` when the whole call failed and may be retried,
        `ConnectError` or `LimitReachedError` when no more writes can be made.
        """

    @abstractmethod
    def describe(self) -> dict[str, dict[str, FieldInfo]]:
        """Fields of the mapped account and opportunity objects, keyed by CRM name."""

    @abstractmethod
    def estimate_calls(self, records_to_write: int, full_pull: bool) -> CallEstimate:
        """API calls a run pulling (fully or not) and writing this many records will use."""

    def begin_write(self, records: int = 0) -> None:  # noqa: B027 - optional hook
        """Called once before the first `write` of a run with the number of records to write.

        Called even when nothing will be written. A connector with more than one way of
        writing (REST batches or a bulk job) chooses it here, and may set
        `max_batch_size` for the run.
        """

    def end_write(self) -> None:  # noqa: B027 - optional hook
        """Called once after the last `write` of a run that finished writing."""

    def hand_over(self, updates: Sequence[RecordUpdate], run_id: int) -> None:
        """Publish every pending change at once (connectors that `hands_over` only).

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
