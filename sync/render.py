"""What people read on stdout: run summaries, the dry-run diff, status, the tier table."""

from __future__ import annotations

import math
import sys
from typing import Any

import pandas as pd
from rich.console import Console
from rich.table import Table

from sync.plan import Plan
from sync.runner import RunResult
from sync.state import FailureRecord, RunRecord, Watermark

DIFF_ROWS = 50
PIPE_WIDTH = 160


def console() -> Console:
    """stdout for results: the terminal's width, or wide lines when piped to a file."""
    return Console(width=None if sys.stdout.isatty() else PIPE_WIDTH)


def _value(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "(empty)"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    text = str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def plan_table(plan: Plan, names: dict[str, str], limit: int | None = DIFF_ROWS) -> Table:
    """The per-field diff a dry run would apply, and the fields it would leave alone."""
    table = Table(title="Would update", title_justify="left")
    for column in ("account", "name", "field", "now in CRM", "would write", "why"):
        table.add_column(column, overflow="fold", no_wrap=column in ("account", "field", "why"))
    rows = [
        (
            c.record_id,
            names.get(c.record_id, ""),
            c.field,
            _value(c.current),
            _value(c.desired),
            c.reason.value,
        )
        for c in plan.changes
    ] + [
        (
            s.record_id,
            names.get(s.record_id, ""),
            s.field,
            _value(s.current),
            _value(s.desired),
            f"left alone: {s.reason.value}",
        )
        for s in plan.skips
    ]
    for row in rows[:limit] if limit else rows:
        table.add_row(*(str(v) for v in row))
    if limit and len(rows) > limit:
        table.caption = f"... and {len(rows) - limit} more (use --all to list every field)"
    return table


def run_summary(console: Console, result: RunResult) -> None:
    counts = result.counts
    verb = "Would write" if result.dry_run else "Wrote"
    written = counts.get("records_to_write", 0) if result.dry_run else counts.get("written", 0)
    console.print(
        f"{result.kind} #{result.run_id} ({result.crm}): scored {counts['accounts_scored']} "
        f"accounts; {verb.lower()} {written} records "
        f"({counts['fields_to_write']} fields), {counts['fields_in_sync']} fields already in "
        f"sync, {counts['fields_skipped']} left alone."
    )
    estimate = result.estimate
    if result.dry_run:
        console.print(
            f"Estimated API calls: {estimate.total} ({estimate.pull_calls} to pull, "
            f"{estimate.write_calls} to write, via {estimate.method}). {estimate.note}".rstrip()
        )
    else:
        console.print(f"API calls used: {result.api_calls}. Output: {result.target}")
    if counts.get("unreadable_rows") or counts.get("unreadable_values"):
        console.print(
            f"Skipped {counts['unreadable_rows']} unreadable rows and read "
            f"{counts['unreadable_values']} unreadable values as empty (see the log)."
        )
    if counts.get("failed"):
        console.print(
            f"[bold red]{counts['failed']} records could not be written[/]; they are kept "
            "and retried on the next run (`icp status` lists them)."
        )
    if result.message:  # why writing stopped early (an API limit, a long Retry-After)
        console.print(f"Stopped writing: {result.message}", highlight=False)


def _figure(value: Any, layout: str) -> str:
    return (
        "-"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else (layout.format(value))
    )


def tier_table(summary: pd.DataFrame) -> Table:
    table = Table(title="Accounts by ICP tier", title_justify="left")
    for column in (
        "tier",
        "accounts",
        "share",
        "closed deals",
        "win rate",
        "avg deal size",
        "median cycle",
    ):
        table.add_column(column, justify="right" if column != "tier" else "left")
    for row in summary.to_dict("records"):
        table.add_row(
            str(row["tier"]),
            f"{row['accounts']:,}",
            f"{row['share']:.0%}",
            f"{row['closed_deals']:,}",
            _figure(row["win_rate"], "{:.0%}"),
            _figure(row["avg_deal_size"], "${:,.0f}"),
            _figure(row["median_cycle_days"], "{:.0f} days"),
        )
    return table


def status_tables(
    runs: list[RunRecord],
    watermarks: dict[tuple[str, str], Watermark],
    failures: list[FailureRecord],
    limit: int = 50,
) -> list[Table]:
    run_table = Table(title="Recent runs", title_justify="left")
    for column in (
        "#",
        "crm",
        "kind",
        "started",
        "took",
        "outcome",
        "exit",
        "written",
        "failed",
        "API calls",
    ):
        run_table.add_column(column)
    for run in runs:
        took = (
            f"{(run.finished_at - run.started_at).total_seconds():.1f}s" if run.finished_at else "-"
        )
        outcome = run.outcome or "did not finish"
        run_table.add_row(
            str(run.id),
            run.crm,
            run.kind + (" (dry run)" if run.dry_run else ""),
            run.started_at.strftime("%Y-%m-%d %H:%M:%S"),
            took,
            outcome,
            "-" if run.exit_code is None else str(run.exit_code),
            str(run.counts.get("written", "-")),
            str(run.counts.get("failed", "-")),
            str(run.api_calls),
        )
    mark_table = Table(title="Watermarks", title_justify="left")
    for column in ("crm", "object", "changes pulled up to"):
        mark_table.add_column(column)
    for (crm, obj), mark in sorted(watermarks.items()):
        mark_table.add_row(crm, obj, mark.value.isoformat())
    fail_table = Table(title=f"Records still failing ({len(failures)})", title_justify="left")
    for column in ("record", "code", "message", "attempts", "since"):
        fail_table.add_column(column, overflow="fold")
    for failure in failures[:limit]:
        fail_table.add_row(
            failure.record_id,
            failure.code or "",
            failure.message or "",
            str(failure.attempts),
            failure.first_failed_at.strftime("%Y-%m-%d %H:%M"),
        )
    if len(failures) > limit:
        fail_table.caption = f"... and {len(failures) - limit} more (--json lists all)"
    return [run_table, mark_table, fail_table]
