"""Write throughput and API calls of the HubSpot connector against the fake portal at its
rate limit.

    python bench/bench_hubspot.py [--companies 12000] [--deals-per-company 1]
                                  [--rate 100] [--interval 10] [--latency 0.02]

The fake portal (`tests/fakes/hubspot.py`) allows `--rate` calls per `--interval` seconds
(HubSpot's ten-secondly window, with its `X-HubSpot-RateLimit-*` headers and 429
`TEN_SECONDLY_ROLLING` answers), search at 5 requests per second, and answers every call
after `--latency` seconds. The engine runs through the runner (what `icp backfill` and
`icp sync --crm hubspot` call) with the bundled `hubspot.yaml` (default settings: 100
calls per 10 s until the headers say otherwise, search 4/s, 4 concurrent writers).

1. backfill of every company, with the pull phase and the write phase timed apart. The
   pull spends the same budget as the writes (one call per list page of 100 companies
   or deals), so the write phase starts with a window holding the pull's recent calls;
2. an incremental run that reads back what the backfill wrote (its own writes bumped
   `hs_lastmodifieddate`), and writes nothing;
3. an incremental run with nothing changed. It still reads back every record modified
   in the `search_overlap` (60 s) before the watermark: here, the whole backfill;
4. the same with `search_overlap: 0` given to the connector only: what an unchanged run
   costs once the last changes lie more than `search_overlap` before the watermark.

Reported: companies written per second in the write phase vs the bound (calls per second
allowed x 100), and vs the earliest the limit allows for those calls given the pull's
calls still in the window when writing began; 429s received; write calls vs
`ceil(changed / 100)` and vs a per-record writer (one call per company); total calls and
wall time. Targets: >= 90% of the bound, no failed run, write calls <= 1.02 x the
minimum, zero writes when nothing changed. Exits 1 when a target is missed.
"""

from __future__ import annotations

import argparse
import bisect
import itertools
import logging
import math
import os
import sys
import tempfile
import threading
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from icp_engine import connectors  # noqa: E402
from icp_engine.connectors.hubspot.connector import HubSpotSettings  # noqa: E402
from icp_engine.sync.config import load_config  # noqa: E402
from icp_engine.sync.runner import Progress, RunOptions, RunResult, execute  # noqa: E402

from tests.fakes.hubspot import FakeHubSpot, StrictClock  # noqa: E402
from tests.hsdata import seed_portal  # noqa: E402

BATCH = 100
WRITE_PATH = "/batch/update"


class Timing(Progress):
    """When each phase started, and when its last unit of work was done."""

    def __init__(self) -> None:
        self.started: dict[str, float] = {}
        self.last: dict[str, float] = {}
        self.current = ""

    def phase(self, name: str, total: int | None = None) -> None:
        self.current = name
        self.started[name] = self.last[name] = time.monotonic()

    def advance(self, amount: int) -> None:
        self.last[self.current] = time.monotonic()

    def seconds(self, name: str) -> float:
        return self.last.get(name, 0.0) - self.started.get(name, 0.0)


class Arrivals:
    """When each request reached the fake portal (monotonic seconds), and its path."""

    def __init__(self, portal: FakeHubSpot) -> None:
        self.seen: list[tuple[float, str]] = []
        self._lock = threading.Lock()
        gateway = portal._gateway  # the bench's own instrument; the fake stays unchanged
        serve = gateway.serve

        def timed(method: str, target: str, headers: Any, body: bytes) -> Any:
            with self._lock:
                self.seen.append((time.monotonic(), target.split("?", maxsplit=1)[0]))
            return serve(method, target, headers, body)

        gateway.serve = timed  # type: ignore[method-assign]


def earliest(prior: list[float], calls: int, start: float, rate: int, interval: float) -> float:
    """When the last of `calls` calls could be sent at the soonest, from `start`, with no
    more than `rate` calls in any `interval` seconds, given the calls sent at `prior`."""
    sent = sorted(t for t in prior if t > start - interval)
    when = start
    for _ in range(calls):
        while True:
            inside = len(sent) - bisect.bisect_right(sent, when - interval)
            if inside < rate:
                break
            when = sent[len(sent) - inside] + interval + 1e-9
        sent.append(when)
    return when


