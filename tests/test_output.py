"""What reaches people's terminals and schedulers' logs: redacted logs, JSON lines, progress."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest
from icp_engine.sync.logs import REDACTED, configure
from icp_engine.sync.progress import Progress, Reporter, progress_for


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


def test_secrets_from_the_environment_never_reach_the_log(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", "pat-na1-0123456789abcdef")
    monkeypatch.setenv("SF_PASSWORD", "hunter2hunter2")
    configure("text")
    logging.getLogger("icp_engine.connectors.hubspot").warning(
        "request failed: Authorization: Bearer %s (password %s)",
        "pat-na1-0123456789abcdef",
        "hunter2hunter2",
    )
    text = capsys.readouterr().err
    assert "0123456789abcdef" not in text and "hunter2" not in text
    assert text.count(REDACTED) == 2


def test_json_log_lines_for_schedulers(capsys: pytest.CaptureFixture[str]) -> None:
    configure("json", verbosity=1)
    logging.getLogger("icp_engine.sync.runner").debug("pulled %d accounts", 12)
    (line,) = capsys.readouterr().err.splitlines()
    entry = json.loads(line)
    assert entry["level"] == "debug"
    assert entry["logger"] == "sync.runner"
    assert entry["message"] == "pulled 12 accounts"


def test_quiet_keeps_only_warnings(capsys: pytest.CaptureFixture[str]) -> None:
    configure("text", verbosity=-1)
    logging.getLogger("sync").info("routine")
    logging.getLogger("sync").warning("attention")
    assert capsys.readouterr().err == "WARNING attention\n"


def test_progress_bars_only_on_a_terminal() -> None:
    # Changed by issue 18: one reporter whose mode follows the stream, the format and -q.
    configure("text")
    with progress_for(io.StringIO()) as quiet:
        assert quiet.mode == "silent"
    terminal = Terminal()
    with progress_for(terminal) as bars:
        assert isinstance(bars, Reporter) and bars.mode == "bars"
        bars.phase("write", 10)
        bars.advance(10)
        assert bars.bars is not None and bars.bars.tasks[0].completed == 10
    assert "Writing changes" in terminal.getvalue()
    configure("text", verbosity=-1)
    with progress_for(Terminal()) as quiet:
        assert quiet.mode == "silent"  # -q: no bars even on a terminal


def test_a_finished_stage_shows_what_it_counted(monkeypatch: pytest.MonkeyPatch) -> None:
    """A stage that met nothing says so ("0 rows"), not the full bar's "1 / 1 rows"."""
    monkeypatch.setenv("COLUMNS", "160")  # one line per stage
    configure("text")
    terminal = Terminal()
    with progress_for(terminal) as bars:
        with bars.stage("Reading changes to accounts", None, "rows"):
            pass
        with bars.stage("Reading changes to opportunities", None, "rows") as read:
            read.advance(52_207)
    shown = terminal.getvalue()
    assert "1 / 1" not in shown
    assert "Reading changes to accounts" in shown and "0 rows" in shown
    assert "52,207 / 52,207 rows" in shown


def test_progress_events_in_json_logs(capsys: pytest.CaptureFixture[str]) -> None:
    configure("json")
    with progress_for(io.StringIO()) as events, events.stage("Reading accounts", 5, "rows") as s:
        s.advance(5)
    entries = [json.loads(line) for line in capsys.readouterr().err.splitlines()]
    assert [(e["event"], e["status"]) for e in entries] == [
        ("progress", "started"),
        ("progress", "done"),
    ]
    assert entries[-1]["done"] == 5 and entries[-1]["total"] == 5


@pytest.mark.parametrize(
    "module", ["sync.runner", "sync.pull", "sync.progress", "sync.cli.render", "sync.cli.preview"]
)
@pytest.mark.slow
def test_each_module_imports_on_its_own(module: str) -> None:
    # No import cycles (DESIGN.md): each module loads first, in a fresh interpreter.
    import subprocess
    import sys

    argv = [sys.executable, "-c", f"import icp_engine.{module}"]
    done = subprocess.run(argv, check=False, capture_output=True)
    assert done.returncode == 0, done.stderr.decode()
    assert issubclass(Reporter, Progress)
