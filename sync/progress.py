"""Progress bars on stderr when it is a terminal; silence when a scheduler runs us."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TextIO

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, TaskID, TimeElapsedColumn
from rich.progress import Progress as Bars

from sync.runner import Progress


class RichProgress(Progress):
    """One bar per phase (pull, write)."""

    def __init__(self, bars: Bars) -> None:
        self.bars = bars
        self.task: TaskID | None = None

    def phase(self, name: str, total: int | None = None) -> None:
        if self.task is not None:
            self.bars.update(self.task, total=self.bars.tasks[-1].completed)
        self.task = self.bars.add_task(name, total=total)

    def advance(self, amount: int) -> None:
        if self.task is not None:
            self.bars.advance(self.task, amount)


@contextmanager
def progress_for(stream: TextIO) -> Iterator[Progress]:
    """Bars on `stream` if it is a terminal, else no-op hooks."""
    if not stream.isatty():
        yield Progress()
        return
    console = Console(file=stream)
    columns = (
        "[progress.description]{task.description}",
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
    )
    with Bars(*columns, console=console, transient=True) as bars:
        yield RichProgress(bars)
