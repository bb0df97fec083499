"""Benchmark: `icp train --dry-run` at scale (issue 14: 1,000,000 accounts <= 3 min, <= 4 GB).

    nice -n 10 python bench/bench_train.py [--accounts 100000,200000,1000000] [--cache DIR]

Uses the exports `bench/bench_scale.py` generates and caches (`--cache/scale-N`, written by
`connectors.sample.write_sample_crm(N)` when missing). Each size runs the real CLI in a
child process under `/usr/bin/time -v` (`bench_scale.timed`): wall, CPU (user + system:
steadier than wall on a shared machine) and peak RSS, with how many closed outcomes the
learner used of how many (above `TrainSettings.max_outcomes` it fits on a stratified
sample, `scoring.learn.sample`). Prints one row per size. Exits 0: it reports, it does not
test.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_scale import GB, cli, prepare

TARGET_WALL, TARGET_RSS = 180.0, 4 * GB  # at 1,000,000 accounts (scaled linearly below)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", default="100000,200000")
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "icp-bench")
    args = parser.parse_args()
    print(f"{'accounts':>10} {'wall s':>8} {'cpu s':>8} {'peak GB':>8} {'outcomes used':>22}")
    for size in [int(n) for n in args.accounts.split(",") if n]:
        export = prepare(args.cache / f"scale-{size}", size)
        work = Path(tempfile.mkdtemp(prefix="icp-train-"))
        try:
            wall, cpu, rss, used = run(export, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)
        print(
            f"{size:>10,} {wall:>8.0f} {cpu:>8.0f} {rss / GB:>8.2f} {used:>22}   "
            f"(target {TARGET_WALL * size / 1_000_000:.0f} s, {TARGET_RSS / GB:.0f} GB)",
            flush=True,
        )


def run(export: Path, work: Path) -> tuple[float, float, float, str]:
    """(wall s, cpu s, peak RSS bytes, outcomes used) of one `icp train --dry-run`."""
    argv = [*cli(), "train", "--crm", "csv", "--source", str(export), "--state",
            str(work / "state"), "--dry-run", "-q", "--json"]  # fmt: skip
    report = work / "time.txt"
    started = time.perf_counter()
    done = subprocess.run(
        ["/usr/bin/time", "-v", "-o", str(report), *argv],
        capture_output=True,
        text=True,
        check=False,
    )
    wall = time.perf_counter() - started
    text = report.read_text()
    found = re.search(r"Maximum resident set size \(kbytes\): (\d+)", text)
    rss = int(found.group(1)) * 1024 if found else 0
    cpu = sum(float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", text))
    if done.returncode not in (0, 1):
        print(f"icp train exited {done.returncode}:\n{done.stderr[-3000:]}", file=sys.stderr)
    try:
        sampled = json.loads(done.stdout).get("sampled")
        used = f"{sampled['used']:,} of {sampled['of']:,}" if sampled else "all"
    except (json.JSONDecodeError, AttributeError):
        used = "?"
    return wall, cpu, float(rss), used


if __name__ == "__main__":
    main()
