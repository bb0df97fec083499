"""What people read on stdout: run summaries, the dry-run diff, status, the tier table."""

from __future__ import annotations

import functools
import math
import sys
from datetime import UTC, datetime
from typing import Any

import pandas as pd
from icp_engine.sync import numbers
from icp_engine.sync.cli.preview import Page, figures_table, why
from icp_engine.sync.plan import Plan
from icp_engine.sync.runner import RunResult
from icp_engine.sync.state.records import FailureRecord, RunRecord
from rich.console import Console, RenderableType
from rich.table import Table
from rich.text import Text

DIFF_ROWS = 50
"""Rows of the dry-run detail a page (`--limit`)."""
PIPE_WIDTH = 160
RIGHT = {"#", "took", "exit", "written", "failed", "API calls"}


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


def plan_table(plan: Plan, names: dict[str, str], page: Page | None = None) -> Table:
    """The per-record detail of a dry run (a page of it): what it writes and leaves alone."""
    table = Table(
        title="Detail, per account: every field it would write or leave alone", title_justify="left"
    )
    for column in ("account", "name", "field", "now in CRM", "would write", "why"):
        table.add_column(column, overflow="fold", no_wrap=column in ("account", "field"))
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
            f"left alone: {why(s)}",
        )
        for s in plan.skips
    ]
    order = {f: i for i, f in enumerate(dict.fromkeys(row[2] for row in rows))}
    rows.sort(key=lambda row: (row[0], order[row[2]]))  # per record, fields in output order
    page = page or Page(1, None, len(rows))
    for row in rows[page.first : page.last]:
        table.add_row(*(str(v) for v in row))
    table.caption = page.caption()
    return table


def run_summary(console: Console, result: RunResult) -> None:
    """What a run did (or, dry, would do), in one style of numbers."""
    say = functools.partial(console.print, highlight=False)
    counts = result.counts
    written = counts.get("records_to_write", 0) if result.dry_run else counts.get("written", 0)
    handed_over = "pending" in counts and not result.dry_run
    verb = "would write" if result.dry_run else "handed over" if handed_over else "wrote"
    scored, skipped = counts["accounts_scored"], counts["fields_skipped"]
    if scored == 0:
        say(
            f"{result.kind} #{result.run_id} ({result.crm}): nothing changed in the CRM since the "
            "last run; no account to score, nothing new to write."
        )
    elif written == 0 and not counts.get("failed"):
        say(
            f"{result.kind} #{result.run_id} ({result.crm}): scored "
            f"{numbers.count(scored, 'account')}; nothing new to write: "
            f"{numbers.count(counts['fields_in_sync'], 'field')} already in sync"
            + (f", {numbers.count(skipped)} left alone." if skipped else ".")
        )
    else:
        say(
            f"{result.kind} #{result.run_id} ({result.crm}): scored "
            f"{numbers.count(scored, 'account')}; {verb} {numbers.count(written, 'record')} "
            f"({numbers.count(counts['fields_to_write'], 'field')}), "
            f"{numbers.count(counts['fields_in_sync'], 'field')} already in sync, "
            f"{numbers.count(counts['fields_skipped'])} left alone."
        )
    if handed_over:
        say(
            f"Update file: {result.target} holds every change not yet seen in the CRM: "
            f"{numbers.count(counts['pending'], 'record')} "
            f"({numbers.count(counts['written'])} decided by this run, "
            f"{numbers.count(counts['confirmed'])} earlier ones now seen in the export). "
            "Load it with Data Loader's Update."
        )
    if not result.dry_run:
        if result.crm == "csv":
            say(f"Output: {result.target} (no API calls: a file for Data Loader).")
        else:
            say(f"API calls used: {numbers.count(result.api_calls)}. Output: {result.target}")
    if counts.get("unreadable_rows") or counts.get("unreadable_values"):
        say(
            f"Skipped {numbers.count(counts['unreadable_rows'], 'unreadable row')} and read "
            f"{numbers.count(counts['unreadable_values'], 'unreadable value')} as empty "
            "(see the log)."
        )
    if counts.get("failed"):
        console.print(
            f"[bold red]{numbers.count(counts['failed'], 'record')} could not be written[/]; "
            "they are kept and retried on the next run (`icp status` lists them)."
        )
    if result.message:  # why writing stopped early (an API limit, a long Retry-After)
        console.print(f"Stopped writing: {result.message}", highlight=False)


