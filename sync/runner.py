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

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import pandas as pd
from icp_engine import connectors
from icp_engine.connectors.base import CallEstimate, Connector, RecordUpdate, WritePlan
from icp_engine.connectors.canonical import RowIssue
from icp_engine.connectors.errors import ConnectError, SourceError
from icp_engine.connectors.mapping import CURRENT_PREFIX
from icp_engine.scoring.criteria import score_accounts
from icp_engine.scoring.features import build_features
from icp_engine.sync import numbers
from icp_engine.sync.config import Config
from icp_engine.sync.enrich import enrich
from icp_engine.sync.handover import confirmed, next_pending
from icp_engine.sync.logs import redact
from icp_engine.sync.nurture import nurture_tracks
from icp_engine.sync.plan import Plan, plan_changes
from icp_engine.sync.progress import Progress
from icp_engine.sync.pull import WorkingSet, persist, working_set
from icp_engine.sync.state.lock import DirectoryLock, LockedError
from icp_engine.sync.state.store import Failure, ScoreRecord, StateError, StateStore, Written
from icp_engine.sync.writer import BatchOutcome, WriteSummary, write_all
from icp_engine.sync.yamlfile import ConfigError
from tenacity import Retrying

log = logging.getLogger(__name__)
Kind = Literal["sync", "backfill"]
LIMIT_REACHED = "LIMIT_REACHED"
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
    enrichment: dict[str, Any] = field(default_factory=dict)
    """Coverage, staleness and conflicts of the enrichment join (empty without sources)."""

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
            **({"enrichment": self.enrichment} if self.enrichment else {}),
        }


def _redacted(text: str | None) -> str | None:
    """A CRM's message with any secret it echoed removed (it is printed and stored)."""
    return redact(text) if text else text


def fingerprint(model: Any) -> str:
    return hashlib.sha256(model.model_dump_json().encode()).hexdigest()[:16]


def score(config: Config, work: WorkingSet) -> pd.DataFrame:
    """Desired output values per account (indexed by account id)."""
    outputs = config.mapping.outputs
    features = build_features(enrich(config, work.accounts), work.opportunities)
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
    return scored.set_index("account_id")


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
                return _run(config, options, state, connector, run_id, started, progress)
            except StateError:
                raise  # the state cannot record it
            except BaseException as exc:
                message = redact(f"{type(exc).__name__}: {exc}")
                code = exit_code_for(exc)
                state.finish_run(run_id, "error", code, {}, connector.api_calls, message)
                raise


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


