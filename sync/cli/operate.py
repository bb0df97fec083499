"""`icp runs show N`, `icp audiences export`, and the trend and alerts `icp status` adds.

Results go to stdout (tables, or one JSON object with --json); errors are one line on
stderr with the documented exit code (2: no such run, no state, nothing synced yet).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
from icp_engine.sync import history
from icp_engine.sync.alerts import pending
from icp_engine.sync.cli import render
from icp_engine.sync.cli.options import common, fail, guarded, read_options, state_option
from icp_engine.sync.config import mappings_dir
from icp_engine.sync.state.records import RunRecord
from icp_engine.sync.state.store import StateStore, state_location
from rich.console import Console
from rich.table import Table

TREND_DAYS = 14


@click.group("runs")
def runs_group() -> None:
    """The history of runs: what one run did, in detail."""


@runs_group.command(
    "show",
    epilog="\b\nExamples:\n  icp runs show 12\n  icp runs show 12 --json | jq .failures",
)
@click.argument("run_id", type=int)
@state_option
@common
@guarded
def runs_show(run_id: int, state_dir: Path, as_json: bool) -> None:
    """One run: counts, failures with the CRM's errors, criteria, accounts that changed tier."""
    if not StateStore.exists(state_dir):
        where = state_location(state_dir)
        fail(2, f"no state in {where}: nothing has run there yet (see --state, ICP_STATE_URL)")
    detail = history.show(state_dir, run_id)
    if detail is None:
        fail(2, f"no run {run_id} in {state_dir} (icp status lists the recent runs)")
        return
    if as_json:
        click.echo(json.dumps(detail, default=str))
        return
    print_run(render.console(), detail)


def print_run(console: Console, d: dict[str, Any]) -> None:
    kind = d["kind"] + (" (dry run)" if d["dry_run"] else "")
    started = d["started_at"][:16].replace("T", " ")
    console.print(
        f"Run {d['run_id']}: {d['crm']} {kind}, started {started} UTC, "
        f"took {d['duration_s']}s: {d['outcome']} (exit {d['exit_code']})",
        highlight=False,
    )
    console.print(f"Criteria: {d['criteria'] or 'not recorded'}", highlight=False)
    if d["message"]:
        console.print(f"Message: {d['message']}", highlight=False)
    counts = Table(title="Counts", title_justify="left")
    counts.add_column("what")
    counts.add_column("how many", justify="right")
    for key, value in d["counts"].items():
        shown = f"{value:,}" if isinstance(value, int) else str(value)
        counts.add_row(key.replace("_", " "), shown)
    # a csv run makes no API calls: "-" as in `icp status`
    counts.add_row("API calls", "-" if d["crm"] == "csv" else f"{d['api_calls']:,}")
    console.print(counts)
    failures = Table(title="Failures, by the CRM's error", title_justify="left")
    for column in ("records", "code", "message", "for example"):
        failures.add_column(column, overflow="fold")
    for group in d["failures"]:
        failures.add_row(
            str(group["count"]), group["code"], group["message"], ", ".join(group["records"][:3])
        )
    if d["failures"]:
        console.print(failures)
    else:  # a sentence, not an empty table
        console.print("Failures: none.", highlight=False)
    tiers = Table(
        title=f"Accounts that changed tier ({d['tier_changes_count']})", title_justify="left"
    )
    for column in ("account", "name", "from", "to"):
        tiers.add_column(column)
    for change in d["tier_changes"][:50]:
        tiers.add_row(
            change["account_id"], change["name"], str(change["from"] or "-"), str(change["to"])
        )
    if d["tier_changes_count"] > 50:
        tiers.caption = f"... and {d['tier_changes_count'] - 50} more (--json lists them)"
    if d["tier_changes"]:
        console.print(tiers)
    else:  # a sentence, not an empty table
        console.print("Accounts that changed tier: none.", highlight=False)
    if not d["detail_recorded"]:
        console.print(
            "(no detail was recorded for this run: it did not run through icp sync or icp backfill)"
        )


def status_extra(state_dir: Path, runs: list[RunRecord]) -> dict[str, Any]:
    """The trend and the alert conditions `icp status` adds."""
    return {
        "trend": [day.as_dict() for day in history.trend(runs, TREND_DAYS)],
        "alerts": [vars(c) for c in pending(state_dir)],
    }


