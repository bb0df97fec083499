"""API calls and wall time of the Salesforce connector against the fake org at 50 ms a call.

    python bench/bench_salesforce.py [--accounts 50000] [--latency 0.05] [--changed 0.10]

1. backfill of every account (Bulk API 2.0 above the threshold), and the same backfill
   forced through sObject Collections;
2. an incremental run after `--changed` of the accounts were edited so their ICP
   outputs change;
3. an incremental run with nothing changed, right after the others: it reads again the
   rows stamped within `commit_overlap` (300 s) of the previous run's start, in case a
   late commit hid them (here: our own writes), and writes nothing;
4. the same once the overlap has passed (`commit_overlap: 0` for the connector only).

For each: API calls used vs the minimum (`ceil(changed / 200)` writes plus the pull
pages), vs a per-record PATCH writer (one call per changed record), and vs rewriting every
account without a diff (`ceil(accounts / 200)` writes every run), plus wall time.
Targets: write calls <= 1.02 x the minimum; no writes when nothing changed; an unchanged
incremental run costs at most 3 API calls once the overlap has passed.
"""

from __future__ import annotations

import argparse
import itertools
import json
import math
import os
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from click.testing import CliRunner  # noqa: E402
from icp_engine.connectors.salesforce.connector import SalesforceConnector, SalesforceSettings  # noqa: E402
from icp_engine.sync.cli.main import main  # noqa: E402

from tests.fakes.salesforce import FakeSalesforce  # noqa: E402
from tests.sfdata import seed_org  # noqa: E402

OUTPUT_FIELDS = ("ICP_Score__c", "ICP_Tier__c", "ICP_Segment__c", "ICP_Reasons__c", "ICP_Route__c")


def run(state: Path, mappings: Path, command: str = "sync") -> tuple[dict[str, Any], float]:
    started = time.perf_counter()
    result = CliRunner().invoke(
        main,
        [command, "--crm", "salesforce", "--state", str(state), "--mappings", str(mappings),
         "--json", "-q"],
    )  # fmt: skip
    elapsed = time.perf_counter() - started
    if result.exit_code != 0:
        raise SystemExit(f"{command} failed ({result.exit_code}): {result.stderr[-2000:]}")
    return json.loads(result.stdout), elapsed


def write_mappings(folder: Path, **settings: Any) -> Path:
    import icp_engine.mappings as bundled
    import yaml

    folder.mkdir(parents=True, exist_ok=True)
    data = yaml.safe_load(bundled.default("salesforce.yaml").read_text(encoding="utf-8"))
    data["settings"] = {"bulk_poll_seconds": 0.2, **settings}
    (folder / "salesforce.yaml").write_text(yaml.safe_dump(data, sort_keys=False))
    return folder


def requests_of(org: FakeSalesforce, start: int) -> dict[str, int]:
    seen = org.requests[start:]
    return {
        "pull": sum(1 for r in seen if "/query" in r.path and "/jobs/" not in r.path),
        "write": sum(1 for r in seen if r.method == "PATCH" or "/jobs/ingest" in r.path),
        "bulk_query": sum(1 for r in seen if "/jobs/query" in r.path),
        "all": len(seen),
    }


