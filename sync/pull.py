"""Pull what changed and assemble the accounts a run must rescore.

A full pull reads everything. An incremental pull reads records modified at or after
the stored watermark (skipping the ids already seen at exactly that instant), asks the
connector which known records were deleted, and works out the affected accounts:
those that changed, those whose opportunities changed, moved or were deleted, and
those still failing from earlier runs. Their unchanged data comes from the state's
mirror of canonical records, so no extra API call is needed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
from icp_engine.connectors.base import Connector, ObjectKind, PullContext, PullReport
from icp_engine.connectors.canonical import restore_types
from icp_engine.connectors.errors import SourceError
from icp_engine.connectors.id_set import Ids
from icp_engine.connectors.mapping import ID_FIELDS, CrmMapping
from icp_engine.sync import numbers, progress
from icp_engine.sync.spill import Spill
from icp_engine.sync.state.records import Watermark
from icp_engine.sync.state.store import StateStore

log = logging.getLogger(__name__)
SHRINK_MIN_KNOWN = 10
"""Below this many known records, no pull counts as suspiciously small."""


class ShrinkError(SourceError):
    """A read would delete half or more of the records the state knows (exit 2)."""


class TooManyChanges(Exception):
    """A pull since the watermark met more changed records than a run holds at once:
    the run reads everything instead, a slice at a time (`sync.streamed`), which leaves
    the CRM and the state as the incremental run would."""

    def __init__(self, records: str, above: int) -> None:
        super().__init__(f"More than {above:,} {records} changed since the last run")
        self.records, self.above = records, above


@dataclass
class Pulled:
    """The records one object's pull returned, and where its watermark may move."""

    frame: pd.DataFrame
    report: PullReport = field(default_factory=PullReport)
    """What the connector said about the pull (unreadable rows, calls, the memo)."""
    deleted: set[str] = field(default_factory=set)
    high_water: datetime | None = None
    boundary_ids: Ids = field(default_factory=Ids)
    spilled: int = 0
    """Records kept in the run's `Spill` instead of `frame` (a large org's full pull)."""

    @property
    def records(self) -> int:
        """Records pulled (a repeated id counted once)."""
        return self.spilled or len(self.frame)


@dataclass
class WorkingSet:
    """Everything a run scores and writes from."""

    accounts: pd.DataFrame
    opportunities: pd.DataFrame
    pulled: dict[str, Pulled]
    full: bool
    memo: dict[str, Any] = field(default_factory=dict)
    """What the connector learned and wants back next run (save it with the state)."""
    spill: Spill | None = None
    """Where the pulled records are when they were too many to hold (`accounts` and
    `opportunities` are then empty: `sync.streamed` reads them back a slice at a time)."""


def _empty(connector: Connector, kind: ObjectKind) -> pd.DataFrame:
    """No rows, but every canonical column with its type (so concatenation keeps types)."""
    return restore_types(pd.DataFrame(), connector.mapping, kind)


def _calls(connector: Connector, before: int, layout: str) -> str:
    """`; 3 API calls` since `before` (nothing for a CSV export, which makes none)."""
    if connector.name == "csv":
        return ""
    return layout.format(numbers.count(connector.api_calls - before, "API call"))


def _seen_at_boundary(page: pd.DataFrame, id_column: str, watermark: Watermark) -> np.ndarray:
    """Rows stamped exactly at the watermark whose Id the last run already took there.

    After a bulk load a page can hold 100,000s of such rows, and the boundary every Id of
    the org: one lookup of the page's rows at the stamp (pandas' `isin` on Arrow strings
    builds a scalar per boundary Id, and Arrow's hashes the boundary: seconds a page).
    """
    at = page["modified_at"].eq(pd.Timestamp(watermark.value)).to_numpy(dtype=bool, na_value=False)
    seen = np.zeros(len(page), dtype=bool)
    if at.any():
        seen[at] = watermark.boundary_ids.contains(page[id_column].to_numpy(dtype=object)[at])
    return seen