def _run(
    config: Config,
    options: RunOptions,
    state: StateStore,
    connector: Connector,
    run_id: int,
    started: datetime,
    progress: Progress,
) -> RunResult:
    crm = options.crm
    mapping_key, criteria_key = f"{crm}.mapping", f"{crm}.criteria"
    mapping_fp, criteria_fp = fingerprint(config.mapping), fingerprint(config.icp)
    full = (
        options.kind == "backfill"
        or state.get_meta(mapping_key) != mapping_fp
        or not state.watermarks(crm)
    )
    rescore_all = full or state.get_meta(criteria_key) != criteria_fp
    failing = {f.record_id for f in state.failures(crm)}
    progress.phase("pull")
    memo_key = f"{crm}.connector_memo"
    memo = json.loads(state.get_meta(memo_key) or "{}")
    work = working_set(
        connector, state, full, rescore_all, failing, progress.advance, options.allow_shrink, memo
    )
    state.set_meta(memo_key, json.dumps(work.memo))  # what the pull learned, even dry
    issues = [i for pulled in work.pulled.values() for i in pulled.report.issues]
    _log_issues(connector, issues)

    progress.phase("score", len(work.accounts))
    if options.scores_from is not None:
        desired = warehouse_scores(options.scores_from, options.scores_table, work.accounts)
    else:
        desired = score(config, work)
    progress.advance(len(desired))
    progress.phase("plan", len(desired))
    current = work.accounts.set_index("account_id")
    current = current[
        [c for c in current.columns if c.startswith(CURRENT_PREFIX) or c == "modified_at"]
    ]
    last = state.last_written(crm, list(desired.index))
    pending = state.pending(crm) if connector.hands_over else {}
    seen = confirmed(pending, current, config.mapping.outputs)
    confirmed_at = options.now()
    for key, change in seen.items():  # the CRM shows it: now it counts as written
        last[key] = Written(change.value, confirmed_at)
    plan = plan_changes(desired, current, last, config.mapping.outputs)
    progress.advance(len(desired))
    progress.phase("done")
    updates = plan.record_updates()
    write_plan = connector.begin_write(len(updates))
    estimate = CallEstimate.of(connector.api_calls, write_plan)
    counts = {
        "accounts_pulled": len(work.pulled["account"].frame),
        "opportunities_pulled": len(work.pulled["opportunity"].frame),
        "accounts_deleted": len(work.pulled["account"].deleted),
        "unreadable_rows": sum(1 for i in issues if i.column is None),
        "unreadable_values": sum(1 for i in issues if i.column is not None),
        "accounts_scored": len(desired),
        "records_to_write": len(updates),
        "fields_to_write": len(plan.changes),
        "fields_in_sync": plan.in_sync,
        "fields_skipped": len(plan.skips),
    }
    result = RunResult(
        run_id,
        crm,
        options.kind,
        options.dry_run,
        0,
        "dry-run",
        counts,
        connector.api_calls,
        connector.describe_target(),
        plan,
        estimate,
        issues=issues,
        names=dict(
            zip(
                work.accounts["account_id"],
                work.accounts.get("name", work.accounts["account_id"]),
                strict=True,
            )
        ),
        scored=desired.reset_index(),
        opportunities=work.opportunities,
        criteria=config.criteria_label,
    )
    if config.enrichment_report is not None:
        result.enrichment = config.enrichment_report.to_json()
    tell = log.debug if options.dry_run else log.info  # a dry run shows them in its preview
    for skip in plan.skips[:_SHOWN]:
        tell(
            "left %s.%s alone (%s): CRM has %r, engine wants %r",
            skip.record_id,
            skip.field,
            skip.reason.value,
            skip.current,
            skip.desired,
        )
    if len(plan.skips) > _SHOWN:
        tell(
            "... and %s more fields left alone (--dry-run --all lists them)",
            f"{len(plan.skips) - _SHOWN:,}",
        )
    if options.dry_run:
        state.finish_run(run_id, "dry-run", 0, counts, connector.api_calls)
        return result
    if connector.hands_over:
        return _hand_over(
            config, options, state, connector, work, result, pending, seen, started, progress
        )

    def track(ids: list[str]) -> list[ScoreRecord]:
        return _score_records(desired, ids, config.criteria_version, criteria_fp)

    summary = _write(connector, state, crm, run_id, updates, write_plan, options, progress, track)
    progress.phase("save")
    still_failing = {u.record_id for u, _ in summary.failed} | {
        u.record_id for u in summary.not_attempted
    }
    scored_fields = {o.field for k, o in config.mapping.outputs.items() if k in ("score", "tier")}
    kept = {s.record_id for s in plan.skips if s.field in scored_fields}  # a person's value
    in_sync = set(desired.index) - {u.record_id for u in updates} - still_failing - kept
    state.record_scores(crm, run_id, track(sorted(in_sync)), options.now())
    persist(state, crm, work, started)
    state.set_meta(mapping_key, mapping_fp)
    state.set_meta(criteria_key, criteria_fp)
    state.set_meta(f"{crm}.criteria_label", config.criteria_label)
    state.clear_failures(crm, (failing | set(desired.index)) - still_failing)
    if summary.deleted:
        state.forget_accounts(crm, summary.deleted)

    progress.phase("done")
    _close_run(state, connector, result, summary, len(still_failing))
    return result


def _close_run(
    state: StateStore,
    connector: Connector,
    result: RunResult,
    summary: WriteSummary,
    failed: int,
    **more_counts: int,
) -> None:
    """The run's outcome from what writing did, recorded in state (CRM and hand-over alike)."""
    result.counts.update(
        written=summary.written, failed=failed, retries=summary.retries, **more_counts
    )
    result.exit_code = 1 if failed else 0
    result.outcome = "partial" if failed else "ok"
    result.failures = summary.failed
    result.api_calls = connector.api_calls
    result.message = summary.stopped
    state.finish_run(
        result.run_id,
        result.outcome,
        result.exit_code,
        result.counts,
        connector.api_calls,
        _redacted(summary.stopped),
    )


