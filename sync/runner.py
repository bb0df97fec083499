"""One run, end to end: pull, score, plan, write, remember.

The order makes a crash harmless: the mirror and the watermarks move only after the
writing finished, and every written batch is recorded as it lands. A run killed at any
point is simply run again: it pulls the same changes, finds what already landed in
sync, and writes the rest.

A connector that hands its writes over (an update file) works as a queue (`sync.handover`):
the run first publishes the file holding every pending change (atomically), then commits
everything the state learns in one transaction. Killed, or the state write failing, in
between, the state still holds the run before: the rerun pulls the same changes, decides
the same values and publishes the same file.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd
import pyarrow as pa
from icp_engine import connectors
from icp_engine.connectors.arrow_memory import release_memory
from icp_engine.connectors.base import (
    CallEstimate,
    Connector,
    ObjectKind,
    RecordUpdate,
    WritePlan,
)
from icp_engine.connectors.canonical import RowIssue
from icp_engine.connectors.enrichment import JoinReport
from icp_engine.connectors.errors import ConnectError, SourceError
from icp_engine.connectors.mapping import CURRENT_PREFIX
from icp_engine.connectors.updates import RecordUpdates
from icp_engine.scoring.criteria import score_accounts
from icp_engine.scoring.features import build_features
from icp_engine.sync import numbers, streamed
from icp_engine.sync.config import Config
from icp_engine.sync.enrich import enrich_with_report
from icp_engine.sync.handover import confirmed, handed_rows, next_pending
from icp_engine.sync.logs import redact
from icp_engine.sync.mirror_ahead import MirrorAhead, MirrorJob
from icp_engine.sync.nurture import nurture_tracks
from icp_engine.sync.plan import (
    SKIPS_SHOWN,
    Plan,
    kept_by_people,
    log_skips,
    plan_changes,
    written_frame,
)
from icp_engine.sync.progress import Progress
from icp_engine.sync.pull import TooManyChanges, WorkingSet, persist, working_set
from icp_engine.sync.spill import SortedFile, Spill, to_frame
from icp_engine.sync.state.lock import DirectoryLock, LockedError
from icp_engine.sync.state.meta import MetaKeys
from icp_engine.sync.state.records import (
    LIMIT_REACHED,
    Failure,
    PendingChanges,
    ScoreRecord,
    StateError,
    score_frame,
)
from icp_engine.sync.state.store import StateStore, pending_table
from icp_engine.sync.writer import BatchOutcome, WriteSummary, hand_to, not_handed, write_all
from icp_engine.sync.yamlfile import ConfigError, ConfigProblem
from tenacity import Retrying

log = logging.getLogger(__name__)
Kind = Literal["sync", "backfill"]
_SHOWN = 20
"""Log lines per kind of problem (unreadable rows, skips, failures); the rest is counted."""


@dataclass
class RunOptions:
    crm: str
    kind: Kind = "sync"
    state_dir: Path = Path(".icp")
    dry_run: bool = False
    source: Path | None = None
    out: Path | None = None
    retrying: Retrying | None = None
    allow_shrink: bool = False
    """Accept a full read that loses half or more of the records the state knows."""
    now: Callable[[], datetime] = lambda: datetime.now(UTC)
    scores_from: str | None = None
    """A database URL holding the scores computed there (`icp score --sql`): the run
    reads them instead of scoring, then diffs and writes as usual."""
    scores_table: str = "icp_scores"
    chunk_accounts: int = field(default_factory=lambda: chunk_accounts_from(os.environ))
    """A hand-over run reading more accounts than this in full (or more changed records
    than this since the last run) goes a slice of this many accounts at a time
    (`sync.streamed`), so its memory stays flat as the org grows; 0: never."""


CHUNK_ENV = "ICP_CHUNK_ACCOUNTS"
CHUNK_ACCOUNTS = 100_000
"""Accounts per slice of a streamed run, unless `ICP_CHUNK_ACCOUNTS` says otherwise."""
AHEAD_SORT_MEMORY = "300MB"
"""DuckDB's memory for the sort the mirror's own process does while the slices run."""


def chunk_accounts_from(environ: Mapping[str, str]) -> int:
    """`ICP_CHUNK_ACCOUNTS` as a count of accounts (the default when unset).

    Raises:
        ConfigError: it is not a whole number >= 0.
    """
    text = environ.get(CHUNK_ENV, "").strip()
    if not text:
        return CHUNK_ACCOUNTS
    try:
        value = int(text.replace("_", "").replace(",", ""))
    except ValueError:
        value = -1
    if value < 0:
        msg = (
            f"expected a whole number of accounts per slice (0: hold every account at "
            f"once; the default is {CHUNK_ACCOUNTS:,}), found {text!r}"
        )
        raise ConfigError([ConfigProblem("environment", None, (CHUNK_ENV,), msg)])
    return value


@dataclass
class RunResult:
    """What a run did; the CLI renders it and `--json` prints `summary()`."""

    run_id: int
    crm: str
    kind: str
    dry_run: bool
    exit_code: int
    outcome: str
    counts: dict[str, int]
    api_calls: int
    target: str
    plan: Plan
    estimate: CallEstimate
    names: dict[str, str] = field(default_factory=dict)
    issues: list[RowIssue] = field(default_factory=list)
    failures: BatchOutcome = field(default_factory=list)
    scored: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Desired outputs of every account this run scored (account_id, score, tier...)."""
    opportunities: pd.DataFrame = field(default_factory=pd.DataFrame)
    """The canonical opportunities of those accounts."""
    message: str | None = None
    criteria: str = ""
    """Which criteria scored: `learned v0003 (path)` or `manual mappings/icp.yaml`."""
    enrichment: JoinReport | None = None
    """Coverage, staleness and conflicts of the enrichment join (None without sources)."""
    tier_changes: int | None = None
    """How many tier values the run changed, when `plan` holds only the first of its
    changes (a streamed run keeps no whole plan, nor `scored` and `opportunities`)."""

    def summary(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "crm": self.crm,
            "kind": self.kind,
            "dry_run": self.dry_run,
            "criteria": self.criteria,
            "outcome": self.outcome,
            "exit_code": self.exit_code,
            "counts": self.counts,
            "api_calls": self.api_calls,
            "estimated_calls": {
                "pull": self.estimate.pull_calls,
                "write": self.estimate.write_calls,
                "method": self.estimate.method,
            },
            "target": self.target,
            "failed": [
                {"record_id": u.record_id, "code": r.code, "message": _redacted(r.message)}
                for u, r in self.failures
            ],
            "message": _redacted(self.message),
            **({"enrichment": self.enrichment.to_json()} if self.enrichment else {}),
        }


