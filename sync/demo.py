"""`icp demo`: the whole loop on a generated sample CRM, offline, in seconds."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pandas as pd

from connectors.sample import SampleInfo, write_sample_crm
from scoring.report import tier_summary
from sync import render
from sync.cli_options import emit
from sync.config import load_config
from sync.progress import current, stage
from sync.runner import RunOptions, RunResult, execute


def run_demo(directory: Path, accounts: int, as_json: bool) -> None:
    """Generate the sample export, backfill it into a fresh state, print the tier table."""
    source = directory / "export"
    state_dir = directory / ".icp"
    if state_dir.exists():
        shutil.rmtree(state_dir)  # the demo always starts from scratch
    with stage(f"Generating a sample CRM of {accounts:,} accounts"):
        info = write_sample_crm(source, accounts=accounts)
    config = load_config("csv", None)
    result = execute(
        config,
        RunOptions(crm="csv", kind="backfill", state_dir=state_dir, source=source),
        current(),
    )
    order = [name for name, _ in config.icp.tier_order()]
    summary = tier_summary(result.scored, result.opportunities, order)
    payload = result.summary()
    payload["tiers"] = json.loads(summary.to_json(orient="records"))
    emit(payload, as_json, "demo: " + render.headline(result), lambda: _show(result, summary, info))


def _show(result: RunResult, summary: pd.DataFrame, info: SampleInfo) -> None:
    source, state_dir = info.directory, info.directory.parent / ".icp"
    console = render.console()
    console.print(
        f"Sample CRM: {info.accounts:,} accounts, {info.opportunities:,} opportunities "
        f"in {source} (Salesforce Data Export layout)."
    )
    console.print(render.tier_table(summary))
    render.run_summary(console, result)
    console.print(
        f"Next: edit {source / 'Account.csv'} and run\n"
        f"  icp sync --crm csv --source {source} --state {state_dir} --dry-run\n"
        f"Learn the ICP from its won and lost deals, then read the report:\n"
        f"  icp train --crm csv --source {source} --state {state_dir}\n"
        f"  icp report --crm csv --source {source} --state {state_dir}"
    )