def seed(portal: FakeHubSpot, companies: int, deals_per_company: float) -> list[str]:
    """Companies and deals last modified over the past minutes, a millisecond apart (the
    fake stamps each record 1 ms after the one before); then the portal keeps real time."""
    ticks = itertools.count()
    records = companies * (1 + deals_per_company)
    start = datetime.now(UTC) - timedelta(milliseconds=records + 60_000)
    portal.clock = lambda: start + timedelta(milliseconds=next(ticks))
    ids = seed_portal(portal, companies, deals_per_company)
    portal.clock = StrictClock()
    return ids


def calls_of(portal: FakeHubSpot, start: int) -> dict[str, int]:
    seen = portal.requests[start:]
    return {
        "write": sum(1 for r in seen if r.path.endswith(WRITE_PATH)),
        "search": sum(1 for r in seen if r.path.endswith("/search")),
        "associations": sum(1 for r in seen if r.path.startswith("/crm/v4/associations")),
        "list": sum(1 for r in seen if r.method == "GET" and "/crm/v3/objects/" in r.path),
        "429": sum(1 for r in seen if r.status == 429),
        "all": len(seen),
    }


def run(
    portal: FakeHubSpot, state: Path, kind: str, **settings: Any
) -> tuple[RunResult, Timing, dict[str, int], float]:
    """One run through the runner (as `icp <kind> --crm hubspot` does), timed by phase.

    `settings` override the connector's settings only (the mapping's fingerprint, which
    decides whether a run is full, stays that of the bundled file).
    """
    config = load_config("hubspot", None, state)
    mapping = config.mapping
    if settings:
        mapping = mapping.model_copy(update={"settings": {**mapping.settings, **settings}})
    connector = connectors.create("hubspot", mapping)
    timing = Timing()
    mark = len(portal.requests)
    started = time.monotonic()
    options = RunOptions("hubspot", kind, state)  # type: ignore[arg-type]
    result = execute(config, options, timing, connector)
    elapsed = time.monotonic() - started
    return result, timing, calls_of(portal, mark), elapsed


