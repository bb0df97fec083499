"""Benchmark: score N generated accounts (default 1,000,000) against 30 ICP criteria.

Targets (the scoring issue): scoring takes <= 5 s and <= 2 GB on 2 cores, and <= 3x the
time of only loading the same data.

    python bench/bench_scoring.py [--accounts N] [--repeat R] [--cores C] [--opportunities]
                                  [--profile]

1. Prepare (not timed): `generate_accounts` -> `to_canonical` -> `build_features`, saved
   to a temp dir as Parquet when pyarrow is importable, else as a pickle; a 30-criteria
   `IcpCriteria` = the bundled `icp.yaml` (8 criteria, anti-patterns, segments, routing)
   plus 22 criteria over the other fields, covering every operator.
2. A fresh child process (this script with `--child`, pinned to `--cores` CPUs) loads the
   file R times (load time = best of R), keeps the last frame, then runs
   `score_accounts(features, icp, reasons_length=255)` R times (best and median).
   Peak memory is that child's `ru_maxrss`: interpreter + imports + the loaded frame +
   scoring. "score delta" is that peak minus the resident size right after loading.
3. Prints a table with PASS/FAIL per target and the tier distribution. Exits 0 always.
"""

from __future__ import annotations

import argparse
import gc
import importlib.util
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pandas as pd
from icp_engine.connectors.canonical import to_canonical
from icp_engine.connectors.sample import generate_accounts, generate_opportunities
from icp_engine.scoring.criteria import ConditionEvaluator, score_accounts
from icp_engine.scoring.features import build_features
from icp_engine.scoring.schema import IcpCriteria
from icp_engine.sync.config import load_config

TARGET_SECONDS = 5.0
TARGET_MB = 2048.0
TARGET_RATIO = 3.0
CRITERIA = 30

EXTRA_CRITERIA: list[dict[str, Any]] = [
    {"name": "not a slow-cycle industry", "field": "industry",
     "not_in": ["Government", "Manufacturing"], "weight": 0.04},
    {"name": "SaaS or healthcare", "field": "industry",
     "in": ["Technology/SaaS", "Healthcare"], "weight": 0.03},
    {"name": "employees 20-2,000", "field": "employees", "between": [20, 2000], "weight": 0.05},
    {"name": "employees > 100", "field": "employees", "gt": 100, "weight": 0.03},
    {"name": "employees <= 1,000", "field": "employees", "lte": 1000, "weight": 0.03},
    {"name": "revenue $1M-$100M", "field": "annual_revenue", "between": [1e6, 1e8],
     "weight": 0.05},
    {"name": "revenue >= $5M", "field": "annual_revenue", "gte": 5e6, "weight": 0.03},
    {"name": "revenue < $500M", "field": "annual_revenue", "lt": 5e8, "weight": 0.02},
    {"name": "HQ in the US", "field": "country", "eq": "United States", "weight": 0.04},
    {"name": "HQ in core Europe", "field": "country",
     "in": ["United Kingdom", "Germany", "France", "Netherlands"], "weight": 0.03},
    {"name": "North America", "field": "region", "eq": "NA", "weight": 0.02},
    {"name": "EMEA or APAC", "field": "region", "in": ["EMEA", "APAC"], "weight": 0.02},
    {"name": "uses Snowflake", "field": "technologies", "contains": "Snowflake", "weight": 0.03},
    {"name": "uses Outreach or Gong", "field": "technologies", "contains": ["Outreach", "Gong"],
     "weight": 0.04},
    {"name": "late-stage funding", "field": "funding_stage", "eq": "Late stage", "weight": 0.02},
    {"name": "funding stage known", "field": "funding_stage", "is_null": False, "weight": 0.01},
    {"name": "founded 2015 or later", "field": "year_started", "gte": 2015, "weight": 0.03},
    {"name": "a prospect", "field": "type", "eq": "Prospect", "weight": 0.02},
    {"name": "rated hot or warm", "field": "rating", "in": ["Hot", "Warm"], "weight": 0.04},
    {"name": "not from a bought list", "field": "source",
     "not_in": ["Purchased List", "Other"], "weight": 0.02},
    {"name": "created since 2024", "field": "created_at", "gte": "2024-01-01", "weight": 0.02},
    {"name": "headcount last year known", "field": "employees_last_year", "is_null": False,
     "weight": 0.01},
]  # fmt: skip


def build_icp() -> IcpCriteria:
    """The bundled criteria file plus `EXTRA_CRITERIA` (bonus group): exactly 30 criteria."""
    base = load_config("csv", None).icp
    doc = base.model_dump(mode="json", by_alias=True, exclude_none=True)
    doc["name"] = f"Benchmark ICP ({CRITERIA} criteria)"
    doc["criteria"]["bonus"] = [*doc["criteria"].get("bonus", []), *EXTRA_CRITERIA]
    icp = IcpCriteria.model_validate(doc)
    count = len(icp.all_criteria())
    if count != CRITERIA:
        msg = f"expected {CRITERIA} criteria, built {count}"
        raise AssertionError(msg)
    return icp


