"""Benchmark: a whole CSV run at scale (issue 14), side by side with only reading the files.

    python bench/bench_scale.py [--accounts 1000000] [--cache DIR] [--work DIR]
                                [--steps read,backfill,sync,changed,train] [--profile STEP]

Targets (issue 14), on 2 cores:
- `icp backfill` of N accounts (about 2 opportunities each) from CSV: <= 90 s wall, <= 2 GB
  peak RSS, and <= 5x the time of only reading the two files with the fastest reader found
  (pyarrow.csv and duckdb are both timed; the faster one is the baseline).
- `icp sync` with nothing changed: <= 10 s; with 1% of the accounts changed: <= 20 s.
- State <= 300 bytes per account (the state directory's size after the backfill and syncs).
- `icp train` <= 3 min, <= 4 GB.
The time targets are stated for 1,000,000 accounts; at other sizes they are scaled
linearly (shown as the target column), which is generous below 1M and strict above.

1. Prepare (not timed, cached): `connectors.sample.write_sample_crm(N)` writes
   `Account.csv` and `Opportunity.csv` into `--cache/scale-N` once; later runs reuse them.
2. Every measured step is the real CLI (`python -m icp_engine.sync.cli ...`) in a child
   process under `/usr/bin/time -v`: wall clock and CPU come from there. Peak RSS is the
   larger of its "Maximum resident set size" (the largest single process) and the RSS of
   the whole process tree summed, sampled every 0.2 s (a streamed run builds its mirror in
   a second process). The export is copied into `--work` first, so the cache stays clean.
   CPU seconds (user + system) are shown too: on a shared machine they vary less than wall.
3. Steps: `read` (baseline: pyarrow.csv and duckdb, each reads both files fully, every
   column as text); `backfill` (fresh state); then Data Loader is simulated: the update
   file is loaded into Account.csv with a fresh SystemModstamp on the loaded rows, and a
   first `sync` confirms those writes (shown, no target); `sync` again = nothing changed;
   `changed`: 1% of the accounts get a new headcount and stamp, then `sync`; `train`
   (a fresh state directory, `--dry-run` so nothing is saved).
4. `--profile STEP` runs that step under `py-spy record` (if installed) and writes a
   speedscope-less flat profile `profile-STEP.txt` into --work.

Prints a table with PASS/FAIL per target. Exits 0 always: it reports, it does not test.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

GB = 1024**3
ONE_MILLION = 1_000_000
STEPS = ("read", "backfill", "sync", "changed", "train")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--accounts", type=int, default=ONE_MILLION)
    parser.add_argument("--cache", type=Path, default=Path.home() / ".cache" / "icp-bench")
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--steps", default=",".join(STEPS))
    parser.add_argument("--profile", default=None, help="one step to run under py-spy")
    args = parser.parse_args()
    steps = [s for s in args.steps.split(",") if s]
    export = prepare(args.cache / f"scale-{args.accounts}", args.accounts)
    work = args.work or Path(tempfile.mkdtemp(prefix="icp-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    source, state = work / "export", work / "state"
    if any(s in steps for s in ("backfill", "sync", "changed")):
        shutil.rmtree(source, ignore_errors=True)
        shutil.rmtree(state, ignore_errors=True)
        shutil.copytree(export, source)
    rows: list[tuple[str, dict[str, float], str]] = []
    scale = args.accounts / ONE_MILLION
    baseline = None
    if "read" in steps:
        for reader in ("pyarrow", "duckdb"):
            measured = timed([sys.executable, __file__, "--read", reader, str(export)], work)
            rows.append((f"read only ({reader})", measured, ""))
            baseline = min(baseline or measured["wall"], measured["wall"])
    profile = args.profile
    if "backfill" in steps:
        measured = icp(work, "backfill", source, state, profile == "backfill")
        verdicts = [
            verdict("wall", measured["wall"], 90 * scale, "s"),
            verdict("peak", measured["rss"] / GB, 2.0, "GB"),
        ]
        if baseline:
            verdicts.append(verdict("x read", measured["wall"] / baseline, 5.0, "x"))
        rows.append(("icp backfill", measured, "; ".join(verdicts)))
        per = state_size(state) / args.accounts  # the update file not loaded yet: all pending
        rows.append(
            ("state size after the backfill", {"wall": 0, "rss": 0}, f"{per:,.0f} B/account")
        )
        loaded = load_updates(source)
        measured = icp(work, "sync", source, state, False)
        rows.append((f"icp sync (confirms {loaded:,} loaded writes)", measured, ""))
    if "sync" in steps:
        measured = icp(work, "sync", source, state, profile == "sync")
        rows.append(
            (
                "icp sync, nothing changed",
                measured,
                verdict("wall", measured["wall"], 10 * scale, "s"),
            )
        )
    if "changed" in steps:
        edited = edit_accounts(source, 0.01)
        measured = icp(work, "sync", source, state, profile == "changed")
        rows.append(
            (
                f"icp sync, 1% changed ({edited:,})",
                measured,
                verdict("wall", measured["wall"], 20 * max(scale, 0.0), "s"),
            )
        )
    if state.exists():
        per = state_size(state) / args.accounts
        rows.append(("state size", {"wall": 0, "rss": 0}, verdict("bytes/account", per, 300, "B")))
    if "train" in steps:
        train_state = work / "train-state"
        shutil.rmtree(train_state, ignore_errors=True)
        measured = timed(
            [*cli(), "train", "--crm", "csv", "--source", str(export), "--state",
             str(train_state), "--dry-run", "-q", "--json"],
            work,
            profile=work / "profile-train.txt" if profile == "train" else None,
        )  # fmt: skip
        rows.append(
            (
                "icp train --dry-run",
                measured,
                "; ".join(
                    [
                        verdict("wall", measured["wall"], 180 * scale, "s"),
                        verdict("peak", measured["rss"] / GB, 4.0, "GB"),
                    ]
                ),
            )
        )
    print(f"\n{args.accounts:,} accounts, export {export} ({size_mb(export):,.0f} MB), work {work}")
    print(f"{'step':<44} {'wall s':>8} {'cpu s':>8} {'peak GB':>8}  verdicts (target scaled to N)")
    for name, measured, verdicts in rows:
        wall = f"{measured['wall']:8.1f}" if measured["wall"] else " " * 8
        cpu = f"{measured['cpu']:8.1f}" if measured.get("cpu") else " " * 8
        rss = f"{measured['rss'] / GB:8.2f}" if measured["rss"] else " " * 8
        print(f"{name:<44} {wall} {cpu} {rss}  {verdicts}")


def verdict(what: str, value: float, target: float, unit: str) -> str:
    ok = "PASS" if value <= target else "FAIL"
    return f"{what} {value:,.2f}{unit} <= {target:,.1f}{unit} {ok}"


def size_mb(path: Path) -> float:
    return sum(p.stat().st_size for p in path.glob("*.csv")) / 1e6


def cli() -> list[str]:
    return [sys.executable, "-m", "icp_engine.sync.cli"]


def icp(work: Path, command: str, source: Path, state: Path, profile: bool) -> dict[str, float]:
    argv = [*cli(), command, "--crm", "csv", "--source", str(source), "--state", str(state),
            "-q", "--json"]  # fmt: skip
    return timed(argv, work, profile=work / f"profile-{command}.txt" if profile else None)


def timed(argv: list[str], work: Path, profile: Path | None = None) -> dict[str, float]:
    """Run `argv` under /usr/bin/time -v: wall seconds, CPU seconds and peak RSS bytes.

    The peak is the larger of time's "Maximum resident set size" (one process's own
    peak: the largest of the run and its children, not their sum) and the summed RSS of
    the whole process tree, sampled every 0.2 s (a streamed run has a second process
    building the mirror while it scores)."""
    if profile is not None and shutil.which("py-spy"):
        raw = profile.with_suffix(".raw")
        argv = ["py-spy", "record", "-r", "50", "-f", "raw", "-o", str(raw), "--", *argv]
    report = work / "time.txt"
    started = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        running = subprocess.Popen(
            ["/usr/bin/time", "-v", "-o", str(report), *argv], stdout=out, stderr=err, text=True
        )
        tree_peak = 0
        while running.poll() is None:
            tree_peak = max(tree_peak, tree_rss(running.pid))
            time.sleep(0.2)
        wall = time.perf_counter() - started
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read(), err.read()
    text = report.read_text()
    rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1)) * 1024
    cpu = sum(float(x) for x in re.findall(r"(?:User|System) time \(seconds\): ([\d.]+)", text))
    if running.returncode not in (0, 1):
        print(f"{argv[:4]} exited {running.returncode}:\n{stderr[-3000:]}", file=sys.stderr)
    summary = _summary(stdout)
    if summary:
        print(f"{' '.join(argv[3:5])}: {summary}", file=sys.stderr)
    if profile is not None and profile.with_suffix(".raw").exists():
        flat_profile(profile.with_suffix(".raw"), profile)
    return {"wall": wall, "rss": float(max(rss, tree_peak)), "cpu": cpu}


def tree_rss(root: int) -> int:
    """The resident bytes of process `root` and all its descendants now (Linux /proc)."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        parent = int(stat.rsplit(")", 1)[1].split()[1])
        children.setdefault(parent, []).append(int(entry))
    total, waiting = 0, [root]
    while waiting:
        pid = waiting.pop()
        waiting += children.get(pid, [])
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf(
                "SC_PAGE_SIZE"
            )
        except OSError:
            continue
    return total