def _redacted(text: str | None) -> str | None:
    """A CRM's message with any secret it echoed removed (it is printed and stored)."""
    return redact(text) if text else text


def fingerprint(model: Any) -> str:
    return hashlib.sha256(model.model_dump_json().encode()).hexdigest()[:16]


def score(config: Config, work: WorkingSet) -> pd.DataFrame:
    """Desired output values per account (indexed by account id)."""
    return score_with_report(config, work)[0]


def score_with_report(config: Config, work: WorkingSet) -> tuple[pd.DataFrame, JoinReport | None]:
    """`score`, and how the enrichment join went (None without enrichment sources)."""
    outputs = config.mapping.outputs
    accounts, report = enrich_with_report(config, work.accounts)
    features = build_features(accounts, work.opportunities)
    reasons = outputs.get("reasons")
    score_spec = outputs.get("score")
    scored = score_accounts(
        features,
        config.icp,
        reasons_length=reasons.length if reasons else None,
        score_scale=score_spec.scale if score_spec else 0,
    )
    if config.operate.nurture:
        scored["nurture_track"] = nurture_tracks(features, scored, config.operate.nurture)
    return scored.set_index("account_id"), report


def warehouse_scores(url: str, table: str, accounts: pd.DataFrame) -> pd.DataFrame:
    """Desired outputs read from a warehouse table or view of the compiled scorecard.

    Only the accounts of this run are kept; an account the table lacks is not written
    (and said in the log), so a stale view never blanks a CRM field.
    """
    from icp_engine.connectors.warehouse import read_table

    frame = read_table(url, table, "--scores-from")
    missing_columns = [c for c in ("account_id", "score", "tier", "reasons") if c not in frame]
    if missing_columns:
        msg = (
            f"--scores-from {table}: no column {', '.join(missing_columns)}; expected the "
            "columns of `icp score --sql` (account_id, score, tier, segment, route, reasons)"
        )
        raise SourceError(msg)
    frame["account_id"] = frame["account_id"].astype(str)
    frame = frame.drop_duplicates("account_id").set_index("account_id")
    wanted = accounts["account_id"].astype(str)
    found = wanted[wanted.isin(frame.index)]
    if len(found) < len(wanted):
        log.warning(
            "--scores-from %s: %d of %d accounts have no score there; left as they are",
            table,
            len(wanted) - len(found),
            len(wanted),
        )
    desired = frame.loc[pd.Index(found)]
    for column in ("score", "expansion", "win_probability"):
        if column in desired:
            desired[column] = pd.to_numeric(desired[column], errors="coerce").astype(float)
    return desired