def print_status_extra(console: Console, extra: dict[str, Any]) -> None:
    table = Table(title=f"Trend (last {TREND_DAYS} days, UTC)", title_justify="left")
    for column in ("day", "runs", "ok", "failed runs", "written", "failed", "API calls", "took"):
        table.add_column(column, justify="left" if column == "day" else "right")
    for day in extra["trend"]:
        table.add_row(
            day["day"],
            f"{day['runs']:,}",
            f"{day['ok']:,}",
            f"{day['failed_runs']:,}",
            f"{day['written']:,}",
            f"{day['failed']:,}",
            f"{day['api_calls']:,}",
            f"{day['duration_s']:.0f}s",
        )
    console.print(table)
    for condition in extra["alerts"]:
        state = "sent" if condition["delivered"] else f"NOT SENT: {condition['last_error']}"
        console.print(
            f"Alert active since {condition['since'][:16]}: {condition['title']} ({state})",
            highlight=False,
        )


@click.group("audiences")
def audiences_group() -> None:
    """Account lists for ad platforms (LinkedIn Matched Audiences, generic CSV)."""


@audiences_group.command(
    "export",
    epilog="\b\nExamples:\n"
    "  icp audiences export --crm csv --source ./export --out ./audiences\n"
    "  icp audiences export --crm salesforce --by segment --json",
)
@read_options
@click.option(
    "--out", type=click.Path(path_type=Path), help="Directory [operate.yaml, else ./audiences]."
)
@click.option(
    "--by",
    type=click.Choice(["tier", "segment", "nurture_track"]),
    help="Split accounts by [operate.yaml, else tier].",
)
@common
@guarded
def audiences_export(
    crm: str,
    mappings_option: Path | None,
    state_dir: Path,
    source: Path | None,
    out: Path | None,
    by: str | None,
    as_json: bool,
) -> None:
    """Write account lists per tier or segment, with what changed since the last export.

    Reads the accounts the last sync saw (no API call) and scores them with the criteria
    in use.
    """
    from icp_engine.connectors.canonical import restore_types
    from icp_engine.sync.audiences import export
    from icp_engine.sync.config import load_config
    from icp_engine.sync.pull import WorkingSet
    from icp_engine.sync.runner import score

    config = load_config(crm, mappings_dir(mappings_option), state_dir)
    settings = config.operate.audiences
    if not StateStore.exists(state_dir):
        fail(2, f"no state in {state_location(state_dir)}: run icp sync --crm {crm} first")
    with StateStore(state_dir) as state:
        accounts = state.load_records(crm, "account")
        opportunities = state.load_records(crm, "opportunity")
    if not len(accounts):
        fail(2, f"no {crm} accounts in {state_dir}: run icp sync --crm {crm} first")
    accounts = restore_types(accounts, config.mapping, "account")
    opportunities = restore_types(opportunities, config.mapping, "opportunity")
    scored = score(config, WorkingSet(accounts, opportunities, {}, True)).reset_index()
    chosen = by or settings.by
    if chosen == "nurture_track" and not config.operate.nurture:
        fail(2, "--by nurture_track needs nurture: rules in operate.yaml")
    result = export(
        scored,
        accounts,
        chosen,
        list(settings.include),
        list(settings.formats),
        out or Path(settings.out),
        state_dir,
        crm,
    )
    if as_json:
        click.echo(
            json.dumps(
                {
                    "by": chosen,
                    "criteria": config.criteria_label,
                    "first_export": result.first,
                    "files": [
                        {
                            "audience": f.audience,
                            "format": f.format,
                            "path": str(f.path),
                            "rows": f.rows,
                            "added": f.added,
                            "removed": f.removed,
                            "added_path": str(f.added_path),
                            "removed_path": str(f.removed_path),
                            "skipped": f.skipped,
                        }
                        for f in result.files
                    ],
                }
            )
        )
        return
    console = render.console()
    table = Table(title=f"Audiences by {chosen} ({config.criteria_label})", title_justify="left")
    for column in ("audience", "format", "accounts", "added", "removed", "file"):
        table.add_column(
            column, justify="right" if column in ("accounts", "added", "removed") else "left"
        )
    for f in result.files:
        table.add_row(f.audience, f.format, str(f.rows), str(f.added), str(f.removed), str(f.path))
    console.print(table)
    skipped = max((f.skipped for f in result.files), default=0)
    if skipped:
        console.print(f"{skipped} accounts had neither a name nor a domain and were left out.")
    if not result.first:
        console.print("Upload the .added.csv and .removed.csv files to update the lists.")
