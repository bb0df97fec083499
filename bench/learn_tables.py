"""Console output of `bench/bench_learn.py`: number formats, rich tables, notes, headings.

`console` is shared by every section; `bench_learn.py` sends it to stderr with `--json`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from rich import box
from rich.console import Console
from rich.table import Table

WRAP = {"rule", "engine finding", "figures", "outcome", "field"}

console = Console(width=130)


def ci(values: Any, digits: int = 3) -> str:
    if values is None or any(v is None for v in values):
        return "-"
    return f"[{values[0]:.{digits}f}, {values[1]:.{digits}f}]"


def num(value: Any, spec: str = ".3f") -> str:
    return (
        "-"
        if value is None or (isinstance(value, float) and np.isnan(value))
        else f"{value:{spec}}"
    )


def pct(value: Any) -> str:
    return "-" if value is None else f"{100 * value:.1f}%"


def show(title: str, columns: list[str], rows: list[list[Any]], caption: str | None = None) -> None:
    table = Table(
        title=title,
        box=box.SIMPLE_HEAD,
        title_justify="left",
        caption=caption,
        caption_justify="left",
        pad_edge=False,
    )
    for i, name in enumerate(columns):
        wide = i == len(columns) - 1 or name in WRAP
        table.add_column(name, overflow="fold", no_wrap=not wide)
    for row in rows:
        table.add_row(*[str(v) for v in row])
    console.print(table)


def notes(lines: list[str]) -> None:
    for line in lines:
        console.print(f"  - {line}", highlight=False, soft_wrap=False)


def heading(text: str) -> None:
    console.rule(f"[bold]{text}", align="left")