def execute(
    config: Config,
    options: RunOptions,
    progress: Progress | None = None,
    connector: Connector | None = None,
) -> RunResult:
    """Run one sync or backfill. Raises `LockedError`, `ConnectorError` subclasses.

    Args:
        config: the validated mapping and criteria.
        options: what to run, where the state lives.
        progress: progress hooks (no-op by default).
        connector: the CRM to use instead of the one `options.crm` names (a test seam).
    """
    progress = progress or Progress()
    started = options.now()
    with StateStore(options.state_dir) as state:
        state.acquire_lock()
        if connector is None:
            connector = connectors.create(options.crm, config.mapping, options.source, options.out)
        connector.connect()
        with _output_lock(connector, options.dry_run):
            run_id = state.start_run(options.crm, options.kind, options.dry_run, started_at=started)
            try:
                with _fewer_collections():
                    return _run(Run(config, options, state, connector, run_id, started, progress))
            except StateError:
                raise  # the state cannot record it
            except BaseException as exc:
                message = redact(f"{type(exc).__name__}: {exc}")
                code = exit_code_for(exc)
                state.finish_run(run_id, "error", code, {}, connector.api_calls, message)
                raise


@contextmanager
def _fewer_collections() -> Iterator[None]:
    """Run with the cyclic garbage collector mostly out of the way.

    A whole-org run allocates millions of containers (rows read from the state, tuples
    handed to SQLite) that reference counting frees; at its default threshold (700
    allocations) the collector ran thousands of times per run and its full collections
    rescanned every live object: 7.3 s of a 200,000-account confirming sync, 1.9 s of a
    backfill. Freezing what imports and configuration made, and collecting 100x less
    often, took that to 1.9 s and 0.5 s (measured with `gc.callbacks`).
    """
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(100_000, 50, 100)
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


@contextmanager
def _output_lock(connector: Connector, dry_run: bool) -> Iterator[None]:
    """One writer per output file, whatever state directory each run uses."""
    where = None if dry_run else connector.output_lock()
    if where is None:
        yield
        return
    directory, name = where
    directory.mkdir(parents=True, exist_ok=True)
    lock = DirectoryLock(directory, str(name), f"update file {connector.describe_target()}")
    lock.acquire()
    try:
        yield
    finally:
        lock.release()


def exit_code_for(exc: BaseException) -> int:
    """The documented exit code for an error that ended a run."""
    if isinstance(exc, LockedError):
        return 4
    if isinstance(exc, ConnectError):
        return 3
    if isinstance(exc, SourceError | ConfigError | StateError):
        return 2
    if isinstance(exc, KeyboardInterrupt):
        return 130
    return 1


@dataclass(frozen=True)
class Run:
    """The fixed inputs of one run, handed to each of its steps."""

    config: Config
    options: RunOptions
    state: StateStore
    connector: Connector
    id: int
    started: datetime
    progress: Progress


@dataclass(frozen=True)
class Baseline:
    """What the state says before this run: how much to pull and rescore."""

    keys: MetaKeys
    mapping_fp: str
    criteria_fp: str
    full: bool
    """Pull everything: a backfill, a new mapping, or no watermark yet."""
    rescore_all: bool
    """Score every account: a full pull, or criteria changed since the last run."""
    failing: frozenset[str]
    """Records whose write failed in an earlier run (retried now)."""


@dataclass(frozen=True)
class Planned:
    """The plan of one run and what it costs, with the hand-over bookkeeping it used."""

    plan: Plan
    updates: RecordUpdates
    write_plan: WritePlan
    """How the connector will write `updates` (decided once, before any write)."""
    estimate: CallEstimate
    pending: pd.DataFrame
    """Changes handed over earlier and not yet seen in the CRM (hand-over connectors;
    `PENDING_COLUMNS`)."""
    seen: pd.DataFrame
    """Those of them the CRM now shows: written, from now on."""


@dataclass(frozen=True)
class Ending:
    """How a run ended, from what writing did: outcome, exit code and the counts it adds."""

    outcome: str
    exit_code: int
    counts: dict[str, int] = field(default_factory=dict)
    failures: BatchOutcome = field(default_factory=list)
    message: str | None = None

    @classmethod
    def of(cls, summary: WriteSummary, failed: int, **more_counts: int) -> Ending:
        counts = {"written": summary.written, "failed": failed, "retries": summary.retries}
        return cls(
            "partial" if failed else "ok",
            1 if failed else 0,
            {**counts, **more_counts},
            summary.failed,
            summary.stopped,
        )


DRY_RUN = Ending("dry-run", 0)


