"""Run the `icp` CLI from a scheduler: exit codes and the `--json` summary are the contract.

Shared by `airflow_dag.py` and `dagster_assets.py` (copy it next to them). No scheduler
import here, so the same rules hold in Airflow, Dagster, Prefect or a cron wrapper:

| exit | meaning (DESIGN.md)                                    | what the scheduler does   |
| ---- | ------------------------------------------------------ | ------------------------- |
| 0    | done                                                   | success                   |
| 1    | finished, some records failed (kept, retried next run) | success with a warning    |
| 2    | bad configuration or usage; nothing was written        | fail, do not retry        |
| 3    | cannot reach or authenticate to the CRM                | fail, retry later         |
| 4    | another run holds the lock                             | skip this run             |
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from dataclasses import dataclass, field
from typing import Any

OK, PARTIAL, BAD_CONFIG, UNREACHABLE, LOCKED = 0, 1, 2, 3, 4


@dataclass
class IcpRun:
    """What one `icp ... --json` run said."""

    args: list[str]
    exit_code: int
    summary: dict[str, Any] = field(default_factory=dict)
    log: str = ""

    @property
    def outcome(self) -> str:
        """`ok`, `partial`, `skipped`, `retry` or `fail`: what the scheduler should do."""
        return {OK: "ok", PARTIAL: "partial", LOCKED: "skipped", UNREACHABLE: "retry"}.get(
            self.exit_code, "fail"
        )


def run_icp(*args: str, env: dict[str, str] | None = None, timeout: float = 3600) -> IcpRun:
    """Run `icp ARGS --json --log-format json`; credentials come from the environment.

    The summary (stdout) is parsed; the logs (stderr, JSON lines) are kept for the task
    log. Nothing secret is passed on the command line.
    """
    icp = shutil.which("icp")
    program = [icp] if icp else [sys.executable, "-m", "icp_engine.sync.cli"]
    command = [*program, *args, "--json", "--log-format", "json"]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        env={**os.environ, **(env or {})},
        timeout=timeout,
        check=False,
    )
    try:
        summary = json.loads(done.stdout) if done.stdout.strip() else {}
    except json.JSONDecodeError:
        summary = {"stdout": done.stdout[-2000:]}
    return IcpRun(list(args), done.returncode, summary, done.stderr[-20000:])
