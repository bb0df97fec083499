"""What a long step shows while it works: bars on a terminal, events in JSON logs.

Every step that can take more than a moment (generating the demo, reading a CRM, learning,
scoring, planning, writing, rendering the report) opens a *stage*: a name, an amount done
and, when known, a total. One `Reporter` per command decides how stages are shown:

- on a terminal, with text logs: rich bars on stderr (what, how far, how long is left);
- with `--log-format json`: `{"event": "progress", ...}` log lines when a stage starts,
  every few seconds while it runs, and when it ends (with its duration);
- otherwise (a pipe, a file, cron, or `-q`): nothing.

In every mode a stage's duration goes to the debug log (`-v`: timings per stage).
Code deep in the engine reaches the command's reporter through `current()`, so nothing
has to pass it down; outside a command `current()` is a reporter that shows nothing.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Literal, Protocol, TextIO

from icp_engine.sync import numbers
from icp_engine.sync.logs import log_format
from icp_engine.sync.state.meta import pace_key
from rich.console import Console
from rich.progress import (
    BarColumn,
    ProgressColumn,
    SpinnerColumn,
    Task,
    TaskID,
    TextColumn,
    TimeElapsedColumn,
)
from rich.progress import Progress as Bars
from rich.text import Text

log = logging.getLogger("icp.progress")
Mode = Literal["bars", "events", "silent"]
EVENT_EVERY = 5.0
"""Seconds between two progress events of one stage in a JSON log (a heartbeat when the
stage counts nothing, such as the model fit)."""

PHASES = {
    "pull": None,  # pull_object opens one stage per object: "Reading accounts"
    "sort": "Sorting what was read, on disk",
    "slices": "Scoring and handing over",
    "score": "Scoring accounts",
    "plan": "Comparing with the CRM",
    "write": "Writing changes",
    "save": "Saving state",
    "done": None,  # the last phase ended
}
"""How the runner's phases read on screen (None: shown by finer stages)."""


class Progress:
    """The hooks a run reports its phases through (`sync.runner.execute` takes one)."""

    def phase(self, name: str, total: int | None = None) -> None:
        """A new phase starts (`total` units, if known)."""

    def advance(self, amount: int) -> None:
        """`amount` more units of the current phase are done."""


class _Amount(ProgressColumn):
    """`1,200 / 5,000 records` or `1,200 records` when the total is unknown."""

    def render(self, task: Task) -> Text:
        unit = task.fields.get("unit", "")
        if not unit:
            return Text("")
        if task.fields.get("counted") == 0:  # a finished stage that met nothing
            return Text(f"0 {unit}", style="progress.download")
        done = f"{int(task.completed):,}"
        text = f"{done} / {int(task.total):,} {unit}" if task.total else f"{done} {unit}"
        return Text(text, style="progress.download")


class _Left(ProgressColumn):
    """`about 1 min 05 s left` once a rate is known; blank without a total."""

    def render(self, task: Task) -> Text:
        if task.finished:
            return Text("done", style="green")
        expected = task.fields.get("expected")
        if not task.total and expected is not None:
            left = expected - (task.elapsed or 0.0)
            if left <= 0:
                return Text("taking longer than last time", style="progress.remaining")
            text = f"~{numbers.duration(left)} left (last time {numbers.duration(expected)})"
            return Text(text, style="progress.remaining")
        remaining = task.time_remaining
        if not task.total or remaining is None:
            return Text("")
        return Text(f"about {numbers.duration(remaining)} left", style="progress.remaining")


def _amount(value: int | None, unit: str) -> str:
    """`1 row`, `2,000 rows`."""
    return numbers.count(value, unit.removesuffix("s"), unit)