def line(label: str, summary: dict[str, Any], calls: dict[str, int], seconds: float,
         accounts: int) -> dict[str, Any]:  # fmt: skip
    changed = summary["counts"]["records_to_write"]
    minimum_writes = math.ceil(changed / 200)
    ratio = calls["write"] / minimum_writes if minimum_writes else float(calls["write"] == 0)
    row = {
        "run": label,
        "accounts_pulled": summary["counts"]["accounts_pulled"],
        "changed": changed,
        "pull_calls": calls["pull"] + calls["bulk_query"],
        "write_calls": calls["write"],
        "minimum_writes": minimum_writes,
        "write_ratio": round(ratio, 3),
        "total_calls": summary["api_calls"],
        "minimum_total": minimum_writes + calls["pull"] + calls["bulk_query"] + 1,
        "per_record_writer": changed,
        "no_diff_writer": math.ceil(accounts / 200),
        "method": summary["estimated_calls"]["method"],
        "seconds": round(seconds, 1),
    }
    print(
        f"{label:<32} pulled {summary['counts']['accounts_pulled']:>6} changed {changed:>6}"
        f"  calls {summary['api_calls']:>4} "
        f"(pull {row['pull_calls']:>3}, write {row['write_calls']:>4} vs min {minimum_writes:>4}"
        f" = {row['write_ratio']:.2f}x; per-record {changed:>6}; no-diff {row['no_diff_writer']})"
        f"  {row['method']:<20} {seconds:6.1f} s"
    )
    return row


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=50_000)
    parser.add_argument("--latency", type=float, default=0.05)
    parser.add_argument("--changed", type=float, default=0.10)
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory() as folder, FakeSalesforce(latency=args.latency) as org:
        base = Path(folder)
        seed_started = time.perf_counter()
        # records last modified over the past minutes, a millisecond apart; then real time
        ticks = itertools.count()
        start = datetime.now(UTC) - timedelta(milliseconds=3 * args.accounts + 1000)
        org.clock = lambda: start + timedelta(milliseconds=next(ticks))
        ids, _ = seed_org(org, args.accounts)
        org.clock = lambda: datetime.now(UTC)  # a real org's clock: one call's rows tie
        print(f"seeded {len(ids)} accounts in {time.perf_counter() - seed_started:.1f} s; "
              f"latency {args.latency * 1000:.0f} ms per call")  # fmt: skip
        os.environ.update(
            SF_INSTANCE_URL=org.instance_url,
            SF_ACCESS_TOKEN=org.access_token,
            REQUESTS_CA_BUNDLE=org.ca_path,
        )
        default = write_mappings(base / "default")
        rest_only = write_mappings(base / "rest", bulk_write_threshold=10_000_000)

        mark = len(org.requests)
        summary, seconds = run(base / "state-rest", rest_only, "backfill")
        rows.append(line("backfill (sObject Collections)", summary, requests_of(org, mark),
                         seconds, len(ids)))  # fmt: skip
        for account_id in ids:  # back to empty outputs, for the same backfill through Bulk
            org.edit("Account", account_id, dict.fromkeys(OUTPUT_FIELDS))
        mark = len(org.requests)
        summary, seconds = run(base / "state", default, "backfill")
        rows.append(line("backfill (auto: Bulk API 2.0)", summary, requests_of(org, mark),
                         seconds, len(ids)))  # fmt: skip
        summary, seconds = run(base / "state", default)  # reads back what our writes stamped
        print(f"  (absorbing our own writes: pulled {summary['counts']['accounts_pulled']}, "
              f"{summary['api_calls']} calls, {seconds:.1f} s)")  # fmt: skip

        step = max(1, round(1 / args.changed))
        for number, account_id in enumerate(ids[::step]):
            org.edit("Account", account_id, {"NumberOfEmployees": 5 + number % 3 * 20_000,
                                             "AnnualRevenue": 0})  # fmt: skip
        mark = len(org.requests)
        summary, seconds = run(base / "state", default)
        rows.append(line(f"incremental, {args.changed:.0%} edited", summary,
                         requests_of(org, mark), seconds, len(ids)))  # fmt: skip
        run(base / "state", default)  # our writes come back once, unchanged
        mark = len(org.requests)
        summary, seconds = run(base / "state", default)
        overlap = SalesforceSettings().commit_overlap
        rows.append(line(f"nothing changed, overlap {overlap:g} s", summary,
                         requests_of(org, mark), seconds, len(ids)))  # fmt: skip
        # once the last changes lie more than commit_overlap before the previous run: the
        # overlap set to 0 for the connector only (the mapping's fingerprint, and so the
        # state, stay those of the earlier runs)
        original = SalesforceConnector.__init__

        def no_overlap(self: SalesforceConnector, *args: Any, **kwargs: Any) -> None:
            original(self, *args, **kwargs)
            self.settings = self.settings.model_copy(update={"commit_overlap": 0})

        SalesforceConnector.__init__ = no_overlap  # type: ignore[method-assign]
        try:
            mark = len(org.requests)
            summary, seconds = run(base / "state", default)
        finally:
            SalesforceConnector.__init__ = original  # type: ignore[method-assign]
        rows.append(line("nothing changed, overlap passed", summary, requests_of(org, mark),
                         seconds, len(ids)))  # fmt: skip

    incremental, unchanged = rows[2], rows[4]
    checks = {
        "write calls <= 1.02 x minimum (incremental)": incremental["write_ratio"] <= 1.02,
        "write calls <= 1.02 x minimum (backfill, collections)": rows[0]["write_ratio"] <= 1.02,
        "write calls <= minimum (backfill, bulk)": rows[1]["write_ratio"] <= 1.0,
        "zero writes when nothing changed": unchanged["write_calls"] == 0,
        "unchanged incremental <= 3 API calls": unchanged["total_calls"] <= 3,
    }
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    if not all(checks.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main_bench()
