"""`icp demo`: the whole loop on a generated sample CRM, offline, in seconds."""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pandas as pd
from icp_engine import mappings
from icp_engine.connectors.sample import SampleInfo, write_sample_crm
from icp_engine.connectors.sample_enrichment import (
    DEMO_CRITERIA,
    ENRICHMENT_YAML,
    write_sample_enrichment,
)
from icp_engine.scoring.report.build import tier_summary
from icp_engine.sync.cli import render
from icp_engine.sync.cli.options import emit
from icp_engine.sync.config import Config, load_config
from icp_engine.sync.progress import current, stage
from icp_engine.sync.runner import RunOptions, RunResult, execute
from ruamel.yaml import YAML


def write_demo_mappings(directory: Path, source: Path) -> Path:
    """The demo's mappings: the bundled ones, plus vendor enrichment exports joined by
    domain (`enrichment.yaml`) and criteria that use them (a technographic and an
    intent criterion added to the bundled `icp.yaml`)."""
    directory.mkdir(parents=True, exist_ok=True)
    accounts = pd.read_csv(source / "Account.csv", dtype=str, keep_default_na=False)
    opportunities = pd.read_csv(source / "Opportunity.csv", dtype=str, keep_default_na=False)
    write_sample_enrichment(directory / "enrichment", accounts, opportunities)
    (directory / "enrichment.yaml").write_text(ENRICHMENT_YAML, encoding="utf-8")
    (directory / "csv.yaml").write_text(
        mappings.default("csv.yaml").read_text(encoding="utf-8"), encoding="utf-8"
    )
    yaml = YAML()
    icp = yaml.load(mappings.default("icp.yaml").read_text(encoding="utf-8"))
    icp["name"] = "Starting ICP with enrichment (demo)"
    icp["criteria"]["strong_signal"].extend(DEMO_CRITERIA)
    with (directory / "icp.yaml").open("w", encoding="utf-8") as handle:
        yaml.dump(icp, handle)
    return directory


def run_demo(directory: Path, accounts: int, as_json: bool) -> None:
    """Generate the sample export, backfill it into a fresh state, print the tier table."""
    source = directory / "export"
    state_dir = directory / ".icp"
    if state_dir.exists():
        shutil.rmtree(state_dir)  # the demo always starts from scratch
    with stage(f"Generating a sample CRM of {accounts:,} accounts"):
        info = write_sample_crm(source, accounts=accounts)
        mappings_dir = write_demo_mappings(directory / "mappings", source)
    config = load_config("csv", mappings_dir)
    # the demo prints the join's coverage itself, below: its log lines would say it twice
    enrich_log = logging.getLogger("icp_engine.sync.enrich")
    level = enrich_log.level
    enrich_log.setLevel(logging.WARNING)
    try:
        result = execute(
            config,
            RunOptions(crm="csv", kind="backfill", state_dir=state_dir, source=source),
            current(),
        )
    finally:
        enrich_log.setLevel(level)
    order = [name for name, _ in config.icp.tier_order()]
    summary = tier_summary(result.scored, result.opportunities, order)
    payload = result.summary()
    payload["tiers"] = json.loads(summary.to_json(orient="records"))
    emit(
        payload,
        as_json,
        "demo: " + render.headline(result),
        lambda: _show(result, summary, info, config, mappings_dir),
    )


def _show(
    result: RunResult,
    summary: pd.DataFrame,
    info: SampleInfo,
    config: Config,
    mappings_dir: Path,
) -> None:
    source, state_dir = info.directory, info.directory.parent / ".icp"
    console = render.console()
    console.print(
        f"Sample CRM: {info.accounts:,} accounts, {info.opportunities:,} opportunities "
        f"in {source} (Salesforce Data Export layout)."
    )
    if result.enrichment is not None:
        console.print(
            f"Enrichment joined (vendor-layout exports in {mappings_dir / 'enrichment'}):"
        )
        for line in result.enrichment.lines():
            console.print(f"  {line}", highlight=False)
    console.print(render.tier_table(summary))
    render.run_summary(console, result)
    console.print(
        f"Next: edit {source / 'Account.csv'} and run\n"
        f"  icp sync --crm csv --source {source} --state {state_dir} "
        f"--mappings {mappings_dir} --dry-run\n"
        f"Learn the ICP from its won and lost deals, then read the report:\n"
        f"  icp train --crm csv --source {source} --state {state_dir} --mappings {mappings_dir}\n"
        f"  icp report --crm csv --source {source} --state {state_dir} --mappings {mappings_dir}\n"
        f"Score in a database instead: icp score --sql duckdb --mappings {mappings_dir}"
    )
