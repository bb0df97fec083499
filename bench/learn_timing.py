"""Section 5 of `bench/bench_learn.py`, timing: `train` on a large generated CRM.

`bench_timing` starts the bench script again with `--child-timing`; in that child,
`timing_child` pins itself to the CPUs asked for, builds the data and times `train`,
and prints its figures (best wall time, peak RSS) as one JSON line.
"""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import learn_data as ld
from icp_engine.scoring.learn.train import TrainSettings, plain, train
from learn_tables import console, heading, notes, num, show

TARGET_SECONDS = 60.0

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "bench" / "bench_learn.py"  # the child is the bench script itself


def _peak_mb() -> dict[str, float | None]:
    """Peak RSS of this process: VmHWM (this exec only) and ru_maxrss (may carry the
    parent's high-water mark across fork+exec)."""
    status = {}
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            key, _, value = line.partition(":")
            if key in ("VmHWM", "VmRSS"):
                status[key] = float(value.split()[0]) / 1024
    except OSError:
        pass
    maxrss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / (
        1024 if sys.platform != "darwin" else 1024**2
    )
    return {
        "vm_hwm_mb": status.get("VmHWM"),
        "vm_rss_mb": status.get("VmRSS"),
        "ru_maxrss_mb": maxrss,
    }


def timing_child(accounts: int, opportunities: int, runs: int, cores: int) -> None:
    """In a fresh process: pin to `cores` CPUs, build the data, time `train`; JSON out."""
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, sorted(os.sched_getaffinity(0))[:cores])
    start = time.perf_counter()
    ds = ld.sample_crm(accounts, opportunities)
    prepare = time.perf_counter() - start
    before = _peak_mb()
    _, manual = ld.csv_config()
    times, loads, result = [], [], None
    for _ in range(runs):
        result = None
        loads.append(os.getloadavg()[0] if hasattr(os, "getloadavg") else None)
        start = time.perf_counter()
        result = train(
            ds.accounts, ds.opportunities, manual, ds.field_types, ds.now, TrainSettings()
        )
        times.append(time.perf_counter() - start)
    assert result is not None
    print(
        json.dumps(
            plain(
                {
                    "accounts": len(ds.accounts),
                    "opportunities": len(ds.opportunities),
                    "cpus": len(os.sched_getaffinity(0))
                    if hasattr(os, "sched_getaffinity")
                    else os.cpu_count(),
                    "prepare_seconds": prepare,
                    "runs_seconds": times,
                    "load_average_1min_before_runs": loads,
                    "best_seconds": min(times),
                    "memory_before_train": before,
                    "memory_peak": _peak_mb(),
                    "n_won": result.criteria["learned"]["n_won"],
                    "n_lost": result.criteria["learned"]["n_lost"],
                    "holdout_auc": result.holdout["auc"],
                    "signal": result.signal,
                    "features_used": result.features_used,
                    "facts": ds.facts,
                }
            )
        )
    )


def bench_timing(accounts: int, opportunities: int, runs: int, cores: int) -> dict[str, Any]:
    heading(f"5. timing: train on {accounts:,} accounts / {opportunities:,} opportunities")
    command = [
        sys.executable,
        str(SCRIPT),
        "--child-timing",
        "--timing-accounts",
        str(accounts),
        "--timing-opportunities",
        str(opportunities),
        "--timing-runs",
        str(runs),
        "--cores",
        str(cores),
        ".",
    ]
    done = subprocess.run(command, capture_output=True, text=True, check=False, cwd=ROOT)
    if done.returncode != 0:
        console.print(done.stderr[-3000:], markup=False, highlight=False)
        return {"error": done.stderr[-3000:], "pass": False}
    fig = json.loads(done.stdout.strip().splitlines()[-1])
    peak = fig["memory_peak"]
    fig["target_seconds"] = TARGET_SECONDS
    fig["pass"] = fig["best_seconds"] < TARGET_SECONDS
    hwm = peak["vm_hwm_mb"] or peak["ru_maxrss_mb"]
    loads = ", ".join(num(v, ".2f") for v in fig["load_average_1min_before_runs"])
    show(
        "timing (a child process pinned to the CPUs shown; best of the runs)",
        ["figure", "value"],
        [
            ["data", f"{fig['accounts']:,} accounts, {fig['opportunities']:,} opportunities"],
            ["outcomes (won / lost accounts)", f"{fig['n_won']:,} / {fig['n_lost']:,}"],
            ["CPUs (sched_setaffinity)", fig["cpus"]],
            ["prepare (generate + to_canonical)", f"{fig['prepare_seconds']:.1f} s"],
            ["train runs", ", ".join(f"{t:.1f} s" for t in fig["runs_seconds"])],
            ["1-min load average before each run", loads],
            ["best", f"{fig['best_seconds']:.1f} s (target < {TARGET_SECONDS:.0f} s)"],
            [
                "peak RSS (VmHWM)",
                f"{num(hwm, '.0f')} MB; "
                f"{num(fig['memory_before_train']['vm_rss_mb'], '.0f')} MB before train",
            ],
            ["result", "PASS" if fig["pass"] else "FAIL"],
        ],
    )
    notes(
        [
            "data: connectors.sample generate_accounts + generate_opportunities (pooled draws; "
            "one draw is ~1.6 deals per account) through to_canonical with mappings/csv.yaml: "
            "tests/planted.py makes ~1.1 deals per account, so it cannot reach 300,000",
            f"peak RSS is the child's VmHWM (ru_maxrss {num(peak['ru_maxrss_mb'], '.0f')} MB) "
            f"and includes generating and canonicalising the data; holdout AUC "
            f"{fig['holdout_auc']:.3f}, signal {fig['signal']}",
        ]
    )
    return fig