def _hand_over(
    config: Config,
    options: RunOptions,
    state: StateStore,
    connector: Connector,
    work: WorkingSet,
    result: RunResult,
    pending: dict[tuple[str, str], Any],
    seen: dict[tuple[str, str], Any],
    started: datetime,
    progress: Progress,
) -> RunResult:
    """Queue this run's changes with every earlier pending one, publish them all, then
    commit the state in one transaction (see the module docstring for the order)."""
    crm, run_id = options.crm, result.run_id
    desired = result.scored.set_index("account_id")
    updates = result.plan.record_updates()
    handed: dict[tuple[str, str], Any] = {}
    outcomes: list[tuple[RecordUpdate, Any]] = []

    def on_batch(outcome: BatchOutcome) -> None:
        outcomes.extend(outcome)
        for update, answer in outcome:
            if answer.ok:
                handed.update({(update.record_id, f): v for f, v in update.values.items()})

    progress.phase("write", len(updates))
    summary = write_all(connector, updates, on_batch, options.retrying, progress.advance)
    failed = {u.record_id for u, r in outcomes if not r.ok and not r.deleted}
    failed |= {u.record_id for u in summary.not_attempted}
    decided = set(desired.index) - failed
    gone = set(work.pulled["account"].deleted) | set(summary.deleted)
    now = options.now()
    queue = next_pending(pending, seen, decided, handed, gone, run_id, now)
    connector.hand_over(queue.updates(), run_id)  # the file first: the state then says so

    succeeded = sorted({u.record_id for u, r in outcomes if r.ok})
    scored_fields = {o.field for k, o in config.mapping.outputs.items() if k in ("score", "tier")}
    kept = {s.record_id for s in result.plan.skips if s.field in scored_fields}
    in_sync = set(desired.index) - {u.record_id for u in updates} - failed - kept
    failures = [
        Failure(u.record_id, r.code, r.message, r.transient, dict(u.values))
        for u, r in outcomes
        if not r.ok and not r.deleted
    ] + [
        Failure(u.record_id, LIMIT_REACHED, summary.stopped, True, dict(u.values))
        for u in summary.not_attempted
    ]
    track = [*succeeded, *sorted(in_sync)]
    failing = {f.record_id for f in state.failures(crm)}
    progress.phase("save")
    with state.atomic():
        state.record_written(crm, run_id, [(r, f, p.value) for (r, f), p in seen.items()], now)
        state.drop_pending(crm, queue.drop)
        state.put_pending(crm, [(r, f, p) for (r, f), p in queue.put.items()])
        state.record_failures(crm, run_id, failures, now)
        state.record_scores(
            crm,
            run_id,
            _score_records(desired, track, config.criteria_version, fingerprint(config.icp)),
            now,
        )
        persist(state, crm, work, started)
        state.set_meta(f"{crm}.mapping", fingerprint(config.mapping))
        state.set_meta(f"{crm}.criteria", fingerprint(config.icp))
        state.set_meta(f"{crm}.criteria_label", config.criteria_label)
        state.clear_failures(crm, (failing | set(desired.index)) - failed)
        if summary.deleted:
            state.forget_accounts(crm, summary.deleted)
        records = {record for record, _ in queue.pending}
        _close_run(
            state,
            connector,
            result,
            summary,
            len(failed),
            confirmed=len({record for record, _ in seen}),
            pending=len(records),
        )
    progress.phase("done")
    return result


def _write(
    connector: Connector,
    state: StateStore,
    crm: str,
    run_id: int,
    updates: list[RecordUpdate],
    write_plan: WritePlan,
    options: RunOptions,
    progress: Progress,
    track: Callable[[list[str]], list[ScoreRecord]],
) -> WriteSummary:
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
            crm, run_id, written, failed, succeeded, options.now(), scores=track(succeeded)
        )

    progress.phase("write", len(updates))
    summary = write_all(
        connector, updates, on_batch, options.retrying, progress.advance, write_plan
    )
    if summary.not_attempted:
        failures = [
            Failure(u.record_id, LIMIT_REACHED, _redacted(summary.stopped), True, dict(u.values))
            for u in summary.not_attempted
        ]
        state.record_failures(crm, run_id, failures, options.now())
    connector.end_write()
    progress.phase("done")
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
    known = desired.index.intersection(pd.Index(ids, dtype=object))
    rows = desired.loc[known, ["score", "tier"]]
    return [
        ScoreRecord(
            str(account), None if pd.isna(value) else float(value), tier, version, criteria_fp
        )
        for account, value, tier in zip(rows.index, rows["score"], rows["tier"], strict=True)
    ]


def _log_issues(connector: Connector, issues: list[RowIssue]) -> None:
    for issue in issues[:_SHOWN]:
        source = getattr(connector.mapping.objects, issue.object).object
        log.warning("%s", issue.describe(source))
    if len(issues) > _SHOWN:
        more = f"{len(issues) - _SHOWN:,}"
        log.warning("... and %s more rows or values that could not be read", more)