def _has_pyarrow() -> bool:
    return importlib.util.find_spec("pyarrow") is not None


def prepare(n: int, directory: Path, with_opportunities: bool) -> tuple[Path, dict[str, float]]:
    """Generate, canonicalise and featurise `n` accounts; save the features; time each step."""
    mapping = load_config("csv", None).mapping
    steps: dict[str, float] = {}
    start = time.perf_counter()
    raw = generate_accounts(n, seed=7)
    steps["generate"] = time.perf_counter() - start
    start = time.perf_counter()
    accounts, _ = to_canonical(raw, mapping, "account")
    steps["to_canonical"] = time.perf_counter() - start
    opportunities = pd.DataFrame()
    if with_opportunities:
        start = time.perf_counter()
        opportunities, _ = to_canonical(generate_opportunities(raw, seed=7), mapping, "opportunity")
        steps["opportunities"] = time.perf_counter() - start
    del raw
    start = time.perf_counter()
    features = build_features(accounts, opportunities)
    steps["build_features"] = time.perf_counter() - start
    del accounts, opportunities
    start = time.perf_counter()
    if _has_pyarrow():
        path = directory / "features.parquet"
        features.to_parquet(path)
    else:
        path = directory / "features.pkl"
        features.to_pickle(path, protocol=5)
    steps["save"] = time.perf_counter() - start
    return path, steps


def _load(path: Path) -> pd.DataFrame:
    if path.suffix == ".parquet":
        return pd.read_parquet(path)
    frame = pd.read_pickle(path)
    assert isinstance(frame, pd.DataFrame)
    return frame


def _status_mb(key: str) -> float | None:
    """A size from /proc/self/status (Linux), in MB; None elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{key}:"):
                return int(line.split()[1]) / 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def _peak_mb() -> float:
    """This process's peak resident size (since the last `_reset_peak`).

    VmHWM, not `ru_maxrss`: a child started by fork/vfork + exec inherits the parent's
    high-water mark in `ru_maxrss` (Linux keeps the larger of the old and new image), so
    after a multi-GB prepare step `ru_maxrss` would report the parent's peak.
    """
    hwm = _status_mb("VmHWM")
    if hwm is not None:
        return hwm
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / 2**20 if sys.platform == "darwin" else peak / 1024  # bytes vs KB


def _current_mb() -> float:
    """This process's resident size now (Linux), else its peak so far."""
    rss = _status_mb("VmRSS")
    return _peak_mb() if rss is None else rss