def pull_object(
    connector: Connector,
    kind: ObjectKind,
    watermark: Watermark | None,
    known: Ids,
    on_page: Callable[[int], None] | None = None,
    allow_shrink: bool = False,
    previous_run_started: datetime | None = None,
    memo: Mapping[str, Any] | None = None,
    spill: tuple[Spill, int] | None = None,
) -> Pulled:
    """Pull one object since `watermark` (everything when None) and find its deletions.

    `previous_run_started` and `memo` go to the connector in its `PullContext`; the
    memo it hands back is in the result's report. `spill`: (where, above): once more
    than `above` rows were read, they and every later page go to `where` instead of the
    result's frame; a pull since a watermark stops there instead (`TooManyChanges`).

    Raises:
        ShrinkError: the connector tells deletions only by absence, and half or more of
            the (at least `SHRINK_MIN_KNOWN`) known records are gone, or all of them, without
            `allow_shrink`.
    """
    id_column = ID_FIELDS[kind]
    since = watermark.value if watermark else None
    context = PullContext(
        since,
        watermark.boundary_ids if watermark else Ids(),
        previous_run_started,
        memo or {},
    )
    pages: list[pd.DataFrame] = []
    spilled = _Spilled(kind, id_column, *spill) if spill is not None and since is None else None
    calls = connector.api_calls
    what = "changes to " if since else ""
    plural = "opportunities" if kind == "opportunity" else f"{kind}s"
    expected = len(known) if watermark is None and known else None  # as many as last time
    with progress.stage(f"Reading {what}{plural}", expected, "rows") as stage:
        pull = connector.pull(kind, context)
        for number, page in enumerate(pull, start=1):
            if watermark and watermark.boundary_ids:
                pages.append(page.loc[~_seen_at_boundary(page, id_column, watermark)])
            else:
                pages.append(page)
            stage.advance(len(page))
            if spilled is not None:
                pages = spilled.take(pages)
            elif spill is not None and sum(len(held) for held in pages) > spill[1]:
                raise TooManyChanges(plural, spill[1])
            log.debug(
                "%s page %d: %s (%s so far%s)",
                plural,
                number,
                numbers.count(len(page), "row"),
                numbers.count(stage.done),
                _calls(connector, calls, "; {} so far"),
            )
            if on_page is not None:
                on_page(len(page))
    if not pages:
        log.debug("%s: %s", plural, "no row changed since the last run" if since else "no rows")
    frame = pd.concat(pages, ignore_index=True) if pages else _empty(connector, kind)
    frame = frame.drop_duplicates(id_column, keep="last").reset_index(drop=True)
    on_disk = spilled if spilled is not None and spilled.rows else None
    if on_disk is not None:
        deleted = on_disk.spill.missing(kind, id_column, known.array)
    elif watermark is None:
        deleted = known.without(pa.array(frame[id_column].astype(str).to_numpy(dtype=object)))
    else:
        deleted = connector.deleted_ids(kind, since, known)
    report = pull.report
    deleted -= report.unreadable_ids
    if deleted and not report.complete:
        log.warning(
            "%s: some rows could not be read (not even their id): %d records missing from it "
            "are kept as they were, not deleted",
            connector.name,
            len(deleted),
        )
        deleted = set()
    if (
        connector.deletes_by_absence
        and not allow_shrink
        and deleted
        and (
            (len(known) >= SHRINK_MIN_KNOWN and 2 * len(deleted) >= len(known))
            or len(deleted) == len(known)
        )
    ):
        where = getattr(connector, "path", None)
        source = str(where(kind)) if callable(where) else f"the {kind} records"
        msg = (
            f"{source}: holds {len(known) - len(deleted):,} of the {len(known):,} {kind} records "
            f"the state knows; {len(deleted):,} ({len(deleted) / len(known):.0%}) would be "
            "deleted. Is the export damaged or partial? If it is right (records really "
            "deleted), run again with --allow-shrink. Nothing was written"
        )
        raise ShrinkError(msg)
    log.debug(
        "%s: %s read%s, %s deleted since the last run%s",
        plural,
        numbers.count(len(frame)),
        f" (changed since {since:%Y-%m-%d %H:%M:%S})" if since else "",
        numbers.count(len(deleted)),
        _calls(connector, calls, "; {}"),
    )
    pulled = Pulled(frame, report, deleted)
    if on_disk is not None:
        pulled.spilled = on_disk.spill.distinct(kind, id_column)
        pulled.high_water, pulled.boundary_ids = on_disk.high_water, on_disk.boundary_ids
        return pulled
    stamps = frame["modified_at"].dropna() if "modified_at" in frame else pd.Series(dtype=object)
    if len(stamps):
        top = stamps.max()
        pulled.high_water = top.to_pydatetime()
        pulled.boundary_ids = Ids(frame.loc[frame["modified_at"] == top, id_column])
    return pulled


