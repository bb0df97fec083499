"""The in-process CLI runner the end-to-end tests share: `icp(...)` runs one command and
returns (exit code, stdout, stderr); an unexpected exception propagates as a test failure."""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner
from icp_engine.sync.cli.main import main


def icp(*args: str | Path) -> tuple[int, str, str]:
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    return result.exit_code, result.stdout, result.stderr
