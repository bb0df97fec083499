"""Dagster: the ICP scores as an asset, materialised by the `icp` CLI (exit codes + `--json`).

Load with `dagster dev -f dagster_assets.py` (with `icp_cli.py` beside it), `icp-engine`
installed, CRM credentials in the environment, and `ICP_STATE_URL=postgresql://...` when
runs have no persistent volume.

- `icp_scores`: `icp sync`; its `--json` summary becomes the materialisation's metadata
  (accounts pulled, fields written, failures, API calls).
- `icp_model`: `icp train`, weekly, upstream of nothing the sync needs (the CLI activates a
  learned ICP only when it is not worse than the one in use).
(No `from __future__ import annotations` here: Dagster reads the `context` annotation.)
Exit 4 (locked) ends the run without materialising; 3 (CRM unreachable) asks Dagster to
retry; 2 (bad mapping) fails without retry; 1 materialises with the failures in metadata.
"""

import dagster as dg
from icp_cli import BAD_CONFIG, IcpRun, run_icp

CRM = "salesforce"


def _materialise(context: dg.AssetExecutionContext, *args: str) -> dg.MaterializeResult:
    run: IcpRun = run_icp(*args)
    context.log.info(f"icp {' '.join(args)} -> exit {run.exit_code}\n{run.log}")
    if run.outcome == "skipped":
        raise dg.Failure("another icp run holds the lock (exit 4)", allow_retries=False)
    if run.exit_code == BAD_CONFIG:
        raise dg.Failure(f"bad configuration (exit 2): {run.summary}", allow_retries=False)
    if run.outcome == "retry":
        raise dg.RetryRequested(max_retries=3, seconds_to_wait=300)
    if run.outcome == "fail":
        raise dg.Failure(f"icp exited {run.exit_code}")
    counts = run.summary.get("counts", {})
    return dg.MaterializeResult(
        metadata={
            "exit_code": run.exit_code,
            "counts": dg.MetadataValue.json(counts),
            "api_calls": run.summary.get("api_calls", 0),
            "criteria": run.summary.get("criteria", ""),
        }
    )


@dg.asset(group_name="icp", description="Score, tier, segment, reasons and route in the CRM.")
def icp_scores(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return _materialise(context, "sync", "--crm", CRM)


@dg.asset(group_name="icp", description="The learned ICP (icp train), weekly.")
def icp_model(context: dg.AssetExecutionContext) -> dg.MaterializeResult:
    return _materialise(context, "train", "--crm", CRM)


sync_job = dg.define_asset_job("icp_sync", selection=[icp_scores])
train_job = dg.define_asset_job("icp_train", selection=[icp_model])
defs = dg.Definitions(
    assets=[icp_scores, icp_model],
    jobs=[sync_job, train_job],
    schedules=[
        dg.ScheduleDefinition(job=sync_job, cron_schedule="*/30 * * * *"),
        dg.ScheduleDefinition(job=train_job, cron_schedule="0 6 * * 1"),
    ],
)