class Stage:
    """One step under way: call `advance(n)` as work is done."""

    def __init__(
        self,
        reporter: Reporter,
        name: str,
        total: int | None,
        unit: str,
        expected: float | None = None,
    ) -> None:
        self.reporter, self.name, self.total, self.unit = reporter, name, total, unit
        self.expected = expected
        """Seconds the same step took last time, scaled to this one (a step with no
        countable units still says how long is left)."""
        self.done = 0
        self.started = time.monotonic()
        self.last_event = self.started
        self.task: TaskID | None = None

    def advance(self, amount: int = 1) -> None:
        self.done += amount
        self.reporter._advanced(self, amount)

    def set_total(self, total: int | None) -> None:
        self.total = total
        if self.task is not None and self.reporter.bars is not None:
            self.reporter.bars.update(self.task, total=total)

    @property
    def seconds(self) -> float:
        return time.monotonic() - self.started

    def figures(self) -> dict[str, object]:
        seconds = round(self.seconds, 3)
        figures: dict[str, object] = {"stage": self.name, "done": self.done}
        if self.total is not None:
            figures["total"] = self.total
        if self.unit:
            figures["unit"] = self.unit
        figures["seconds"] = seconds
        if self.total and self.done and seconds > 0:
            rate = self.done / seconds
            figures["seconds_left"] = round(max(self.total - self.done, 0) / rate, 1)
        elif self.expected is not None:
            figures["seconds_left"] = round(max(self.expected - seconds, 0.0), 1)
        return figures


class Reporter(Progress):
    """Shows the stages of one command in one of three modes (see the module docstring).

    It also takes the runner's `phase`/`advance` hooks: a phase is a stage that ends
    when the next phase starts or the reporter closes.
    """

    def __init__(self, mode: Mode = "silent", stream: TextIO | None = None) -> None:
        self.mode: Mode = mode
        self.stream = stream
        self.bars: Bars | None = None
        self.open: list[Stage] = []
        self._phase: Stage | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._beat: threading.Thread | None = None

    # -- stages --------------------------------------------------------------------------
    @contextmanager
    def stage(
        self, name: str, total: int | None = None, unit: str = "", expected: float | None = None
    ) -> Iterator[Stage]:
        """Open a stage for the duration of the `with` block."""
        stage = self.start(name, total, unit, expected)
        try:
            yield stage
        finally:
            self.finish(stage)

    def start(
        self, name: str, total: int | None = None, unit: str = "", expected: float | None = None
    ) -> Stage:
        stage = Stage(self, name, total, unit, expected)
        self.open.append(stage)
        if self.mode == "bars":
            if self.bars is None:
                self.bars = _bars(self.stream)
                self.bars.start()
            stage.task = self.bars.add_task(name, total=total, unit=unit, expected=expected)
        elif self.mode == "events":
            self._event(stage, "started")
            if self._beat is None:  # a step that counts nothing still shows it is alive
                self._beat = threading.Thread(target=self._heartbeat, daemon=True)
                self._beat.start()
        return stage

    def finish(self, stage: Stage) -> None:
        if stage not in self.open:
            return
        self.open.remove(stage)
        amount = f"{_amount(stage.done, stage.unit)}, " if stage.unit else ""
        log.debug("%s: %sdone in %s", stage.name, amount, numbers.duration(stage.seconds))
        if self.mode == "events":
            self._event(stage, "done")
        if self.bars is not None and stage.task is not None:
            full = stage.done or 1  # (rich divides by the total); the count shown is true
            self.bars.update(stage.task, total=full, completed=full, counted=stage.done)
            if not self.open:
                self.bars.stop()
                self.bars = None

    def close(self) -> None:
        for stage in list(reversed(self.open)):
            self.finish(stage)
        self._stop.set()
        if self._beat is not None:
            self._beat.join()

    def _heartbeat(self) -> None:
        """In JSON logs: a `running` event for every stage silent for `EVENT_EVERY` s."""
        while not self._stop.wait(EVENT_EVERY / 5):
            for stage in list(self.open):
                if time.monotonic() - stage.last_event >= EVENT_EVERY:
                    self._event(stage, "running")

    def _advanced(self, stage: Stage, amount: int) -> None:
        if self.bars is not None and stage.task is not None:
            self.bars.advance(stage.task, amount)
        elif self.mode == "events" and time.monotonic() - stage.last_event >= EVENT_EVERY:
            self._event(stage, "running")

    def _event(self, stage: Stage, status: str) -> None:
        with self._lock:  # the heartbeat thread and the work may both report a stage
            if status == "running" and stage not in self.open:
                return
            stage.last_event = time.monotonic()
            self._log_event(stage, status)

    def _log_event(self, stage: Stage, status: str) -> None:
        figures = stage.figures()
        amount = ""
        if stage.unit and status != "started":
            of = f"{numbers.count(stage.done)} of " if stage.total is not None else ""
            amount = " " + of + _amount(stage.total if of else stage.done, stage.unit)
        log.info(
            "%s: %s%s",
            stage.name,
            status,
            amount,
            extra={"event": "progress", "data": {"status": status, **figures}},
        )

    # -- the runner's hooks ----------------------------------------------------------------
    def phase(self, name: str, total: int | None = None) -> None:
        if self._phase is not None:
            self.finish(self._phase)
            self._phase = None
        label = PHASES.get(name, name)
        if label is not None:
            self._phase = self.start(label, total, "records" if total is not None else "")

    def advance(self, amount: int) -> None:
        if self._phase is not None:
            self._phase.advance(amount)