class _Spilled:
    """A full pull's pages going to disk once there are more than `above` rows, with
    the latest stamp meanwhile."""

    def __init__(self, kind: str, id_column: str, spill: Spill, above: int) -> None:
        self.kind, self.id_column, self.spill, self.above = kind, id_column, spill, above
        self.rows = 0
        self.high_water: datetime | None = None
        self._at_top: list[pa.Array] = []  # the Ids stamped `high_water`, page by page

    @property
    def boundary_ids(self) -> Ids:
        """The Ids stamped `high_water` (after a bulk load: every Id, as Arrow text)."""
        return Ids(pa.chunked_array(self._at_top, pa.string()))

    def take(self, pages: list[pd.DataFrame]) -> list[pd.DataFrame]:
        """The pages still held: none once past `above` (the rest went to the spill)."""
        if not self.rows and sum(len(page) for page in pages) <= self.above:
            return pages
        for page in pages:
            self.spill.add(self.kind, page)
            self.rows += len(page)
            stamps = page["modified_at"].dropna() if "modified_at" in page else None
            if stamps is None or not len(stamps):
                continue
            top = stamps.max().to_pydatetime()
            at_top = page.loc[page["modified_at"] == top, self.id_column]
            ids = pa.array(at_top.to_numpy(dtype=object), pa.string())
            if self.high_water is None or top > self.high_water:
                self.high_water, self._at_top = top, [ids]
            elif top == self.high_water:
                self._at_top.append(ids)
        return []


