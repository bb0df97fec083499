"""Joining the enrichment sources onto a run's accounts, and saying how the join went.

`connectors.enrichment` reads and joins; this module applies it to a run (sync, backfill,
train, report) and logs coverage, staleness and conflicts, keeping the last report on the
config so the run summary (`--json`) and the demo can show it.
"""

from __future__ import annotations

import logging

import pandas as pd
from icp_engine.connectors.enrichment import join
from icp_engine.sync.config import Config

log = logging.getLogger(__name__)


def enrich(config: Config, accounts: pd.DataFrame) -> pd.DataFrame:
    """The accounts with the enrichment fields joined (unchanged without sources)."""
    if not config.enrichment.sources:
        return accounts
    joined, report = join(accounts, config.enrichment, config.enrichment_dir)
    config.enrichment_report = report
    for line in report.lines():
        log.info("enrichment: %s", line)
    return joined