def _bars(stream: TextIO | None) -> Bars:
    console = Console(file=stream, stderr=stream is None)
    return Bars(
        SpinnerColumn(finished_text="[green]✓[/]"),
        TextColumn("[progress.description]{task.description}"),
        BarColumn(bar_width=30),
        _Amount(),
        TimeElapsedColumn(),
        _Left(),
        console=console,
        transient=False,
        redirect_stdout=False,
        redirect_stderr=True,
    )


_running = [Reporter()]
"""The reporters of the commands running now, innermost last (the first shows nothing)."""


def current() -> Reporter:
    """The reporter of the command running now (one that shows nothing outside a command)."""
    return _running[-1]


@contextmanager
def stage(
    name: str, total: int | None = None, unit: str = "", expected: float | None = None
) -> Iterator[Stage]:
    """A stage on the current command's reporter."""
    with current().stage(name, total, unit, expected) as opened:
        yield opened


class Memory(Protocol):
    """Where a step's pace is kept between runs (`sync.state.StateStore`)."""

    def get_meta(self, key: str) -> str | None: ...

    def set_meta(self, key: str, value: str) -> None: ...


@contextmanager
def timed_stage(memory: Memory, key: str, size: int, name: str) -> Iterator[Stage]:
    """A stage with no countable progress (a model fit) that still says how long is left:
    the seconds per unit of `size` it took last time (kept under `key` in `memory`),
    times `size`. The pace of this run is kept for the next."""
    stored = pace_key(key)
    try:
        pace: float | None = float(memory.get_meta(stored) or "")
    except ValueError:
        pace = None
    expected = None if pace is None else pace * max(size, 1)
    with stage(name, expected=expected) as opened:
        yield opened
    memory.set_meta(stored, repr(opened.seconds / max(size, 1)))


def mode_for(stream: TextIO) -> Mode:
    """Events in JSON logs, bars on a terminal, else nothing; `-q` silences both."""
    if not log.isEnabledFor(logging.INFO):
        return "silent"
    if log_format() == "json":
        return "events"
    return "bars" if stream.isatty() else "silent"


@contextmanager
def progress_for(stream: TextIO) -> Iterator[Reporter]:
    """The reporter for one command writing to `stream`; `current()` returns it meanwhile."""
    reporter = Reporter(mode_for(stream), stream)
    _running.append(reporter)
    try:
        yield reporter
    finally:
        reporter.close()
        _running.remove(reporter)