def _run(run: Run) -> RunResult:
    """pull -> score -> plan -> write -> remember; each step returns a finished value.
    A large org's full hand-over run goes a slice of accounts at a time instead."""
    base = _baseline(run)
    spill = Spill(run.options.state_dir) if _may_stream(run) else None
    try:
        pulled = _pull_or_too_many(run, base, spill)
        if pulled is None:  # (only with a spill)
            base = replace(base, full=True, rescore_all=True)
            pulled = _pull(run, base, spill)
        work, issues = pulled
        if work.spill is not None:
            return _run_streamed(run, base, work, issues, work.spill)
        return _run_whole(run, base, work, issues)
    finally:
        if spill is not None:
            spill.close()


def _pull_or_too_many(
    run: Run, base: Baseline, spill: Spill | None
) -> tuple[WorkingSet, list[RowIssue]] | None:
    """`_pull`, or None when it met more changes than a run holds at once (the pages it
    held are freed on return: the exception's frames would keep them)."""
    try:
        return _pull(run, base, spill)
    except TooManyChanges as many:
        log.info(
            "%s: reading everything instead, %s accounts at a time",
            many,
            f"{many.above:,}",
        )
    gc.collect()  # (a traceback's frames and the abandoned pull refer to each other)
    release_memory()
    return None


def _may_stream(run: Run) -> bool:
    """Whether a run may go a slice at a time, if the org or its changes turn out large:
    handed over, scored here, without enrichment sources (they join the whole org)."""
    options = run.options
    return (
        options.chunk_accounts > 0
        and not options.dry_run  # its preview shows the whole plan
        and options.scores_from is None
        and run.connector.hands_over
        and not run.config.enrichment.sources
    )


def _run_whole(run: Run, base: Baseline, work: WorkingSet, issues: list[RowIssue]) -> RunResult:
    """The run with every account it scores held at once."""
    desired, enrichment = _score(run, work)
    planned = _plan(run, base, work, desired)
    counts = _counts(work, issues, desired, planned)
    if run.options.dry_run:
        ending = DRY_RUN
        _finish(run, counts, ending)
    elif run.connector.hands_over:
        ending = _hand_over(run, base, work, desired, planned, counts)
    else:
        summary = _write(
            run,
            planned.updates,
            planned.write_plan,
            lambda ids: _score_records(desired, ids, run.config.criteria_version, base.criteria_fp),
        )
        ending = _remember(run, base, work, desired, planned, counts, summary)
    return _result(
        run,
        ending,
        counts,
        planned.plan,
        planned.estimate,
        names=dict(
            zip(
                work.accounts["account_id"].to_numpy(dtype=object).tolist(),
                _missing_as_none(work.accounts.get("name", work.accounts["account_id"])),
                strict=True,
            )
        ),
        issues=issues,
        scored=desired.reset_index(),
        opportunities=work.opportunities,
        enrichment=enrichment,
    )


def _result(
    run: Run,
    ending: Ending,
    counts: dict[str, int],
    plan: Plan,
    estimate: CallEstimate,
    **more: Any,
) -> RunResult:
    """The result of a run that got to its end (`more`: `RunResult`'s optional fields)."""
    return RunResult(
        run.id,
        run.options.crm,
        run.options.kind,
        run.options.dry_run,
        ending.exit_code,
        ending.outcome,
        {**counts, **ending.counts},
        run.connector.api_calls,
        run.connector.describe_target(),
        plan,
        estimate,
        failures=ending.failures,
        message=ending.message,
        criteria=run.config.criteria_label,
        **more,
    )


def _missing_as_none(column: pd.Series) -> list[Any]:
    """A column's values, a missing one as None (text columns are Arrow strings, NaN for
    missing)."""
    values = column.to_numpy(dtype=object)
    return list(np.where(pd.isna(values), np.array(None, dtype=object), values).tolist())


def _baseline(run: Run) -> Baseline:
    """How much this run pulls and rescores, from the fingerprints the last run left."""
    keys = MetaKeys(run.options.crm)
    mapping_fp, criteria_fp = fingerprint(run.config.mapping), fingerprint(run.config.icp)
    full = (
        run.options.kind == "backfill"
        or run.state.get_meta(keys.mapping) != mapping_fp
        or not run.state.watermark_values(run.options.crm)
    )
    return Baseline(
        keys,
        mapping_fp,
        criteria_fp,
        full,
        full or run.state.get_meta(keys.criteria) != criteria_fp,
        frozenset(f.record_id for f in run.state.failures(run.options.crm)),
    )


