"""Joining the enrichment sources onto a run's accounts, and saying how the join went.

`connectors.enrichment` reads and joins; this module applies it to a run (sync, backfill,
train, report) and logs coverage, staleness and conflicts; `enrich_with_report` also
returns the report, for the run summary (`--json`) and the demo.
"""

from __future__ import annotations

import logging

import pandas as pd
from icp_engine.connectors.enrichment import JoinReport, join
from icp_engine.sync.config import Config

log = logging.getLogger(__name__)


def enrich(config: Config, accounts: pd.DataFrame) -> pd.DataFrame:
    """The accounts with the enrichment fields joined (unchanged without sources)."""
    return enrich_with_report(config, accounts)[0]


def enrich_with_report(
    config: Config, accounts: pd.DataFrame
) -> tuple[pd.DataFrame, JoinReport | None]:
    """The joined accounts and how the join went (None without sources)."""
    if not config.enrichment.sources:
        return accounts, None
    joined, report = join(accounts, config.enrichment, config.enrichment_dir)
    if len(accounts):  # a run with no account to score has no coverage to tell
        for line in report.lines():
            log.info("enrichment: %s", line)
    return joined, report
