"""Benchmark: how long the mapping editor takes to answer an edit on a large export.

Each keystroke in the editor page (debounced) costs one `/api/check`: apply the edits to
the YAML, validate, and score the export's accounts before/after. Target: a weight edit
answers within 0.5 s and a value-map edit within 2 s on 50,000 accounts (2 cores), so the
preview keeps up with typing.

    python bench/bench_editor.py [--accounts N] [--repeat R]

Prepares (not timed) a sample export of N accounts and the bundled csv.yaml/icp.yaml in a
temp dir, opens an `EditorSession`, then times R rounds of check + preview for a weight
edit and for a value-map edit (best and median). Prints a table with PASS/FAIL. Exits 0.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

from icp_engine import mappings
from icp_engine.connectors.sample import write_sample_crm
from icp_engine.sync.editor.session import EditorSession
from icp_engine.sync.mapedit import Edit
from icp_engine.sync.sourcedata import from_export

TARGETS = {"weight edit": 0.5, "value-map edit": 2.0}


def timed(action: Callable[[], object], repeat: int) -> list[float]:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append(time.perf_counter() - start)
    return times


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--accounts", type=int, default=50_000)
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="icp-bench-editor-") as tmp:
        root = Path(tmp)
        write_sample_crm(root / "export", accounts=args.accounts)
        (root / "mappings").mkdir()
        for name in ("csv.yaml", "icp.yaml"):
            text = mappings.default(name).read_text(encoding="utf-8")
            (root / "mappings" / name).write_text(text, encoding="utf-8")
        start = time.perf_counter()
        data = from_export({"account": "Account", "opportunity": "Opportunity"}, root / "export")
        session = EditorSession("csv", root / "mappings", data)
        opened = time.perf_counter() - start
        weights = iter(f"0.{n % 9 + 1}" for n in range(args.repeat * 2))
        spellings = iter(f"Hospitality {n}" for n in range(args.repeat * 2))

        def weight_edit() -> object:
            checked = session.check([Edit("weight", next(weights), group="must_have", index=0)])
            return session.preview(checked.config)

        def value_edit() -> object:
            edit = Edit("value", next(spellings), name="industry", canonical="Media")
            checked = session.check([edit])
            return session.preview(checked.config)

        results = {
            "weight edit": timed(weight_edit, args.repeat),
            "value-map edit": timed(value_edit, args.repeat),
        }
    print(
        f"{args.accounts:,} accounts; opening the editor (read + profile + score): {opened:.2f} s"
    )
    print(f"{'edit':<16}{'best s':>8}{'median s':>10}{'target s':>10}  result")
    for name, times in results.items():
        best, median = min(times), statistics.median(times)
        verdict = "PASS" if median <= TARGETS[name] else "FAIL"
        print(f"{name:<16}{best:>8.2f}{median:>10.2f}{TARGETS[name]:>10.1f}  {verdict}")


if __name__ == "__main__":
    main()