def _pull(
    run: Run, base: Baseline, spill: Spill | None = None
) -> tuple[WorkingSet, list[RowIssue]]:
    """The accounts and opportunities to score, and the rows or values that were
    unreadable; with `spill`, more accounts than `chunk_accounts` go there."""
    run.progress.phase("pull")
    work = working_set(
        run.connector,
        run.state,
        base.full,
        base.rescore_all,
        set(base.failing),
        run.progress.advance,
        run.options.allow_shrink,
        json.loads(run.state.get_meta(base.keys.connector_memo) or "{}"),
        (spill, run.options.chunk_accounts) if spill is not None else None,
    )
    run.state.set_meta(base.keys.connector_memo, json.dumps(work.memo))  # even when dry
    issues = [i for pulled in work.pulled.values() for i in pulled.report.issues]
    _log_issues(run.connector, issues)
    return work, issues


def _score(run: Run, work: WorkingSet) -> tuple[pd.DataFrame, JoinReport | None]:
    """Desired outputs per account (scored here, or read from the warehouse), and how the
    enrichment join went."""
    run.progress.phase("score", len(work.accounts))
    report = None
    if run.options.scores_from is not None:
        desired = warehouse_scores(run.options.scores_from, run.options.scores_table, work.accounts)
    else:
        desired, report = score_with_report(run.config, work)
    run.progress.advance(len(desired))
    return desired, report


def _plan(run: Run, base: Baseline, work: WorkingSet, desired: pd.DataFrame) -> Planned:
    """The three-way diff against what the CRM holds and what the engine last wrote."""
    crm = run.options.crm
    run.progress.phase("plan", len(desired))
    current = work.accounts.set_index("account_id")
    current = current[
        [c for c in current.columns if c.startswith(CURRENT_PREFIX) or c == "modified_at"]
    ]
    last = written_frame(run.state.last_written(crm, list(desired.index)))
    pending = (run.state.pending(crm) if run.connector.hands_over else PendingChanges()).frame
    seen = confirmed(pending, current, run.config.mapping.outputs)
    confirmed_at = run.options.now()
    if len(seen):  # the CRM shows them: now they count as written (later rows win)
        shown = seen[["record_id", "field", "value"]].assign(written_at=pd.Timestamp(confirmed_at))
        last = pd.concat([last, shown], ignore_index=True)
    plan = plan_changes(desired, current, last, run.config.mapping.outputs)
    run.progress.advance(len(desired))
    run.progress.phase("done")
    updates = plan.record_updates()
    write_plan = run.connector.begin_write(len(updates))
    estimate = CallEstimate.of(run.connector.api_calls, write_plan)
    _log_skips(plan, run.options.dry_run)
    return Planned(plan, updates, write_plan, estimate, pending, seen)


def _counts(
    work: WorkingSet, issues: list[RowIssue], desired: pd.DataFrame, planned: Planned
) -> dict[str, int]:
    """What the run read and decided (writing adds its own counts)."""
    return {
        **_read_counts(work, issues),
        "accounts_scored": len(desired),
        "records_to_write": len(planned.updates),
        "fields_to_write": len(planned.plan.change_frame),
        "fields_in_sync": planned.plan.in_sync,
        "fields_skipped": len(planned.plan.skip_frame),
    }


def _read_counts(work: WorkingSet, issues: list[RowIssue]) -> dict[str, int]:
    """What the run read: records, deletions, rows and values it could not read."""
    return {
        "accounts_pulled": work.pulled["account"].records,
        "opportunities_pulled": work.pulled["opportunity"].records,
        "accounts_deleted": len(work.pulled["account"].deleted),
        "unreadable_rows": sum(1 for i in issues if i.column is None),
        "unreadable_values": sum(1 for i in issues if i.column is not None),
    }


def _log_skips(plan: Plan, dry_run: bool) -> None:
    tell = log.debug if dry_run else log.info  # a dry run shows them in its preview
    _more_skips(tell, len(plan.skip_frame), log_skips(plan, tell, SKIPS_SHOWN))


def _more_skips(tell: Callable[..., None], skipped: int, shown: int) -> None:
    if skipped > shown:
        more = f"{skipped - shown:,}"
        tell("... and %s more fields left alone (--dry-run --all lists them)", more)


def _finish(run: Run, counts: dict[str, int], ending: Ending) -> None:
    """Record how the run ended (CRM, hand-over and dry run alike)."""
    run.state.finish_run(
        run.id,
        ending.outcome,
        ending.exit_code,
        {**counts, **ending.counts},
        run.connector.api_calls,
        _redacted(ending.message),
    )


