"""Run history people can follow: the trend of recent runs and the detail of one run.

`icp status` shows the trend (per day: runs, written, failed, API calls, duration);
`icp runs show N` the detail of run N: its counts, the records that failed with the
CRM's errors (grouped), the criteria it scored with and the accounts that changed tier.
`icp report` draws its "sync health" section from `health()`.

The run rows come from `sync.state`; what a run row does not hold (failures as they were
then, tier changes, the criteria) is kept per run in `run_details` (`sync.opsdb`).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from icp_engine.sync.logs import redact
from icp_engine.sync.state.opsdb import OpsDB
from icp_engine.sync.state.records import RunRecord
from icp_engine.sync.state.store import StateStore

TIER_CHANGES_KEPT = 200
"""Tier changes stored per run (the count is always exact)."""
FAILURES_KEPT = 200


@dataclass(frozen=True)
class Day:
    """The runs of one UTC day."""

    day: str
    runs: int
    ok: int
    failed_runs: int
    written: int
    failed: int
    api_calls: int
    duration_s: float

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def run_detail(result: Any, tier_field: str | None) -> dict[str, Any]:
    """What `icp runs show` needs of a finished `RunResult` beyond its run row."""
    errors: dict[tuple[str, str], list[str]] = defaultdict(list)
    for update, answer in result.failures:
        errors[(answer.code or "error", answer.message or "")].append(update.record_id)
    frame = result.plan.change_frame  # columns: a backfill changes a million fields
    tiers = frame[frame["field"] == tier_field] if tier_field is not None else frame[:0]
    kept = tiers.head(TIER_CHANGES_KEPT)
    changes = [
        {"account_id": record_id, "name": result.names.get(record_id, ""), "from": was, "to": to}
        for record_id, was, to in zip(
            kept["record_id"].tolist(),
            kept["current"].tolist(),
            kept["desired"].tolist(),
            strict=True,
        )
    ]
    return {
        "criteria": result.criteria,
        "failures": [
            {"code": code, "message": message, "count": len(ids), "records": ids[:FAILURES_KEPT]}
            for (code, message), ids in sorted(errors.items(), key=lambda kv: -len(kv[1]))
        ],
        "tier_changes": changes,
        "tier_changes_count": (
            len(tiers) if getattr(result, "tier_changes", None) is None else result.tier_changes
        ),
        "message": result.message,
    }


def record(state_dir: Path, result: Any, tier_field: str | None) -> None:
    """Keep the detail of a finished run (secrets an error quoted taken out)."""
    with OpsDB(state_dir) as db:
        db.put_detail(result.run_id, result.crm, _redacted(run_detail(result, tier_field)))


def _redacted(value: Any) -> Any:
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {k: _redacted(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_redacted(v) for v in value]
    return value


def record_error(state_dir: Path, run_id: int, crm: str, criteria: str, message: str) -> None:
    """Keep the detail of a run that ended with an error."""
    with OpsDB(state_dir) as db:
        db.put_detail(
            run_id,
            crm,
            {"criteria": criteria, "failures": [], "tier_changes": [], "message": redact(message)},
        )


def _duration(run: RunRecord) -> float:
    if run.finished_at is None:
        return 0.0
    return max(0.0, (run.finished_at - run.started_at).total_seconds())


def trend(runs: Sequence[RunRecord], days: int, now: datetime | None = None) -> list[Day]:
    """Per UTC day of the last `days` days (newest first): runs and what they did."""
    now = now or datetime.now(UTC)
    first = (now - timedelta(days=days - 1)).date()
    buckets: dict[str, list[RunRecord]] = defaultdict(list)
    for run in runs:
        if run.dry_run or run.started_at.date() < first:
            continue
        buckets[run.started_at.date().isoformat()].append(run)
    result = []
    for day in sorted(buckets, reverse=True):
        group = buckets[day]
        result.append(
            Day(
                day,
                len(group),
                sum(1 for r in group if r.outcome == "ok"),
                sum(1 for r in group if r.exit_code not in (0, None)),
                sum(int(r.counts.get("written", 0)) for r in group),
                sum(int(r.counts.get("failed", 0)) for r in group),
                # a csv run makes no API calls (the runs table shows "-" for it)
                sum(r.api_calls for r in group if r.crm != "csv"),
                round(sum(_duration(r) for r in group), 1),
            )
        )
    return result


def show(state_dir: Path, run_id: int) -> dict[str, Any] | None:
    """Everything known of run `run_id`, or None if there is no such run."""
    with StateStore(state_dir) as state:
        runs = [r for r in state.runs(None, 1_000_000) if r.id == run_id]
    if not runs:
        return None
    run = runs[0]
    with OpsDB(state_dir) as db:
        detail = db.detail(run_id) or {}
    return {
        "run_id": run.id,
        "crm": run.crm,
        "kind": run.kind,
        "dry_run": run.dry_run,
        "started_at": run.started_at.isoformat(),
        "finished_at": run.finished_at.isoformat() if run.finished_at else None,
        "duration_s": round(_duration(run), 1),
        "outcome": run.outcome or "did not finish",
        "exit_code": run.exit_code,
        "counts": run.counts,
        "api_calls": run.api_calls,
        "message": run.message,
        "criteria": detail.get("criteria"),
        "failures": detail.get("failures", []),
        "tier_changes": detail.get("tier_changes", []),
        "tier_changes_count": detail.get("tier_changes_count", len(detail.get("tier_changes", []))),
        "detail_recorded": bool(detail),
    }


def health(state_dir: Path, crm: str, days: int = 14) -> dict[str, Any] | None:
    """The "sync health" figures of the report: trend, last run, records still failing."""
    if not StateStore.exists(state_dir):
        return None
    with StateStore(state_dir) as state:
        runs = state.runs(crm, 10_000)
        failing = state.failures(crm)
    if not runs:
        return None
    real = [r for r in runs if not r.dry_run]
    last_ok = next((r for r in real if r.outcome == "ok"), None)
    return {
        "days": [d.as_dict() for d in trend(runs, days)],
        "last_run": {
            "id": runs[0].id,
            "started_at": runs[0].started_at.isoformat(),
            "outcome": runs[0].outcome or "did not finish",
        },
        "last_success": last_ok.finished_at.isoformat()
        if last_ok and last_ok.finished_at
        else None,
        "records_failing": len(failing),
        "failing_3_runs": sum(1 for f in failing if f.attempts >= 3),
    }