def working_set(
    connector: Connector,
    state: StateStore,
    full: bool,
    rescore_all: bool,
    extra_accounts: set[str],
    on_page: Callable[[int], None] | None = None,
    allow_shrink: bool = False,
    memo: Mapping[str, Any] | None = None,
    spill: tuple[Spill, int] | None = None,
) -> WorkingSet:
    """Pull both objects and assemble the accounts to score with all their opportunities.

    Args:
        connector: the CRM.
        state: where watermarks and the mirror of earlier pulls live.
        full: pull everything (backfill, first run, changed mapping).
        rescore_all: score every known account even if the pull is incremental
            (the criteria changed).
        extra_accounts: accounts to rescore whatever changed (failures of earlier runs).
        on_page: called with the rows of every page pulled.
        allow_shrink: accept a pull that deletes half or more of the known records.
        memo: what the connector saved after its last run (`WorkingSet.memo` then).
        spill: (where, rows): a full pull of more than that many accounts goes to
            disk, and so do all the opportunities then (`WorkingSet.spill`); an
            incremental one that meets more changed rows of either object raises
            `TooManyChanges`.
    """
    crm, mapping = connector.name, connector.mapping
    previous_run_started = next(
        (
            run.started_at
            for run in state.runs(crm, limit=50)
            if run.finished_at is not None and not run.dry_run and run.outcome in ("ok", "partial")
        ),
        None,
    )
    pulled: dict[str, Pulled] = {}
    known: dict[str, Ids] = {}
    learned: Mapping[str, Any] = memo or {}
    spilling = spill
    for kind in ("account", "opportunity"):
        watermark = None if full else state.watermark(crm, kind)
        known[kind] = state.known_ids(crm, kind)
        if kind == "opportunity" and spilling is not None and full:  # as the accounts did
            spilling = (spilling[0], 0) if pulled["account"].spilled else None
        pulled[kind] = pull_object(
            connector,
            kind,
            watermark,
            known[kind],
            on_page,
            allow_shrink,
            previous_run_started,
            learned,
            spilling,
        )
        learned = pulled[kind].report.memo
    accounts_pulled = pulled["account"].frame
    opps_pulled = pulled["opportunity"].frame
    if full:  # everything was pulled; what was not is already counted as deleted
        where = spilling[0] if spilling is not None else None
        return WorkingSet(accounts_pulled, opps_pulled, pulled, True, dict(learned), where)

    touched_opps = set(opps_pulled["opportunity_id"]) | pulled["opportunity"].deleted
    before = state.load_records(crm, "opportunity", ids=touched_opps) if touched_opps else None
    affected = set(accounts_pulled["account_id"]) | set(opps_pulled["account_id"].dropna())
    if before is not None and len(before):
        affected |= set(before["account_id"].dropna().astype(str))  # where moved opps came from
    affected |= extra_accounts
    affected -= pulled["account"].deleted
    if rescore_all:
        affected |= set(known["account"]) - pulled["account"].deleted

    from_mirror = affected - set(accounts_pulled["account_id"])
    stored = (
        state.load_records(crm, "account", ids=from_mirror, convert=_retyped(mapping, "account"))
        if from_mirror
        else None
    )
    frames = [stored] if stored is not None and len(stored) else []
    accounts = (
        pd.concat([*frames, accounts_pulled], ignore_index=True) if frames else accounts_pulled
    )

    stored_opps = (
        state.load_records(
            crm, "opportunity", account_ids=affected, convert=_retyped(mapping, "opportunity")
        )
        if affected
        else None
    )
    opp_frames = []
    if stored_opps is not None and len(stored_opps):
        gone = set(opps_pulled["opportunity_id"]) | pulled["opportunity"].deleted
        opp_frames.append(stored_opps.loc[~stored_opps["opportunity_id"].isin(gone)])
    opp_frames.append(opps_pulled.loc[opps_pulled["account_id"].isin(affected)])
    opportunities = pd.concat(opp_frames, ignore_index=True)
    return WorkingSet(accounts.reset_index(drop=True), opportunities, pulled, False, dict(learned))


def _retyped(mapping: CrmMapping, kind: str) -> Callable[[pd.DataFrame], pd.DataFrame]:
    """Mirror rows re-typed as a pull gives them, a stored part at a time."""
    return lambda frame: restore_types(frame, mapping, kind)


def persist(state: StateStore, crm: str, work: WorkingSet, run_started: datetime) -> None:
    """Fold the pull into the mirror and move the watermarks (after writing finished)."""
    for kind, pulled in work.pulled.items():
        id_column = ID_FIELDS[kind]
        if pulled.deleted:
            if kind == "account":
                state.forget_accounts(crm, pulled.deleted)
            else:
                state.delete_records(crm, kind, pulled.deleted)
        if len(pulled.frame):
            account_column = "account_id" if kind == "opportunity" else None
            state.upsert_records(crm, kind, pulled.frame, id_column, account_column)
        stored = state.watermark_values(crm).get((crm, kind))
        if pulled.high_water is not None and (stored is None or pulled.high_water >= stored):
            # a connector that looks back (a lagging search index) may see only older records
            state.set_watermark(crm, kind, pulled.high_water, pulled.boundary_ids, run_started)
