"""Airflow: the ICP loop on a schedule, calling the `icp` CLI (exit codes + `--json`).

Put this file and `icp_cli.py` in your DAGs folder, install `icp-engine` in the workers'
environment, and give the workers the CRM credentials (SF_* or HUBSPOT_ACCESS_TOKEN) and,
with no persistent volume, `ICP_STATE_URL=postgresql://...` for the state.

- `icp_sync` every 30 minutes: pull what changed, rescore, write only differences.
  Exit 4 (another run holds the lock) skips; 3 (CRM unreachable) fails and retries;
  2 (bad mapping) fails without retries; 1 (some records failed; kept for the next run)
  succeeds with a warning.
- `icp_train` weekly: learn from won and lost deals; a new ICP goes live only when it is
  not worse than the one in use (the CLI's own gate).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from airflow.decorators import dag, task
from airflow.exceptions import AirflowFailException, AirflowSkipException
from icp_cli import BAD_CONFIG, run_icp

CRM = "salesforce"
log = logging.getLogger(__name__)


def _enforce(*args: str) -> dict:
    run = run_icp(*args)
    log.info("icp %s -> exit %s\n%s", " ".join(args), run.exit_code, run.log)
    if run.outcome == "skipped":
        raise AirflowSkipException("another icp run holds the lock (exit 4)")
    if run.exit_code == BAD_CONFIG:
        raise AirflowFailException(f"bad configuration (exit 2), nothing written: {run.summary}")
    if run.outcome in ("retry", "fail"):
        raise RuntimeError(f"icp failed with exit {run.exit_code}; Airflow retries")
    if run.outcome == "partial":
        log.warning("%s records failed; kept and retried next run", run.summary.get("counts"))
    return run.summary  # pushed to XCom


@dag(
    dag_id="icp_sync",
    schedule=timedelta(minutes=30),
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    default_args={"retries": 3, "retry_delay": timedelta(minutes=5)},
    tags=["icp"],
)
def icp_sync() -> None:
    @task
    def sync() -> dict:
        return _enforce("sync", "--crm", CRM)

    sync()


@dag(
    dag_id="icp_train",
    schedule="@weekly",
    start_date=datetime(2026, 1, 1),
    catchup=False,
    max_active_runs=1,
    tags=["icp"],
)
def icp_train() -> None:
    @task
    def train() -> dict:
        return _enforce("train", "--crm", CRM)

    @task
    def report() -> dict:
        return _enforce("report", "--crm", CRM, "--out", "/tmp/icp_report.html")

    train() >> report()


icp_sync()
icp_train()