def main_bench() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--companies", type=int, default=12_000)
    parser.add_argument("--deals-per-company", type=float, default=1.0)
    parser.add_argument("--rate", type=int, default=100, help="calls allowed per interval")
    parser.add_argument("--interval", type=float, default=10.0, help="seconds")
    parser.add_argument("--latency", type=float, default=0.02, help="seconds per call")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, format="  [log] %(name)s: %(message)s")
    per_second = args.rate / args.interval
    bound = per_second * BATCH
    failed_runs: list[str] = []

    with (
        tempfile.TemporaryDirectory() as folder,
        FakeHubSpot(rate_limit=args.rate, interval=args.interval, latency=args.latency) as portal,
    ):
        started = time.perf_counter()
        ids = seed(portal, args.companies, args.deals_per_company)
        deals = len(portal.objects("deals"))
        print(
            f"seeded {len(ids):,} companies and {deals:,} deals in "
            f"{time.perf_counter() - started:.1f} s; fake portal: {args.rate} calls per "
            f"{args.interval:g} s ({per_second:g}/s), search 5/s, {args.latency * 1000:.0f} ms "
            f"a call"
        )
        os.environ.update(HUBSPOT_ACCESS_TOKEN=portal.token, HUBSPOT_BASE_URL=portal.base_url)
        state = Path(folder) / "state"
        arrivals = Arrivals(portal)

        # 1. backfill
        print()
        print("backfill:")
        limited = portal.rate_limited
        result, timing, calls, elapsed = run(portal, state, "backfill")
        if result.exit_code != 0:
            failed_runs.append(f"backfill exit {result.exit_code}: {result.message}")
        changed = result.counts["records_to_write"]
        written = result.counts.get("written", 0)
        rate_429 = portal.rate_limited - limited
        pull_calls = calls["all"] - calls["write"]
        pull_s, write_s = timing.seconds("pull"), timing.seconds("write")
        scoring_s = timing.started["write"] - timing.last["pull"]
        per_s = written / write_s if write_s else 0.0
        minimum = math.ceil(changed / BATCH)
        ratio = calls["write"] / minimum if minimum else float(calls["write"] == 0)

        # the soonest the limit lets these writes go, given the pull's calls in the window
        begin = timing.started["write"]
        prior = [t for t, _ in arrivals.seen if t < begin]
        writes = [t for t, path in arrivals.seen if path.endswith(WRITE_PATH) and t >= begin]
        in_window = sum(1 for t in prior if t > begin - args.interval)
        ideal = earliest(prior, len(writes), begin, args.rate, args.interval) - begin
        actual = (writes[-1] - begin) if writes else 0.0
        # below a second of waiting the limit did not hold the writes back: nothing to judge
        efficiency = min(1.0, ideal / actual) if ideal >= 1.0 and actual > 0 else 1.0

        print(f"  exit {result.exit_code}, {written:,} of {changed:,} companies written")
        print(
            f"  pull phase : {pull_calls:>5} calls (connect + list pages of 100 companies and"
            f" deals) in {pull_s:5.1f} s = {pull_calls / pull_s if pull_s else 0:.1f} calls/s"
        )
        print(f"  score+plan : {scoring_s:5.1f} s, no calls")
        print(
            f"  write phase: {calls['write']:>5} batch updates in {write_s:5.1f} s"
            f" = {per_s:,.0f} companies/s vs bound {bound:,.0f}/s"
            f" ({per_second:g} calls/s x {BATCH}) = {per_s / bound:.1%}"
        )
        print(
            f"  the pull spends the same budget: {in_window} of its calls were still in the"
            f" {args.interval:g} s window when writing began; with them the limit lets the"
            f" last write go after {ideal:.1f} s at the soonest, it went after {actual:.1f} s"
            + (f" = {efficiency:.1%} of what the limit allows" if ideal >= 1.0 else "")
        )
        print(f"  429s received: {rate_429} (calls answered 429: {calls['429']})")
        print(
            f"  write calls {calls['write']} vs minimum ceil({changed}/{BATCH}) = {minimum}"
            f" -> {ratio:.3f}x; a per-record writer: {changed:,} calls"
            f" (~{changed / per_second / 60:,.0f} min at the limit)"
        )
        print(
            f"  total calls {result.api_calls} (the fake counted {calls['all']}); wall"
            f" {elapsed:.1f} s; the limit alone needs >= "
            f"{(calls['all'] - 1) // args.rate * args.interval:g} s for {calls['all']} calls"
        )

        # 2.-4. incremental runs
        incremental: list[dict[str, Any]] = []
        overlap = HubSpotSettings().search_overlap
        for label, settings in (
            ("incremental, reading back the backfill's writes", {}),
            (f"incremental, nothing changed (search_overlap {overlap:g} s)", {}),
            (
                "incremental, nothing changed, last changes older than the overlap"
                " (search_overlap 0)",
                {"search_overlap": 0},
            ),
        ):
            print()
            print(f"{label}:")
            limited = portal.rate_limited
            result, timing, calls, elapsed = run(portal, state, "sync", **settings)
            if result.exit_code != 0:
                failed_runs.append(f"{label}: exit {result.exit_code}: {result.message}")
            row = {
                "pulled": result.counts["accounts_pulled"],
                "to_write": result.counts["records_to_write"],
                "writes": calls["write"],
            }
            incremental.append(row)
            print(
                f"  exit {result.exit_code}, {row['pulled']:,} companies and"
                f" {result.counts['opportunities_pulled']:,} deals read,"
                f" {row['to_write']} to write, {row['writes']} write calls"
            )
            print(
                f"  calls {result.api_calls} (search {calls['search']}, associations"
                f" {calls['associations']}, list/archive {calls['list']});"
                f" 429s {portal.rate_limited - limited}; wall {elapsed:.1f} s"
            )

    checks = {
        f"write phase >= 90% of the bound ({per_s / bound:.0%}; {efficiency:.0%} of what"
        " the limit allows after the pull)": per_s >= 0.9 * bound and efficiency >= 0.9,
        "no failed run": not failed_runs,
        f"write calls <= 1.02 x minimum ({ratio:.3f}x)": ratio <= 1.02,
        "zero writes when nothing changed": all(
            r["writes"] == 0 and r["to_write"] == 0 for r in incremental
        ),
    }
    print()
    for problem in failed_runs:
        print(f"  failed run: {problem}")
    for name, ok in checks.items():
        print(f"{'PASS' if ok else 'FAIL'}  {name}")
    if not all(checks.values()):
        raise SystemExit(1)


if __name__ == "__main__":
    main_bench()
