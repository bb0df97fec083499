"""Peak memory per phase of one `icp` command (issue 14): where a run's memory goes.

    python bench/phase_memory.py backfill --crm csv --source EXPORT --state STATE -q

Runs the real CLI in this process and, at every progress stage boundary (the runner's
phases pull, score, plan, write, save, and the finer stages inside them such as "Reading
accounts"), reads the peak resident size since the previous boundary (`VmHWM`), then resets
it (`/proc/self/clear_refs`). At the end it prints, per span between two boundaries, the
stages open then, the peak RSS in the span, the RSS at its end and the seconds it took.
Linux only (it reads `/proc/self/status`); the command's own output goes where it always
does, the table to stderr.
"""

from __future__ import annotations

import contextlib
import sys
import time
from pathlib import Path

MB = 1024 * 1024


def _status(key: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1]) * 1024
    return 0


def main() -> None:
    from icp_engine.sync import progress
    from icp_engine.sync.cli.main import main as cli

    spans: list[tuple[str, int, int, float]] = []
    state = {"label": "start (imports, config, state)", "since": time.perf_counter()}

    def boundary(reporter: progress.Reporter) -> None:
        peak, now = _status("VmHWM"), _status("VmRSS")
        spans.append((state["label"], peak, now, time.perf_counter() - state["since"]))
        with contextlib.suppress(OSError):
            Path("/proc/self/clear_refs").write_text("5")
        names = [stage.name for stage in reporter.open]
        state["label"] = " > ".join(names) if names else "(between stages)"
        state["since"] = time.perf_counter()

    start, finish = progress.Reporter.start, progress.Reporter.finish

    def start_(self, *args, **kwargs):  # type: ignore[no-untyped-def]
        stage = start(self, *args, **kwargs)
        boundary(self)
        return stage

    def finish_(self, stage):  # type: ignore[no-untyped-def]
        finish(self, stage)
        boundary(self)

    progress.Reporter.start = start_  # type: ignore[method-assign]
    progress.Reporter.finish = finish_  # type: ignore[method-assign]
    sys.argv = ["icp", *sys.argv[1:]]
    code = 0
    try:
        cli()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    finally:
        spans.append((state["label"] + " (to exit)", _status("VmHWM"), _status("VmRSS"), 0.0))
        print(f"{'span':<60} {'peak MB':>8} {'end MB':>8} {'s':>6}", file=sys.stderr)
        for label, peak, now, seconds in spans:
            if seconds < 0.05 and label.startswith("(between"):
                continue
            line = f"{label[:60]:<60} {peak / MB:8.0f} {now / MB:8.0f} {seconds:6.1f}"
            print(line, file=sys.stderr)
    sys.exit(code)


if __name__ == "__main__":
    main()