def _remember_meta(run: Run, base: Baseline) -> None:
    run.state.set_meta(base.keys.mapping, base.mapping_fp)
    run.state.set_meta(base.keys.criteria, base.criteria_fp)
    run.state.set_meta(base.keys.criteria_label, run.config.criteria_label)


def _remember(
    run: Run,
    base: Baseline,
    work: WorkingSet,
    desired: pd.DataFrame,
    planned: Planned,
    counts: dict[str, int],
    summary: WriteSummary,
) -> Ending:
    """After writing to the CRM: scores, mirror, watermarks and fingerprints move on."""
    crm = run.options.crm
    run.progress.phase("save")
    still_failing = {u.record_id for u, _ in summary.failed} | {
        u.record_id for u in summary.not_attempted
    }
    written = set(planned.updates.record_ids.tolist())
    in_sync = set(desired.index) - written - still_failing
    in_sync -= kept_by_people(planned.plan, run.config.mapping.outputs)
    run.state.record_scores(
        crm,
        run.id,
        score_frame(desired, sorted(in_sync), run.config.criteria_version, base.criteria_fp),
        run.options.now(),
    )
    persist(run.state, crm, work, run.started)
    _remember_meta(run, base)
    run.state.clear_failures(crm, (set(base.failing) | set(desired.index)) - still_failing)
    if summary.deleted:
        run.state.forget_accounts(crm, summary.deleted)
    run.progress.phase("done")
    ending = Ending.of(summary, len(still_failing))
    _finish(run, counts, ending)
    return ending


def _hand_over(
    run: Run,
    base: Baseline,
    work: WorkingSet,
    desired: pd.DataFrame,
    planned: Planned,
    counts: dict[str, int],
) -> Ending:
    """Queue this run's changes with every earlier pending one, publish them all, then
    commit the state in one transaction (see the module docstring for the order)."""
    crm, updates, seen = run.options.crm, planned.updates, planned.seen
    run.progress.phase("write", len(updates))
    accepted, refused, summary = hand_to(
        run.connector, updates, run.options.retrying, run.progress.advance, planned.write_plan
    )
    failed = {u.record_id for u, r in refused if not r.deleted}
    failed |= {u.record_id for u in summary.not_attempted}
    decided = desired.index[~desired.index.isin(pd.Index(list(failed), dtype=object))]
    gone = set(work.pulled["account"].deleted) | set(summary.deleted)
    now = run.options.now()
    put, drop, in_file = _publish(run, planned, accepted, decided, gone, now)

    succeeded = sorted(set(accepted))
    accepted.clear()
    written = set(updates.record_ids.tolist())
    in_sync = set(desired.index) - written - failed
    in_sync -= kept_by_people(planned.plan, run.config.mapping.outputs)
    failures = not_handed(refused, summary)
    track = [*succeeded, *sorted(in_sync)]
    failing = {f.record_id for f in run.state.failures(crm)}
    run.progress.phase("save")
    with run.state.atomic():
        run.state.record_written(crm, run.id, seen[["record_id", "field", "value"]], now)
        run.state.update_pending(crm, put, drop)
        del put, drop
        run.state.record_failures(crm, run.id, failures, now)
        run.state.record_scores(
            crm,
            run.id,
            score_frame(desired, track, run.config.criteria_version, base.criteria_fp),
            now,
        )
        release_memory()  # what the queue freed, before the mirror is encoded
        persist(run.state, crm, work, run.started)
        _remember_meta(run, base)
        run.state.clear_failures(crm, failing - failed)  # no one else's failed since
        if summary.deleted:
            run.state.forget_accounts(crm, summary.deleted)
        ending = Ending.of(
            summary,
            len(failed),
            confirmed=int(seen["record_id"].nunique()),
            pending=in_file,
        )
        _finish(run, counts, ending)
    run.progress.phase("done")
    return ending