def _reset_peak() -> bool:
    """Reset VmHWM to the current resident size (Linux >= 4.0); False if not possible."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        return False
    return _status_mb("VmHWM") is not None


def child(path: Path, repeat: int, cores: int, profile: bool) -> dict[str, Any]:
    """Load `path` `repeat` times, then score the last frame `repeat` times; measure both."""
    if cores and hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:cores])
    icp = build_icp()
    gc.collect()
    imports_mb = _current_mb()
    load_times: list[float] = []
    features = pd.DataFrame()
    for _ in range(repeat):
        del features
        gc.collect()
        start = time.perf_counter()
        features = _load(path)
        load_times.append(time.perf_counter() - start)
    gc.collect()
    after_load_mb = _current_mb()
    load_peak_mb = _peak_mb()
    reset = _reset_peak()
    score_times: list[float] = []
    result = pd.DataFrame()
    for _ in range(repeat):
        del result
        gc.collect()
        start = time.perf_counter()
        result = score_accounts(features, icp, reasons_length=255)
        score_times.append(time.perf_counter() - start)
    score_peak_mb = _peak_mb()
    if profile:
        import cProfile
        import pstats

        profiler = cProfile.Profile()
        profiler.runcall(score_accounts, features, icp, reasons_length=255)
        pstats.Stats(profiler, stream=sys.stderr).sort_stats("cumulative").print_stats(30)
    evaluator = ConditionEvaluator(features)
    hits = [int(evaluator.all_of(c.conditions()).sum()) for _, _, c in icp.all_criteria()]
    return {
        "rows": len(features),
        "cpus": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "load": load_times,
        "score": score_times,
        "imports_mb": imports_mb,
        "after_load_mb": after_load_mb,
        "load_peak_mb": load_peak_mb,
        "score_peak_mb": score_peak_mb,
        "peak_mb": max(load_peak_mb, score_peak_mb),
        "score_delta_mb": score_peak_mb - after_load_mb if reset else None,
        "frame_mb": features.memory_usage(deep=True).sum() / 2**20,
        "tiers": {str(k): int(v) for k, v in result["tier"].value_counts().sort_index().items()},
        "segments": int(result["segment"].nunique()),
        "routes": int(result["route"].nunique()),
        "reasons": int(result["reasons"].nunique()),
        "mean_score": float(result["score"].mean()),
        "criteria_hits": hits,
    }


def _verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def report(path: Path, steps: dict[str, float], m: dict[str, Any]) -> None:
    load, score = min(m["load"]), min(m["score"])
    median = statistics.median(m["score"])
    ratio = score / load if load else float("inf")
    rows = m["rows"]
    delta = "n/a" if m["score_delta_mb"] is None else f"{m['score_delta_mb']:.0f}"
    print()
    print(f"prepare (not timed): {', '.join(f'{k} {v:.1f} s' for k, v in steps.items())}")
    print(
        f"feature file: {path.name} ({path.stat().st_size / 2**20:.0f} MB on disk, "
        f"{m['frame_mb']:.0f} MB in memory, {rows:,} rows)"
    )
    print(
        f"measured in a fresh child process pinned to {m['cpus']} CPU(s); best of {len(m['score'])}"
    )
    print()
    table = [
        ("accounts", f"{rows:,}", ""),
        ("criteria", f"{CRITERIA}", ""),
        ("load s (best)", f"{load:.3f}", f"runs: {', '.join(f'{t:.3f}' for t in m['load'])}"),
        (
            "score s (best)",
            f"{score:.3f}",
            f"<= {TARGET_SECONDS:g} s  {_verdict(score <= TARGET_SECONDS)}",
        ),
        ("score s (median)", f"{median:.3f}", f"runs: {', '.join(f'{t:.3f}' for t in m['score'])}"),
        (
            "ratio score/load",
            f"{ratio:.2f}",
            f"<= {TARGET_RATIO:g}x  {_verdict(ratio <= TARGET_RATIO)}",
        ),
        ("throughput acc/s", f"{rows / score:,.0f}", ""),
        (
            "peak RSS MB",
            f"{m['peak_mb']:.0f}",
            f"<= {TARGET_MB:g} MB  {_verdict(m['peak_mb'] <= TARGET_MB)}",
        ),
        ("RSS after imports MB", f"{m['imports_mb']:.0f}", ""),
        (
            "RSS after load MB",
            f"{m['after_load_mb']:.0f}",
            f"peak while loading {m['load_peak_mb']:.0f}",
        ),
        ("peak RSS scoring MB", f"{m['score_peak_mb']:.0f}", "peak from the end of loading on"),
        ("score delta MB", delta, "peak RSS scoring - RSS after load"),
    ]
    width = max(len(name) for name, _, _ in table)
    for name, value, note in table:
        print(f"  {name:<{width}}  {value:>12}  {note}".rstrip())
    print()
    tiers = m["tiers"]
    print("tiers: " + ", ".join(f"{k} {v:,} ({100 * v / rows:.1f}%)" for k, v in tiers.items()))
    print(
        f"mean score {m['mean_score']:.1f}; distinct segments {m['segments']}, "
        f"routes {m['routes']}, reason texts {m['reasons']:,}"
    )
    hits = m["criteria_hits"]
    never, always = sum(h == 0 for h in hits), sum(h == rows for h in hits)
    print(
        f"criteria matching no row: {never}; every row: {always}; "
        f"share matched per criterion {min(hits) / rows:.1%}-{max(hits) / rows:.1%}"
    )
    print()
    failures = [
        f"FAIL score time {score:.3f} s > {TARGET_SECONDS:g} s" if score > TARGET_SECONDS else "",
        f"FAIL peak RSS {m['peak_mb']:.0f} MB > {TARGET_MB:g} MB"
        if m["peak_mb"] > TARGET_MB
        else "",
        f"FAIL ratio {ratio:.2f} > {TARGET_RATIO:g}x load" if ratio > TARGET_RATIO else "",
    ]
    for line in filter(None, failures):
        print(line)
    if not any(failures):
        print("PASS all targets")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--accounts", type=int, default=1_000_000, help="accounts to score")
    parser.add_argument("--repeat", type=int, default=3, help="runs of load and of score")
    parser.add_argument("--cores", type=int, default=2, help="CPUs the child may use (0: all)")
    parser.add_argument(
        "--opportunities",
        action="store_true",
        help="also generate opportunities (deal features); slower to prepare",
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="cProfile one extra score call in the child (to stderr)",
    )
    parser.add_argument("--child", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    repeat = max(1, args.repeat)
    if args.child is not None:
        print(json.dumps(child(args.child, repeat, args.cores, args.profile)))
        return 0

    print(f"preparing {args.accounts:,} accounts ...", flush=True)
    with tempfile.TemporaryDirectory(prefix="icp-bench-") as tmp:
        path, steps = prepare(args.accounts, Path(tmp), args.opportunities)
        gc.collect()
        command = [
            sys.executable,
            __file__,
            "--child",
            str(path),
            "--repeat",
            str(repeat),
            "--cores",
            str(args.cores),
            *(["--profile"] if args.profile else []),
        ]
        print("measuring in a child process ...", flush=True)
        done = subprocess.run(command, capture_output=True, text=True, check=False)
        sys.stderr.write(done.stderr)
        if done.returncode != 0 or not done.stdout.strip():
            print(f"FAIL child process exited {done.returncode}")
            return 0
        report(path, steps, json.loads(done.stdout.strip().splitlines()[-1]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
