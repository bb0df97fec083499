"""Score where the data is: compiled SQL on DuckDB vs the Python scorer; and the enrichment join.

```
python bench/bench_warehouse.py scoring [--accounts 1000000] [--scales 1,10] [--python-scales 1,10]
python bench/bench_warehouse.py enrichment [--accounts 1000000]
```

scoring: `bench_scoring.prepare` builds 1,000,000 feature rows once (sample generator,
CSV mapping, `build_features`) and saves them as Parquet; the 30-criteria scorecard of
`bench_scoring.build_icp`. Scale k replicates those rows k times with distinct account ids
(10 -> 10,000,000). Each measurement runs in a fresh child process pinned to 2 cores:
- python: load the Parquet (k copies, not timed), reset the peak, time
  `score_accounts(features, icp, reasons_length=255)`;
- duckdb: build the table `icp_features` in an on-disk DuckDB file (not timed; threads=2),
  reset the peak, time `CREATE TABLE icp_scores AS <icp score --sql duckdb>`.
Peak memory is the child's VmHWM after the reset (the scoring step alone; DuckDB runs in
the process, so its buffers count), plus the peak including the load. Tier counts and the
mean score of both are printed: they must agree.

enrichment: N accounts with domains, and an enrichment CSV of N rows in a vendor layout
(`Domain` written as `https://www.X.com/path`, `WWW.X.COM`, `x.com`; 80% of them match an
account), one `number`, one `multi` and one `text` field plus `Last Indexed`; times
`connectors.enrichment.join` (reading the CSV included) in a child process; peak memory;
match rate.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from icp_engine.scoring.features import available_fields
from icp_engine.sync.config import load_config

from bench.bench_scoring import _peak_mb, _reset_peak, build_icp, prepare


def _pin() -> None:
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:2])


def _replicated(path: Path, scale: int) -> pd.DataFrame:
    base = pd.read_parquet(path)
    if scale == 1:
        return base
    parts = []
    for k in range(scale):
        part = base.copy()
        part["account_id"] = part["account_id"].astype(str) + f"-{k}"
        parts.append(part)
    del base
    frame = pd.concat(parts, ignore_index=True)
    del parts
    gc.collect()
    return frame


def child_python(path: Path, scale: int) -> dict[str, Any]:
    from icp_engine.scoring.criteria import score_accounts

    _pin()
    icp = build_icp()
    features = _replicated(path, scale)
    load_peak = _peak_mb()
    _reset_peak()
    start = time.perf_counter()
    result = score_accounts(features, icp, reasons_length=255)
    seconds = time.perf_counter() - start
    return {
        "engine": "python",
        "rows": len(result),
        "seconds": seconds,
        "peak_mb": _peak_mb(),
        "peak_with_load_mb": max(load_peak, _peak_mb()),
        "tiers": {str(k): int(v) for k, v in result["tier"].value_counts().sort_index().items()},
        "mean_score": float(result["score"].mean()),
    }


def child_duckdb(path: Path, scale: int, database: Path) -> dict[str, Any]:
    import duckdb
    from icp_engine.scoring.sql import compile_scorecard

    _pin()
    icp = build_icp()
    config = load_config("csv", None)
    types = available_fields(config.account_field_types())
    sql = compile_scorecard(icp, types, "duckdb", reasons_length=255, pretty=False)
    con = duckdb.connect(str(database))
    con.execute("SET threads = 2")
    con.execute("DROP TABLE IF EXISTS icp_features")
    con.execute("DROP TABLE IF EXISTS icp_scores")
    parquet = str(path).replace("'", "''")
    con.execute(
        "CREATE TABLE icp_features AS SELECT * REPLACE "
        f"(CAST(account_id AS VARCHAR) || '-' || CAST(k AS VARCHAR) AS account_id) "
        f"FROM read_parquet('{parquet}') CROSS JOIN range({scale}) AS r(k)"
    )
    con.execute("CHECKPOINT")
    load_peak = _peak_mb()
    _reset_peak()
    start = time.perf_counter()
    con.execute(f"CREATE TABLE icp_scores AS {sql}")
    seconds = time.perf_counter() - start
    peak = _peak_mb()
    rows = con.execute("SELECT count(*) FROM icp_scores").fetchone()
    tiers = dict(
        con.execute("SELECT tier, count(*) FROM icp_scores GROUP BY 1 ORDER BY 1").fetchall()
    )
    (mean,) = con.execute("SELECT avg(score) FROM icp_scores").fetchone() or (0.0,)
    con.close()
    return {
        "engine": "duckdb",
        "rows": rows[0] if rows else 0,
        "seconds": seconds,
        "peak_mb": peak,
        "peak_with_load_mb": max(load_peak, peak),
        "tiers": {str(k): int(v) for k, v in tiers.items()},
        "mean_score": float(mean),
        "sql_chars": len(sql),
    }


def child_enrichment(accounts: int, directory: Path) -> dict[str, Any]:
    from icp_engine.connectors.enrichment import EnrichmentConfig, join

    _pin()
    rng = np.random.default_rng(15)
    ids = np.arange(accounts)
    frame = pd.DataFrame(
        {
            "account_id": [f"001{i:09d}" for i in ids],
            "domain": [f"company{i}.com" for i in ids],
        }
    )
    # the vendor file: 80% of rows are accounts' domains (written three ways), 20% others
    matching = rng.random(accounts) < 0.8
    numbers = np.where(matching, rng.permutation(accounts), accounts + ids)
    styles = rng.integers(0, 3, accounts)
    domains = [
        (f"https://www.company{n}.com/about", f"WWW.COMPANY{n}.COM", f"company{n}.com")[s]
        for n, s in zip(numbers.tolist(), styles.tolist(), strict=True)
    ]
    stacks = np.array(["Snowflake;Stripe", "Google BigQuery", "Segment;HubSpot", "Stripe"], object)
    vendor = pd.DataFrame(
        {
            "Domain": domains,
            "Technologies": rng.choice(stacks, accounts),
            "Technology Spend": rng.integers(0, 20_000, accounts).astype(str),
            "Vertical": rng.choice(np.array(["Software", "Retail", "Finance"], object), accounts),
            "Last Indexed": "2026-10-01",
        }
    )
    path = directory / "builtwith.csv"
    vendor.to_csv(path, index=False)
    del vendor, domains
    gc.collect()
    config = EnrichmentConfig.model_validate(
        {
            "sources": [
                {
                    "name": "BuiltWith",
                    "path": str(path),
                    "column": "Domain",
                    "as_of": "Last Indexed",
                    "fields": {
                        "web_technologies": {
                            "field": "Technologies",
                            "type": "multi",
                            "values": {"BigQuery": ["Google BigQuery"]},
                        },
                        "technology_spend": {"field": "Technology Spend", "type": "number"},
                        "vertical": "Vertical",
                    },
                }
            ]
        }
    )
    _reset_peak()
    start = time.perf_counter()
    joined, report = join(frame, config, directory)
    seconds = time.perf_counter() - start
    source = report.sources[0]
    return {
        "accounts": len(joined),
        "enrichment_rows": source.rows,
        "seconds": seconds,
        "peak_mb": _peak_mb(),
        "matched": source.matched,
        "match_rate": source.coverage,
        "expected_match_rate": float(len(set(numbers[matching].tolist())) / accounts),
    }


def _run_child(args: list[str]) -> dict[str, Any]:
    done = subprocess.run(
        [sys.executable, __file__, "--child", *args], capture_output=True, text=True, check=False
    )
    if done.returncode != 0:
        return {"error": done.stderr[-2000:]}
    return json.loads(done.stdout.strip().splitlines()[-1])


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("what", choices=["scoring", "enrichment"])
    parser.add_argument("--accounts", type=int, default=1_000_000)
    parser.add_argument("--scales", default="1,10", help="DuckDB: copies of the base rows.")
    parser.add_argument("--python-scales", default="1,10", help="Python scorer: copies.")
    parser.add_argument("--child", nargs="*", help=argparse.SUPPRESS)
    ns, _ = parser.parse_known_args()
    with tempfile.TemporaryDirectory(prefix="icp-bench-") as tmp:
        directory = Path(tmp)
        if ns.what == "enrichment":
            result = _run_child(["enrichment", str(ns.accounts), str(directory)])
            print(json.dumps(result, indent=2))
            return 0
        start = time.perf_counter()
        path, _ = prepare(ns.accounts, directory, with_opportunities=False)
        print(f"prepared {ns.accounts:,} feature rows in {time.perf_counter() - start:.0f} s")
        rows = []
        for scale in [int(s) for s in ns.scales.split(",") if s]:
            rows.append(_run_child(["duckdb", str(path), str(scale), str(directory / "b.duckdb")]))
            print(json.dumps(rows[-1]))
            (directory / "b.duckdb").unlink(missing_ok=True)
        for scale in [int(s) for s in ns.python_scales.split(",") if s]:
            rows.append(_run_child(["python", str(path), str(scale)]))
            print(json.dumps(rows[-1]))
        print(
            f"\n{'engine':8} {'rows':>12} {'seconds':>9} {'peak MB':>9} {'w/ load MB':>11}  tiers"
        )
        for row in rows:
            if "error" in row:
                print(f"error: {row['error']}")
                continue
            print(
                f"{row['engine']:8} {row['rows']:>12,} {row['seconds']:>9.1f} "
                f"{row['peak_mb']:>9,.0f} {row['peak_with_load_mb']:>11,.0f}  {row['tiers']} "
                f"mean {row['mean_score']:.4f}"
            )
    return 0


def _child_main(argv: list[str]) -> None:
    kind, *args = argv
    if kind == "python":
        result = child_python(Path(args[0]), int(args[1]))
    elif kind == "duckdb":
        result = child_duckdb(Path(args[0]), int(args[1]), Path(args[2]))
    else:
        result = child_enrichment(int(args[0]), Path(args[1]))
    print(json.dumps(result))


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        _child_main(sys.argv[2:])
        sys.exit(0)
    sys.exit(main())