def _run_streamed(
    run: Run, base: Baseline, work: WorkingSet, issues: list[RowIssue], spill: Spill
) -> RunResult:
    """`_run_whole` for a pull kept on disk: each slice of accounts is scored, planned,
    handed over and recorded before the next is read (`sync.streamed`)."""
    crm, chunk, now = run.options.crm, run.options.chunk_accounts, run.options.now()
    pull_calls = run.connector.api_calls
    run.progress.phase("sort")
    accounts, by_account = _sorted(spill, work)
    job = streamed.Slicing(
        run.config,
        run.connector,
        run.state,
        crm,
        run.id,
        now,
        run.options.retrying,
        run.progress,
        run.config.criteria_version,
        base.criteria_fp,
        frozenset(work.pulled["account"].deleted),
        lambda accounts, opportunities: score(
            run.config, WorkingSet(accounts, opportunities, {}, True)
        ),
    )
    totals = streamed.Totals()
    failing = {f.record_id for f in run.state.failures(crm)}
    run.progress.phase("slices", accounts.rows)
    ahead = _mirror_ahead(run, spill, work, accounts)
    try:
        with run.state.atomic():
            parts = streamed.slices(accounts, by_account, chunk)
            run.connector.hand_over(streamed.handed_over(job, parts, totals), run.id)
            run.progress.phase("save")
            _more_skips(log.info, totals.counts["fields_skipped"], totals.skips_shown)
            run.state.record_failures(crm, run.id, totals.failures, now)
            release_memory()
            persist(run.state, crm, work, run.started)  # deletions and watermarks
            if not ahead.store(run.state, crm):
                _store_mirror(run, spill, work, accounts)
            _remember_meta(run, base)
            run.state.clear_failures(crm, failing - totals.failed)
            if totals.deleted:
                run.state.forget_accounts(crm, totals.deleted)
            counts = {**_read_counts(work, issues), **totals.plan_counts()}
            ending = Ending.of(
                totals.summary(),
                len(totals.failed),
                confirmed=totals.counts["confirmed"],
                pending=totals.counts["pending"],
            )
            _finish(run, counts, ending)
    finally:
        ahead.stop()
    run.progress.phase("done")
    write_plan = run.connector.begin_write(totals.counts["records_to_write"])
    return _result(
        run,
        ending,
        counts,
        totals.plan(),
        CallEstimate.of(pull_calls, write_plan),
        names=totals.names,
        issues=issues,
        tier_changes=totals.tier_change_count,
    )


def _sorted(spill: Spill, work: WorkingSet) -> tuple[SortedFile, SortedFile | None]:
    """The spilled accounts by id, and the opportunities by account (None without any)."""
    accounts = spill.sort(
        "account", "account_id", "account_id", repeats=_repeats(spill, work, "account")
    )
    if not spill.has("opportunity"):
        return accounts, None
    by_account = spill.sort(
        "opportunity",
        "account_id",
        "opportunity_id",
        "by-account",
        repeats=_repeats(spill, work, "opportunity"),
    )
    return accounts, by_account


def _opportunities_by_id(
    spill: Spill, work: WorkingSet, **sorting: Any
) -> Callable[[], SortedFile] | None:
    """How to sort the spilled opportunities by id (for the mirror only), with `sorting`'s
    arguments to `Spill.sort`; None without any."""
    if not spill.has("opportunity"):
        return None
    return functools.partial(
        spill.sort,
        "opportunity",
        "opportunity_id",
        "opportunity_id",
        "by-id",
        repeats=_repeats(spill, work, "opportunity"),
        **sorting,
    )


def _repeats(spill: Spill, work: WorkingSet, kind: ObjectKind) -> bool:
    """Whether a record of `kind` may have been spilled more than once (read twice)."""
    return work.pulled[kind].spilled < spill.rows(kind)


def _mirror_ahead(run: Run, spill: Spill, work: WorkingSet, accounts: SortedFile) -> MirrorAhead:
    """A second process building the records mirror while the slices run
    (`sync.mirror_ahead`)."""
    crm, chunk, folder = run.options.crm, run.options.chunk_accounts, spill.directory
    jobs = [
        MirrorJob(
            "account",
            accounts,
            "account_id",
            None,
            chunk,
            folder / "mirror.account",
            run.state.mirror.is_empty(crm, "account"),
        )
    ]
    # While the slices run, on the second core: one thread, a lighter memory bound.
    opportunities = _opportunities_by_id(spill, work, memory=AHEAD_SORT_MEMORY, threads=1)
    if opportunities is not None:
        jobs.append(
            MirrorJob(
                "opportunity",
                opportunities,
                "opportunity_id",
                "account_id",
                chunk,
                folder / "mirror.opportunity",
                run.state.mirror.is_empty(crm, "opportunity"),
            )
        )
    return MirrorAhead(jobs, folder / "mirror.log")


def _store_mirror(run: Run, spill: Spill, work: WorkingSet, accounts: SortedFile) -> None:
    """Encode and store every pulled record as the records mirror, here."""
    crm, chunk = run.options.crm, run.options.chunk_accounts
    run.state.upsert_records(crm, "account", _frames(accounts, chunk), "account_id")
    opportunities = _opportunities_by_id(spill, work)
    if opportunities is not None:
        run.state.upsert_records(
            crm, "opportunity", _frames(opportunities(), chunk), "opportunity_id", "account_id"
        )


def _frames(rows: SortedFile, chunk: int) -> Iterator[pd.DataFrame]:
    for table in rows.batches(chunk):
        yield to_frame(table)


