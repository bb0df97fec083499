"""What reaches people's terminals and schedulers' logs: redacted logs, JSON lines, progress."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from sync.logs import REDACTED, configure
from sync.progress import RichProgress, progress_for
from sync.runner import Progress


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
    logging.getLogger("connectors.hubspot").warning(
        "request failed: Authorization: Bearer %s (password %s)",
        "pat-na1-0123456789abcdef",
        "hunter2hunter2",
    )
    text = capsys.readouterr().err
    assert "0123456789abcdef" not in text and "hunter2" not in text
    assert text.count(REDACTED) == 2


def test_json_log_lines_for_schedulers(capsys: pytest.CaptureFixture[str]) -> None:
    configure("json", verbosity=1)
    logging.getLogger("sync.runner").debug("pulled %d accounts", 12)
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
    with progress_for(io.StringIO()) as quiet:
        assert type(quiet) is Progress
    terminal = Terminal()
    with progress_for(terminal) as bars:
        assert isinstance(bars, RichProgress)
        bars.phase("write", 10)
        bars.advance(10)
        assert bars.bars.tasks[0].completed == 10