def _figure(value: Any, layout: str) -> str:
    return numbers.NO_DATA if numbers.is_missing(value) else layout.format(value)


def tier_table(summary: pd.DataFrame) -> Table:
    table = figures_table(
        "Accounts by ICP tier",
        (
            "tier",
            "accounts",
            "share",
            "closed deals",
            "win rate",
            "avg deal size",
            "median cycle",
        ),
    )
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
    watermarks: dict[tuple[str, str], datetime],
    failures: list[FailureRecord],
    limit: int = 50,
) -> list[RenderableType]:
    run_table = Table(title="Recent runs (times in UTC)", title_justify="left")
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
        run_table.add_column(
            column, justify="right" if column in RIGHT else "left", no_wrap=column == "started"
        )
    for run in runs:
        took = (
            numbers.duration((run.finished_at - run.started_at).total_seconds())
            if run.finished_at
            else "-"
        )
        outcome = run.outcome or "did not finish"
        written, failed = run.counts.get("written"), run.counts.get("failed")
        run_table.add_row(
            str(run.id),
            run.crm,
            run.kind + (" (dry run)" if run.dry_run else ""),
            f"{run.started_at.astimezone(UTC):%Y-%m-%d %H:%M}",
            took,
            outcome,
            "-" if run.exit_code is None else str(run.exit_code),
            "-" if written is None else numbers.count(written),
            "-" if failed is None else numbers.count(failed),
            "-" if run.crm == "csv" else numbers.count(run.api_calls),
        )
    mark_table = Table(title="Watermarks", title_justify="left")
    for column in ("crm", "object", "changes pulled up to"):
        mark_table.add_column(column)
    for (crm, obj), at in sorted(watermarks.items()):
        mark_table.add_row(crm, obj, f"{at.astimezone(UTC):%Y-%m-%d %H:%M:%S} UTC")
    fail_table = Table(
        title=f"Records still failing ({numbers.count(len(failures))})", title_justify="left"
    )
    for column in ("record", "code", "message", "attempts", "since"):
        fail_table.add_column(column, overflow="fold")
    for failure in failures[:limit]:
        fail_table.add_row(
            failure.record_id,
            failure.code or "",
            failure.message or "",
            numbers.count(failure.attempts),
            failure.first_failed_at.strftime("%Y-%m-%d %H:%M"),
        )
    if len(failures) > limit:
        fail_table.caption = (
            f"... and {numbers.count(len(failures) - limit)} more (--json lists all)"
        )
    if not failures:
        return [run_table, mark_table, Text("Records still failing: none.")]
    return [run_table, mark_table, fail_table]


def headline(result: RunResult) -> str:
    """The run in one line (the message of the JSON summary line)."""
    counts = result.counts
    if result.dry_run:
        done = f"would write {numbers.count(counts.get('records_to_write', 0), 'record')}"
    else:
        done = f"wrote {numbers.count(counts.get('written', 0), 'record')}"
        if counts.get("failed"):
            done += f", {numbers.count(counts['failed'])} failed (kept for the next run)"
    return (
        f"{result.kind} #{result.run_id} ({result.crm}) {result.outcome}: scored "
        f"{numbers.count(counts.get('accounts_scored', 0), 'account')}, {done}"
    )


def pending_table(pending: list[dict[str, Any]]) -> Table:
    """Changes handed over (update files) that the CRM does not show yet, by run."""
    records = sum(p["records"] for p in pending)
    table = Table(
        title=f"Handed over, not yet seen in the CRM ({records:,} records)", title_justify="left"
    )
    for column in ("crm", "decided by run", "records", "fields", "pending since"):
        table.add_column(column)
    for row in pending:
        table.add_row(
            row["crm"],
            f"#{row['run_id']}",
            f"{row['records']:,}",
            f"{row['fields']:,}",
            row["since"].strftime("%Y-%m-%d %H:%M"),
        )
    if records:
        table.caption = "The latest update file holds all of them: load it."
    return table