def _publish(
    run: Run,
    planned: Planned,
    accepted: list[str],
    decided: pd.Index,
    gone: set[str],
    now: datetime,
) -> tuple[pa.Table, pd.DataFrame | None, int]:
    """Hand over every pending change, this run's and earlier ones, as one file (what
    the queue holds after the run). Returns what the queue gains (`Queue.put` as
    `pending_table` rows) and loses (`Queue.drop`) and how many records the file holds;
    the rest is freed on return."""
    changes = planned.plan.change_frame
    handed = changes[changes["record_id"].isin(pd.Index(accepted, dtype=object)).to_numpy(bool)]
    handed = handed_rows(handed["record_id"], handed["field"], handed["desired"])
    queue = next_pending(planned.pending, planned.seen, decided, handed, gone, run.id, now)
    del handed
    file = queue.updates()
    run.connector.hand_over(file, run.id)  # the file first: the state then says so
    put, drop, count = queue.put, queue.drop, len(file)
    del queue, file  # the whole queue and the file's updates, before the rows are made
    release_memory()
    return pending_table(put), drop, count


def _write(
    run: Run,
    updates: Sequence[RecordUpdate],
    write_plan: WritePlan,
    track: Callable[[list[str]], list[ScoreRecord]],
) -> WriteSummary:
    """Write the updates to the CRM; every batch is recorded in state as it lands."""
    connector, state, crm, options = run.connector, run.state, run.options.crm, run.options
    batches = [0, connector.api_calls, time.monotonic()]

    def on_batch(outcome: BatchOutcome) -> None:
        batches[0] += 1
        ok = sum(1 for _, r in outcome if r.ok)
        gone = sum(1 for _, r in outcome if r.deleted)
        calls = connector.api_calls - batches[1]
        log.debug(
            "batch %d: %s, %s written, %s failed, %s deleted in the CRM%s; %s",
            batches[0],
            numbers.count(len(outcome), "record"),
            numbers.count(ok),
            numbers.count(len(outcome) - ok - gone),
            numbers.count(gone),
            "" if crm == "csv" else f"; {numbers.count(calls, 'API call')}",
            numbers.duration(time.monotonic() - batches[2]),
        )
        batches[1:] = [connector.api_calls, time.monotonic()]
        written = [(u.record_id, f, v) for u, r in outcome if r.ok for f, v in u.values.items()]
        failed = [
            Failure(u.record_id, r.code, _redacted(r.message), r.transient, dict(u.values))
            for u, r in outcome
            if not r.ok and not r.deleted
        ]
        succeeded = [u.record_id for u, r in outcome if r.ok]
        state.record_batch(
            crm, run.id, written, failed, succeeded, options.now(), scores=track(succeeded)
        )

    run.progress.phase("write", len(updates))
    summary = write_all(
        connector, updates, on_batch, options.retrying, run.progress.advance, write_plan
    )
    if summary.not_attempted:
        failures = [
            Failure(u.record_id, LIMIT_REACHED, _redacted(summary.stopped), True, dict(u.values))
            for u in summary.not_attempted
        ]
        state.record_failures(crm, run.id, failures, options.now())
    connector.end_write()
    run.progress.phase("done")
    for update, write_result in summary.failed[:_SHOWN]:
        log.warning(
            "could not write %s: %s %s", update.record_id, write_result.code, write_result.message
        )
    if len(summary.failed) > _SHOWN:
        log.warning(
            "... and %s more records not written (icp status lists them)",
            f"{len(summary.failed) - _SHOWN:,}",
        )
    return summary


def _score_records(
    desired: pd.DataFrame, ids: list[str], version: str, criteria_fp: str
) -> list[ScoreRecord]:
    """The scores and tiers of `ids` (accounts whose CRM values now match `desired`)."""
    frame = score_frame(desired, ids, version, criteria_fp)
    scores = frame["score"].to_numpy(dtype=float)
    values = scores.astype(object)
    values[np.isnan(scores)] = None
    return [
        ScoreRecord(account, value, tier, version, criteria_fp)
        for account, value, tier in zip(
            frame["account_id"].tolist(), values.tolist(), frame["tier"].tolist(), strict=True
        )
    ]


def _log_issues(connector: Connector, issues: list[RowIssue]) -> None:
    for issue in issues[:_SHOWN]:
        source = getattr(connector.mapping.objects, issue.object).object
        log.warning("%s", issue.describe(source))
    if len(issues) > _SHOWN:
        more = f"{len(issues) - _SHOWN:,}"
        log.warning("... and %s more rows or values that could not be read", more)
