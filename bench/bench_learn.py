"""Evidence for the learned ICP (issue 5): `scoring.learn.train` on public and planted data.

    python bench/bench_learn.py DATA_DIR [--only maven,olist,ravenstack,planted,timing]
                                [--json] [--seeds 11,12,13] [--timing-runs 2] [--cores 2]

DATA_DIR holds `maven-crm/`, `olist-funnel/` and `ravenstack/` (e.g. `../shared/data`).

1. maven-crm: 85 accounts, thousands of repeat deals, flat win rates: must be no signal
   (`signal` false, the manual criteria unchanged). Run per deal (the honest unit for
   repeat-purchase data) and per account (refused: every account has a win).
2. olist-funnel: each MQL a lead-account; must find the lead-origin effect. Win rates by
   origin with Wilson intervals, the learned criteria and segments on `origin`, the
   sensitivity to the loss-dating horizon, and a leak control (won-only fields).
3. ravenstack: churn mapped onto won/lost, churn reasons as loss reasons, upgrades as
   expansion deals; what the engine finds and what does not fit.
4. planted: `tests/planted.py` with known structure: holdout AUC vs the oracle's AUC on
   the same holdout accounts, each planted pattern found or not, noise left out; plus
   a fresh-draw check of the final criteria and a no-signal control.
5. timing: `train` on 100,000 accounts / 300,000 opportunities in a child process pinned
   to 2 CPUs: best wall time of the runs and peak RSS; PASS below 60 s.

Tables go to stdout (stderr with `--json`, which prints one JSON object on stdout).
Exits 0 always: it reports, it is not a test.

Each section is a module beside this script (`learn_maven.py`, `learn_olist.py`,
`learn_ravenstack.py`, `learn_planted.py`, `learn_timing.py`); they share `learn_runs.py`
(running `train`), `learn_rules.py` (reading its rules) and `learn_tables.py` (console
output). `learn_data.py` holds the data adapters.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from icp_engine.scoring.learn.train import plain  # noqa: E402
from learn_maven import bench_maven  # noqa: E402
from learn_olist import bench_olist  # noqa: E402
from learn_planted import bench_planted  # noqa: E402
from learn_ravenstack import bench_ravenstack  # noqa: E402
from learn_tables import ci, console, heading, num, pct  # noqa: E402
from learn_timing import bench_timing, timing_child  # noqa: E402

SECTIONS = ("maven", "olist", "ravenstack", "planted", "timing")


def summary(figures: dict[str, Any], total: float) -> list[str]:
    lines = []
    if "maven" in figures:
        m = figures["maven"]
        d, a = m["deal"], m["account"]
        lines.append(
            f"maven-crm   per deal: {d.get('n_won', 0):,} won / {d.get('n_lost', 0):,} lost deals "
            f"of 85 accounts; holdout AUC {num(d.get('holdout_auc'))} "
            f"{ci(d.get('holdout_auc_ci'))}, "
            f"challenger {num(d.get('challenger_auc'))}; signal {d.get('signal')}; criteria "
            f"unchanged: {d.get('criteria_unchanged')} -> {'PASS' if m['pass'] else 'FAIL'}"
        )
        lines.append(
            f"            per account: {a.get('refused') or 'signal ' + str(a.get('signal'))}"
        )
    if "olist" in figures:
        o = figures["olist"]
        t = o["train"]
        lines.append(
            f"olist       {o['facts']['leads']:,} leads, {o['facts']['won']} won; lost dated first "
            f"contact + {o['horizon_days']} d; holdout {t.get('holdout_n_won')} won / "
            f"{t.get('holdout_n_lost')} lost, AUC {num(t.get('holdout_auc'))} "
            f"{ci(t.get('holdout_auc_ci'))}; signal {t.get('signal')}; features "
            f"{', '.join(t.get('features_used') or [])} -> {'PASS' if o['pass'] else 'FAIL'}"
        )
        rates = ", ".join(
            f"{r['value']} {pct(r['rate'])} {ci(r['ci'], 3)}"
            for r in sorted(o.get("win_rate_by_origin", []), key=lambda r: -r["rate"])
        )
        lines.append(f"            win rate by origin: {rates}")
        lines.append(
            "            origin in the learned criteria: "
            + "; ".join(
                f"{r['where']}: {r['rule']} ({r['points']})" for r in o.get("origin_rules", [])
            )
        )
        sens = "; ".join(
            f"H={s['horizon_days']}: AUC {num(s['holdout_auc'])} {ci(s['holdout_auc_ci'])} "
            f"signal {s['signal']}"
            for s in o.get("horizon_sensitivity", [])
        )
        lines.append(f"            horizon sensitivity: {sens}")
    if "ravenstack" in figures:
        r = figures["ravenstack"]
        ret, exp = r["retention"], r.get("expansion") or {}
        lines.append(
            f"ravenstack  retention (churn as lost): {ret.get('n_won')} / {ret.get('n_lost')}; "
            f"holdout AUC {num(ret.get('holdout_auc'))} {ci(ret.get('holdout_auc_ci'))}; signal "
            f"{ret.get('signal')}; segments {len(r.get('segments', []))}, loss patterns "
            f"{len(r.get('loss_patterns', []))}; expansion {exp.get('n_expanded')} of "
            f"{exp.get('n_customers')} customers: {exp.get('note') or 'AUC ' + num(exp.get('auc'))}"
        )
    if "planted" in figures:
        for run_ in figures["planted"]["runs"]:
            t = run_["train"]
            found = sum(c["found"] for c in run_["checks"])
            missed = [c["pattern"].split(":")[0] for c in run_["checks"] if not c["found"]]
            noisy = [
                f"{n_['field']} in {', '.join(n_['in_criteria'])}"
                for n_ in run_["noise"]
                if not n_["left_out"]
            ]
            lines.append(
                f"planted     seed {run_['seed']} ({run_['accounts']:,} accounts): holdout AUC "
                f"{t['holdout_auc']:.3f} {ci(t['holdout_auc_ci'])} vs oracle "
                f"{run_['oracle_holdout_auc']:.3f} {ci(run_['oracle_holdout_auc_ci'])}; found "
                f"{found}/{len(run_['checks'])} planted patterns"
                + (f" (missed: {', '.join(missed)})" if missed else "")
                + "; noise out of the scored criteria: "
                + ("yes" if not noisy else f"NO: {'; '.join(noisy)}")
                + f"; {t['seconds']:.1f} s"
            )
        first = figures["planted"]["runs"][0]
        for c in first["checks"]:
            if c["pattern"].split(":")[0] in ("sweet spot", "interaction", "emerging"):
                lines.append(
                    f"            {c['pattern']}: "
                    + (f"{c['where']}: {c['rule']}" if c["found"] else "NOT FOUND")
                )
        null = figures["planted"]["null_control"]
        lines.append(
            f"            no-signal control: signal {null['signal']}, AUC "
            f"{null['holdout_auc']:.3f} {ci(null['holdout_auc_ci'])}"
        )
    if "timing" in figures and "best_seconds" in figures["timing"]:
        t = figures["timing"]
        peak = t["memory_peak"]["vm_hwm_mb"] or t["memory_peak"]["ru_maxrss_mb"]
        lines.append(
            f"timing      train on {t['accounts']:,} accounts / {t['opportunities']:,} "
            f"opportunities, {t['cpus']} CPUs: best {t['best_seconds']:.1f} s of "
            f"{len(t['runs_seconds'])} ({', '.join(f'{s:.1f}' for s in t['runs_seconds'])}), "
            f"peak RSS {peak:.0f} MB -> {'PASS' if t['pass'] else 'FAIL'} (< 60 s)"
        )
    lines.append(f"total       {total:.0f} s")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "data_dir", type=Path, help="folder holding maven-crm/, olist-funnel/, ravenstack/"
    )
    parser.add_argument(
        "--only", default=",".join(SECTIONS), help=f"comma list of {', '.join(SECTIONS)}"
    )
    parser.add_argument(
        "--json", action="store_true", help="one JSON object on stdout (tables on stderr)"
    )
    parser.add_argument("--seeds", default="11,12,13", help="planted seeds")
    parser.add_argument("--planted-accounts", type=int, default=4000)
    parser.add_argument("--timing-accounts", type=int, default=100_000)
    parser.add_argument("--timing-opportunities", type=int, default=300_000)
    parser.add_argument("--timing-runs", type=int, default=2)
    parser.add_argument("--cores", type=int, default=2)
    parser.add_argument("--child-timing", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.child_timing:
        timing_child(args.timing_accounts, args.timing_opportunities, args.timing_runs, args.cores)
        return 0
    console.stderr = args.json
    only = [s.strip() for s in args.only.split(",") if s.strip()]
    unknown = set(only) - set(SECTIONS)
    if unknown:
        parser.error(
            f"--only: unknown {', '.join(sorted(unknown))}; choose from {', '.join(SECTIONS)}"
        )
    data = args.data_dir.resolve()
    figures: dict[str, Any] = {}
    started = time.perf_counter()
    sections: dict[str, Callable[[], dict[str, Any]]] = {
        "maven": lambda: bench_maven(data),
        "olist": lambda: bench_olist(data),
        "ravenstack": lambda: bench_ravenstack(data),
        "planted": lambda: bench_planted(
            [int(s) for s in args.seeds.split(",")], args.planted_accounts
        ),
        "timing": lambda: bench_timing(
            args.timing_accounts, args.timing_opportunities, args.timing_runs, args.cores
        ),
    }
    for name in SECTIONS:
        if name in only:
            start = time.perf_counter()
            figures[name] = sections[name]()
            figures[name]["section_seconds"] = time.perf_counter() - start
    total = time.perf_counter() - started
    heading("Summary (figures for the closing note)")
    lines = summary(figures, total)
    for line in lines:
        console.print(line, highlight=False, markup=False, soft_wrap=True)
    figures["summary"] = lines
    figures["command"] = " ".join(["python", "bench/bench_learn.py", *(argv or sys.argv[1:])])
    if args.json:
        print(json.dumps(plain(figures), indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