def _summary(stdout: str) -> str:
    try:
        data = json.loads(stdout)
    except ValueError:
        return ""
    counts = data.get("counts") if isinstance(data, dict) else None
    return json.dumps(counts)[:400] if counts else ""


def flat_profile(raw: Path, out: Path) -> None:
    """Inclusive share of samples per function from py-spy's raw (collapsed) output."""
    inclusive: dict[str, int] = {}
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        n = int(count)
        total += n
        for frame in set(stack.split(";")):
            name = re.sub(r" \(.*?/(icp_engine|site-packages)/", r" (\1/", frame)
            inclusive[name] = inclusive.get(name, 0) + n
    top = sorted(inclusive.items(), key=lambda item: -item[1])[:80]
    out.write_text("".join(f"{100 * n / total:5.1f}% {name}\n" for name, n in top))
    print(f"profile: {out}", file=sys.stderr)


def prepare(directory: Path, accounts: int) -> Path:
    if (directory / "Opportunity.csv").exists():
        return directory
    from icp_engine.connectors.sample import write_sample_crm

    started = time.perf_counter()
    partial = directory.with_name(directory.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    if accounts <= ONE_MILLION:
        write_sample_crm(partial, accounts)
    else:  # a million at a time (10M at once would not fit), each with its own seed
        for number, start in enumerate(range(0, accounts, ONE_MILLION)):
            piece = partial / f"piece-{number}"
            write_sample_crm(piece, min(ONE_MILLION, accounts - start), seed=7 + number)
            for name in ("Account.csv", "Opportunity.csv"):
                with (piece / name).open("rb") as rows, (partial / name).open("ab") as whole:
                    if number:
                        rows.readline()  # the header, once
                    shutil.copyfileobj(rows, whole)
            shutil.rmtree(piece)
    partial.rename(directory)
    print(f"generated {directory} in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    return directory


def _stamp() -> str:
    now = datetime.now(UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def load_updates(source: Path) -> int:
    """Data Loader: the update file's non-blank cells into Account.csv, rows restamped.

    DuckDB joins the two files on disk (10 million accounts as pandas frames would not
    fit); rows keep their order, and blank cells stay blank (`#N/A` clears)."""
    import duckdb

    accounts, updates = source / "Account.csv", source / "icp_updates.csv"
    with duckdb.connect() as db:
        db.execute("SET memory_limit = '2GB'")
        db.execute("SET preserve_insertion_order = true")
        db.execute(f"SET temp_directory = '{source.parent / 'duckdb-tmp'}'")  # not the cwd
        columns = [r[0] for r in db.execute(f"DESCRIBE SELECT * FROM {_csv(accounts)}").fetchall()]
        given = {r[0] for r in db.execute(f"DESCRIBE SELECT * FROM {_csv(updates)}").fetchall()}
        loaded = db.execute(f"SELECT count(*) FROM {_csv(updates)}").fetchone()[0]

        stamp = _stamp()

        def cell(name: str) -> str:
            quoted = f'"{name}"'
            if name == "SystemModstamp":
                return f"CASE WHEN u.\"Id\" IS NULL THEN a.{quoted} ELSE '{stamp}' END AS {quoted}"
            if name in given and name != "Id":
                return (
                    f"CASE WHEN u.{quoted} IS NULL OR u.{quoted} = '' THEN a.{quoted} "
                    f"WHEN u.{quoted} = '#N/A' THEN NULL ELSE u.{quoted} END AS {quoted}"
                )
            return f"a.{quoted} AS {quoted}"

        select = ", ".join(cell(name) for name in columns)
        out = source / "Account.loaded.csv"
        db.execute(
            f"COPY (SELECT {select} FROM (SELECT *, row_number() OVER () AS __at "
            f'FROM {_csv(accounts)}) a LEFT JOIN {_csv(updates)} u ON a."Id" = u."Id" '
            f"ORDER BY a.__at) TO '{out}' (HEADER, DELIMITER ',')"
        )
    out.replace(accounts)
    return int(loaded)


def _csv(path: Path) -> str:
    return f"read_csv('{path}', all_varchar = true, header = true)"


def state_size(state: Path) -> int:
    """Bytes of every file in the state directory."""
    return sum(p.stat().st_size for p in state.rglob("*") if p.is_file())


def edit_accounts(source: Path, share: float) -> int:
    """A person edits `share` of the accounts: a new headcount, a fresh stamp."""
    import numpy as np
    import pandas as pd

    accounts = pd.read_csv(source / "Account.csv", dtype=str, keep_default_na=False)
    rng = np.random.default_rng(14)
    chosen = rng.choice(len(accounts), int(len(accounts) * share), replace=False)
    employees = accounts["NumberOfEmployees"].to_numpy(object).copy()
    employees[chosen] = rng.integers(5, 5000, len(chosen)).astype(str)
    accounts["NumberOfEmployees"] = employees
    stamps = accounts["SystemModstamp"].to_numpy(object).copy()
    stamps[chosen] = _stamp()
    accounts["SystemModstamp"] = stamps
    accounts.to_csv(source / "Account.csv", index=False, lineterminator="\n")
    return len(chosen)


def read_only(reader: str, export: Path) -> None:
    """The baseline: read both files fully, every column as text."""
    names = [export / "Account.csv", export / "Opportunity.csv"]
    if reader == "pyarrow":
        import pyarrow as pa
        from pyarrow import csv

        for path in names:
            with open(path, encoding="utf-8") as handle:
                header = handle.readline().rstrip("\n").split(",")
            options = csv.ConvertOptions(column_types=dict.fromkeys(header, pa.string()))
            table = csv.read_csv(path, convert_options=options)
            print(path.name, table.num_rows, file=sys.stderr)
    else:
        import duckdb

        for path in names:
            table = duckdb.sql(f"SELECT * FROM read_csv('{path}', all_varchar=true)")
            print(path.name, table.to_arrow_table().num_rows, file=sys.stderr)


if __name__ == "__main__":
    if len(sys.argv) == 4 and sys.argv[1] == "--read":
        read_only(sys.argv[2], Path(sys.argv[3]))
    else:
        os.nice(0)
        main()
