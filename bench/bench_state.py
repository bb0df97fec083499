"""A CSV sync of N accounts with the state on SQLite, then on PostgreSQL (`ICP_STATE_URL`).

    python bench/bench_state.py [--accounts 20000] [--url postgresql://...]

Each backend gets a fresh copy of the same sample export (`connectors.sample`) and runs,
through the real CLI in a child process: a first `icp sync` (everything pulled, scored,
handed over and stored), a second `icp sync` with nothing changed (the incremental path:
mirror, last-written values and pending changes read back), and `icp status --json`.
Wall time of each. Without `--url` a throwaway PostgreSQL server is started on a Unix
socket (tests/pgserver.py; the Debian `postgresql` package), so the figures show the
state's own cost, not a network's. A report, not a test: it always exits 0.
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from icp_engine.connectors.sample import write_sample_crm  # noqa: E402


def timed(argv: list[str], env: dict[str, str]) -> float:
    started = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "icp_engine.sync.cli", *argv],
        env=env,
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    took = time.perf_counter() - started
    if done.returncode != 0:
        print(f"  {' '.join(argv[:3])}: exit {done.returncode}\n{done.stderr[-2000:]}")
    return took


@contextmanager
def postgres(url: str | None) -> Iterator[str]:
    if url:
        yield url
        return
    from tests.pgserver import postgres_server

    with postgres_server() as started:
        yield started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=20_000)
    parser.add_argument("--url", help="a PostgreSQL URL (default: a throwaway local server)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as scratch, postgres(args.url) as url:
        base = Path(scratch) / "base"
        info = write_sample_crm(base, accounts=args.accounts, seed=3)
        print(f"{info.accounts:,} accounts, {info.opportunities:,} opportunities (CSV export)")
        schema = f"bench_{uuid.uuid4().hex[:8]}"
        joiner = "&" if "?" in url else "?"
        backends = {
            "sqlite": None,
            "postgresql": f"{url}{joiner}schema={schema}",
        }
        print(f"{'backend':<11} {'first sync':>11} {'second sync':>12} {'status':>8}")
        for name, state_url in backends.items():
            export, state = Path(scratch) / name / "export", Path(scratch) / name / "state"
            shutil.copytree(base, export)
            env = {k: v for k, v in os.environ.items() if k != "ICP_STATE_URL"}
            if state_url:
                env["ICP_STATE_URL"] = state_url
            sync = ["sync", "--crm", "csv", "--source", str(export), "--state", str(state), "-q"]
            first = timed(sync, env)
            second = timed(sync, env)
            status = timed(["status", "--state", str(state), "--json"], env)
            print(f"{name:<11} {first:>10.1f}s {second:>11.1f}s {status:>7.1f}s")


if __name__ == "__main__":
    main()
