"""A whole-org hand-over run, one slice of accounts at a time, in bounded memory.

A full pull (backfill, first run, new mapping) of more accounts than
`RunOptions.chunk_accounts` goes to disk as it is read (`sync.spill`), and is sorted
there by account id; so does a sync that meets more changes than that (it reads
everything instead, which leaves what the incremental run would). Each slice of that
many accounts, in id order, with its opportunities, is then scored, planned against what
the CRM shows, what the state last wrote and what it holds pending for exactly those
ids, handed over and recorded, before the next slice is read. Everything a slice
decides depends on its own accounts only, so the run hands over the same update file
and leaves the same state as a whole run (`tests/test_streamed.py` holds them equal).

The order of `sync.runner` is kept: the update file is written a slice at a time under a
temporary name and published when the last slice is in it, while every change to the
state waits in one transaction that commits after. A run killed anywhere leaves the
state of the run before, and its rerun publishes the same file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime

import pandas as pd
from icp_engine.connectors.base import Connector
from icp_engine.connectors.mapping import CURRENT_PREFIX
from icp_engine.connectors.updates import RecordUpdates
from icp_engine.sync import numbers
from icp_engine.sync.config import Config
from icp_engine.sync.handover import KEY, confirmed, handed_rows, next_pending
from icp_engine.sync.history import TIER_CHANGES_KEPT
from icp_engine.sync.plan import (
    SKIPS_SHOWN,
    Plan,
    kept_by_people,
    log_skips,
    plan_changes,
    written_frame,
)
from icp_engine.sync.progress import Progress
from icp_engine.sync.spill import SortedFile, to_frame
from icp_engine.sync.state.parts import KeyRange
from icp_engine.sync.state.records import Failure, score_frame
from icp_engine.sync.state.store import StateStore, pending_table
from icp_engine.sync.writer import BatchOutcome, WriteSummary, hand_to, not_handed
from tenacity import Retrying

log = logging.getLogger(__name__)
PLAN_COUNTS = (
    "accounts_scored",
    "records_to_write",
    "fields_to_write",
    "fields_in_sync",
    "fields_skipped",
)
"""The run counts a plan decides (in `sync.runner`'s order)."""


@dataclass(frozen=True)
class Slicing:
    """What every slice of one run is decided with."""

    config: Config
    connector: Connector
    state: StateStore
    crm: str
    run_id: int
    now: datetime
    retrying: Retrying | None
    progress: Progress
    criteria_version: str
    criteria_fp: str
    gone: frozenset[str]
    """Accounts deleted in the CRM (their pending changes can never land)."""
    score: Callable[[pd.DataFrame, pd.DataFrame], pd.DataFrame]
    """Desired outputs of (accounts, their opportunities), indexed by account id."""


@dataclass
class Totals:
    """What the slices did, added up for the run's counts and result."""

    counts: dict[str, int] = field(
        default_factory=lambda: dict.fromkeys(
            (*PLAN_COUNTS, "written", "retries", "confirmed", "pending"), 0
        )
    )
    failed: set[str] = field(default_factory=set)
    failures: list[Failure] = field(default_factory=list)
    refused: BatchOutcome = field(default_factory=list)
    deleted: list[str] = field(default_factory=list)
    stopped: str | None = None
    tier_changes: list[pd.DataFrame] = field(default_factory=list)
    tier_change_count: int = 0
    names: dict[str, str] = field(default_factory=dict)
    skips_shown: int = 0
    slices: int = 0

    def plan_counts(self) -> dict[str, int]:
        """What the slices decided, as a whole run's counts say it."""
        return {key: self.counts[key] for key in PLAN_COUNTS}

    def summary(self) -> WriteSummary:
        """What writing did, over all slices."""
        return WriteSummary(
            self.counts["written"],
            self.refused,
            self.deleted,
            [],
            self.stopped,
            self.counts["retries"],
        )

    def plan(self) -> Plan:
        """The kept tier changes as a plan (what a run's detail shows of it)."""
        if not self.tier_changes:
            return Plan()
        return Plan(pd.concat(self.tier_changes, ignore_index=True), in_sync=0)


def slices(
    accounts: SortedFile, opportunities: SortedFile | None, rows: int
) -> Iterator[tuple[KeyRange, pd.DataFrame, pd.DataFrame]]:
    """(key range, accounts, their opportunities) a slice at a time, in account id order.
    The ranges cover every id, so the state's rows of an id no slice holds (a record the
    pull could not read) fall in one of them too."""
    after: str | None = None
    batches = accounts.batches(rows)
    batch = next(batches, None)
    while batch is not None:
        following = next(batches, None)
        upto = None if following is None else str(batch.column("account_id")[-1].as_py())
        bounds = KeyRange(after, upto)
        opps = pd.DataFrame() if opportunities is None else to_frame(opportunities.between(bounds))
        yield bounds, to_frame(batch), opps
        after, batch = upto, following


def handed_over(
    job: Slicing,
    parts: Iterator[tuple[KeyRange, pd.DataFrame, pd.DataFrame]],
    totals: Totals,
) -> Iterator[RecordUpdates]:
    """Each slice's part of the update file (every change pending for its records after
    the run), with the slice's scores, queue and confirmations recorded in the state."""
    outputs = job.config.mapping.outputs
    tier = outputs.get("tier")
    tier_field = tier.field if tier is not None else None
    for bounds, accounts, opportunities in parts:
        desired = job.score(accounts, opportunities)
        current = accounts.set_index("account_id")
        current = current[
            [c for c in current.columns if c.startswith(CURRENT_PREFIX) or c == "modified_at"]
        ]
        ids = desired.index.to_numpy(dtype=object).tolist()  # (Arrow text, iterated once)
        last = written_frame(job.state.last_written(job.crm, ids))
        pending = job.state.pending(job.crm, bounds).frame
        seen = confirmed(pending, current, outputs)
        if len(seen):
            shown = seen[["record_id", "field", "value"]].assign(written_at=pd.Timestamp(job.now))
            last = pd.concat([last, shown], ignore_index=True)
        plan = plan_changes(desired, current, last, outputs)
        del last, current
        totals.skips_shown += log_skips(plan, log.info, SKIPS_SHOWN - totals.skips_shown)
        updates = plan.record_updates()
        accepted, refused, summary = hand_to(job.connector, updates, job.retrying)
        failed = {u.record_id for u, r in refused if not r.deleted}
        failed |= {u.record_id for u in summary.not_attempted}
        decided = desired.index[~desired.index.isin(pd.Index(list(failed), dtype=object))]
        changes = plan.change_frame
        handed = changes[changes["record_id"].isin(pd.Index(accepted, dtype=object)).to_numpy(bool)]
        queue = next_pending(
            pending,
            seen,
            decided,
            handed_rows(handed["record_id"], handed["field"], handed["desired"]),
            job.gone | set(summary.deleted),
            job.run_id,
            job.now,
        )
        del handed
        part = queue.updates()
        yield part

        in_sync = set(ids) - set(updates.record_ids.tolist()) - failed
        in_sync -= kept_by_people(plan, outputs)
        state, crm = job.state, job.crm
        state.record_written(crm, job.run_id, seen[["record_id", "field", "value"]], job.now)
        drop = pending[KEY] if queue.drop is None else queue.drop
        state.update_pending(crm, pending_table(queue.put), drop)
        track = [*sorted(set(accepted)), *sorted(in_sync)]
        state.record_scores(
            crm,
            job.run_id,
            score_frame(desired, track, job.criteria_version, job.criteria_fp),
            job.now,
        )
        totals.failures += not_handed(refused, summary)
        _add(totals, plan, desired, accounts, len(updates), len(part), seen, tier_field)
        totals.failed |= failed
        totals.refused += refused
        totals.deleted += summary.deleted
        totals.stopped = totals.stopped or summary.stopped
        totals.counts["written"] += summary.written
        totals.counts["retries"] += summary.retries
        totals.slices += 1
        log.debug(
            "slice %d (account ids %s): %s scored, %s to write, %s in the update file",
            totals.slices,
            _described(bounds),
            numbers.count(len(desired)),
            numbers.count(len(updates), "record"),
            numbers.count(len(part), "record"),
        )
        job.progress.advance(len(accounts))


def _described(bounds: KeyRange) -> str:
    after = f"after {bounds.after}" if bounds.after is not None else ""
    upto = f"up to {bounds.upto}" if bounds.upto is not None else ""
    return ", ".join(text for text in (after, upto) if text) or "all"


def _add(
    totals: Totals,
    plan: Plan,
    desired: pd.DataFrame,
    accounts: pd.DataFrame,
    records: int,
    in_file: int,
    seen: pd.DataFrame,
    tier_field: str | None,
) -> None:
    counts = totals.counts
    counts["accounts_scored"] += len(desired)
    counts["records_to_write"] += records
    counts["fields_to_write"] += len(plan.change_frame)
    counts["fields_in_sync"] += plan.in_sync
    counts["fields_skipped"] += len(plan.skip_frame)
    counts["confirmed"] += int(seen["record_id"].nunique())
    counts["pending"] += in_file
    if tier_field is None:
        return
    changes = plan.change_frame
    tiers = changes[(changes["field"] == tier_field).to_numpy(bool)]
    totals.tier_change_count += len(tiers)
    room = TIER_CHANGES_KEPT - sum(len(kept) for kept in totals.tier_changes)
    if room > 0 and len(tiers):
        kept = tiers.head(room)
        totals.tier_changes.append(kept)
        names = accounts.set_index("account_id").get("name")
        for record_id in kept["record_id"].tolist():
            name = names.get(record_id) if names is not None else None
            totals.names[record_id] = "" if name is None or pd.isna(name) else str(name)
