"""The dry-run preview: what a sync would do, summarised before it is listed.

An admin deciding whether to let a change go out wants the shape of it first: how many
values each field would get, how accounts move between tiers (from what the CRM shows now
to what it would show after the run), which accounts change segment or route, which
edits made by people the run leaves alone, and what it costs in API calls and time.
The per-record detail comes last, a page at a time.

`summarise` is pure (a `Plan` in, counts out); `render` turns the summary into tables.
"""

from __future__ import annotations

import math
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import pandas as pd
from icp_engine.connectors.base import CallEstimate
from icp_engine.connectors.mapping import OutputField
from icp_engine.sync import numbers
from icp_engine.sync.plan import Plan, Skip, SkipReason, to_crm_value
from icp_engine.sync.state.records import RunRecord
from rich.console import Console, Group, RenderableType
from rich.table import Table
from rich.text import Text

EMPTY = "(empty)"
SHOWN = 10
SHORT_WHY = {
    "EDITED": "edited since the engine wrote it",
    "PRESET": "set before the engine first wrote",
    "NOT_EMPTY": "not empty (if_empty)",
}
"""Rows of the segment/route moves and of the edits left alone shown in the summary."""
TYPICAL_SECONDS_PER_CALL = {"salesforce": 0.5, "hubspot": 0.3}
"""Seconds an API call takes before this state has a run to measure (a cautious guess:
a round trip plus the CRM's processing of a 100-200 record batch)."""


def why(skip: Skip) -> str:
    """Why a field is left alone, in a few words (a cleared value says cleared)."""
    if skip.reason is SkipReason.EDITED and skip.current is None:
        return "cleared since the engine wrote it"
    return SHORT_WHY.get(skip.reason.name, skip.reason.value)


@dataclass(frozen=True)
class FieldCount:
    key: str
    field: str
    new: int = 0
    differs: int = 0
    overwrites_edit: int = 0
    left_alone: int = 0
    in_sync: int = 0

    @property
    def to_write(self) -> int:
        return self.new + self.differs + self.overwrites_edit


@dataclass(frozen=True)
class Move:
    record_id: str
    name: str
    key: str
    field: str
    before: str
    after: str


@dataclass
class Preview:
    """The figures a dry run opens with."""

    accounts: int
    records: int
    fields: list[FieldCount]
    tier_field: str | None
    tiers: list[str]
    matrix: dict[tuple[str, str], int]
    moves: list[Move]
    first_fills: dict[str, int]
    left_alone: list[dict[str, Any]]
    estimate: CallEstimate
    seconds: float | None
    pace: str
    crm: str

    def to_json(self) -> dict[str, Any]:
        return {
            "fields": {
                f.field: {
                    "to_write": f.to_write,
                    "new": f.new,
                    "differs": f.differs,
                    "overwrites_edit": f.overwrites_edit,
                    "left_alone": f.left_alone,
                    "in_sync": f.in_sync,
                }
                for f in self.fields
            },
            "tier_field": self.tier_field,
            "tier_moves": [
                {"from": a, "to": b, "accounts": n} for (a, b), n in sorted(self.matrix.items())
            ],
            "segment_route_changes": [vars(m) for m in self.moves],
            "left_alone": self.left_alone,
            "api_calls": self.estimate.total,
            "seconds": None if self.seconds is None else round(self.seconds, 1),
        }


def _text(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return EMPTY
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def seconds_per_call(crm: str, runs: list[RunRecord]) -> tuple[float | None, str]:
    """The pace of this state's earlier real runs on `crm`, else a typical figure."""
    if crm == "csv":
        return None, ""
    done = [
        r
        for r in runs
        if r.crm == crm and not r.dry_run and r.finished_at is not None and r.api_calls > 0
    ]
    if done:
        seconds = sum((r.finished_at - r.started_at).total_seconds() for r in done if r.finished_at)
        calls = sum(r.api_calls for r in done)
        pace = seconds / calls
        runs_text = numbers.count(len(done), "run")
        return pace, f"{pace:.2f} s a call (the pace of the last {runs_text} here)"
    typical = TYPICAL_SECONDS_PER_CALL.get(crm)
    if typical is None:
        return None, ""
    return typical, f"a typical {typical:.1f} s a call (no earlier run here to measure)"


def summarise(
    plan: Plan,
    scored: pd.DataFrame,
    names: dict[str, str],
    outputs: dict[str, OutputField],
    tier_order: list[str],
    estimate: CallEstimate,
    crm: str,
    runs: list[RunRecord] | None = None,
) -> Preview:
    """Count what `plan` would do, per field and per tier move.

    Args:
        plan: the dry run's plan.
        scored: the desired outputs of every account the run scored (account_id, tier...).
        names: account id -> name.
        outputs: the output fields by key (their CRM names, picklist value maps).
        tier_order: the engine's tiers, best first.
        estimate: the connector's API-call estimate.
        crm: csv, salesforce or hubspot.
        runs: this state's earlier runs (to measure the time an API call takes).
    """
    accounts = len(scored)
    changes = Counter((c.key, c.reason.name) for c in plan.changes)
    skips = Counter(s.key for s in plan.skips)
    fields = []
    for key, spec in outputs.items():
        if key not in scored:
            continue
        count = FieldCount(
            key,
            spec.field,
            new=changes[(key, "NEW")],
            differs=changes[(key, "DIFFERS")],
            overwrites_edit=changes[(key, "OVERWRITES_EDIT")],
            left_alone=skips[key],
        )
        in_sync = accounts - count.to_write - count.left_alone
        fields.append(FieldCount(**{**vars(count), "in_sync": in_sync}))

    tier_spec = outputs.get("tier")
    matrix: dict[tuple[str, str], int] = {}
    tiers = [tier_spec.values.get(t, t) for t in tier_order] if tier_spec else []
    if tier_spec is not None and "tier" in scored:
        moved = {
            c.record_id: (_text(c.current), _text(c.desired))
            for c in plan.changes
            if c.key == "tier"
        }
        kept = {
            s.record_id: (_text(s.current), _text(s.current)) for s in plan.skips if s.key == "tier"
        }
        for label, tier in zip(scored["account_id"], scored["tier"], strict=True):
            account = str(label)
            pair = moved.get(account) or kept.get(account)
            if pair is None:
                same = _text(to_crm_value(tier, tier_spec))
                pair = (same, same)
            matrix[pair] = matrix.get(pair, 0) + 1

    moves: list[Move] = []
    first_fills: dict[str, int] = {}
    for change in plan.changes:
        if change.key not in ("segment", "route"):
            continue
        if change.current is None:
            first_fills[change.field] = first_fills.get(change.field, 0) + 1
            continue
        moves.append(
            Move(
                change.record_id,
                names.get(change.record_id, ""),
                change.key,
                change.field,
                _text(change.current),
                _text(change.desired),
            )
        )
    left_alone = [
        {
            "record_id": s.record_id,
            "name": names.get(s.record_id, ""),
            "field": s.field,
            "in_crm": _text(s.current),
            "engine_wrote": _text(s.last_written),
            "would_write": _text(s.desired),
            "why": why(s),
        }
        for s in plan.skips
    ]
    pace, how = seconds_per_call(crm, runs or [])
    seconds = None if pace is None else pace * estimate.total
    return Preview(
        accounts,
        len(plan.record_updates()),
        fields,
        tier_spec.field if tier_spec else None,
        tiers,
        matrix,
        moves,
        first_fills,
        left_alone,
        estimate,
        seconds,
        how,
        crm,
    )


def _order(values: set[str], tiers: list[str]) -> list[str]:
    known = [t for t in tiers if t in values]
    return known + sorted(values - set(tiers) - {EMPTY}) + ([EMPTY] if EMPTY in values else [])


def figures_table(title: str, columns: tuple[str, ...]) -> Table:
    """A titled table whose first column names the row and whose other columns hold figures
    (right-aligned)."""
    table = Table(title=title, title_justify="left")
    for number, column in enumerate(columns):
        table.add_column(column, justify="left" if number == 0 else "right")
    return table


def field_table(preview: Preview) -> Table:
    table = figures_table(
        "Per field",
        (
            "field",
            "to write",
            "empty now",
            "differs",
            "overwrites an edit",
            "left alone",
            "in sync",
        ),
    )
    for f in preview.fields:
        table.add_row(
            f.field,
            Text(numbers.count(f.to_write), style="bold" if f.to_write else "dim"),
            numbers.count(f.new),
            numbers.count(f.differs),
            numbers.count(f.overwrites_edit),
            numbers.count(f.left_alone),
            numbers.count(f.in_sync),
        )
    return table


def tier_matrix(preview: Preview) -> RenderableType | None:
    if not preview.matrix:
        return None
    rows = _order({a for a, _ in preview.matrix}, preview.tiers)
    columns = _order({b for _, b in preview.matrix}, preview.tiers)
    table = Table()
    table.add_column("from \\ to")
    for column in columns:
        table.add_column(column, justify="right")
    table.add_column("accounts", justify="right")
    table.add_column("moving", justify="right")
    for row in rows:
        cells: list[RenderableType] = []
        for column in columns:
            n = preview.matrix.get((row, column), 0)
            style = "dim" if row == column or not n else "bold"
            cells.append(Text(numbers.count(n) if n else "·", style=style))
        total = sum(preview.matrix.get((row, c), 0) for c in columns)
        moving = total - preview.matrix.get((row, row), 0)
        table.add_row(row, *cells, numbers.count(total), numbers.count(moving))
    moving = sum(n for (a, b), n in preview.matrix.items() if a != b)
    heading = Text(
        f"Tier movement ({preview.tier_field}): {numbers.count(moving, 'account')} change tier; "
        "rows: now in the CRM, columns: after this run",
        style="italic",
    )
    return Group(heading, table)


def moves_table(preview: Preview) -> RenderableType | None:
    if not preview.moves and not preview.first_fills:
        return None
    parts: list[RenderableType] = []
    if preview.moves:
        accounts = numbers.count(len({m.record_id for m in preview.moves}), "account")
        table = Table(
            title=f"Segment or route changes: {numbers.count(len(preview.moves))} on {accounts}",
            title_justify="left",
        )
        for column in ("account", "name", "field", "now in CRM", "after this run"):
            table.add_column(column, overflow="fold", no_wrap=column in ("account", "field"))
        for move in preview.moves[:SHOWN]:
            table.add_row(move.record_id, move.name, move.field, move.before, move.after)
        if len(preview.moves) > SHOWN:
            table.caption = (
                f"... and {numbers.count(len(preview.moves) - SHOWN)} more (see the detail)"
            )
        parts.append(table)
    if preview.first_fills:
        filled = ", ".join(f"{f} {numbers.count(n)}" for f, n in preview.first_fills.items())
        parts.append(Text(f"Filled for the first time (empty in the CRM now): {filled}"))
    return Group(*parts)


def left_alone_table(preview: Preview) -> RenderableType:
    if not preview.left_alone:
        return Text("Edits made in the CRM left alone: none.")
    table = Table(
        title=f"Edits made in the CRM left alone ({numbers.count(len(preview.left_alone))}): "
        "policy if_unchanged / if_empty",
        title_justify="left",
    )
    for column in ("account", "name", "field", "in CRM (kept)", "would write", "why"):
        table.add_column(column, overflow="fold", no_wrap=column in ("account", "field"))
    for skip in preview.left_alone[:SHOWN]:
        table.add_row(
            skip["record_id"],
            skip["name"],
            skip["field"],
            skip["in_crm"],
            skip["would_write"],
            skip["why"],
        )
    if len(preview.left_alone) > SHOWN:
        table.caption = (
            f"... and {numbers.count(len(preview.left_alone) - SHOWN)} more (see the detail)"
        )
    return table


def cost_line(preview: Preview) -> str:
    estimate = preview.estimate
    if preview.crm == "csv":
        return "Cost: no API calls (CSV: the changes go to an update file for Data Loader)."
    time = (
        f"; about {numbers.duration(preview.seconds)} at {preview.pace}"
        if preview.seconds is not None
        else ""
    )
    note = f" {estimate.note}" if estimate.note else ""
    return (
        f"Cost: about {numbers.count(estimate.total, 'API call')} "
        f"({numbers.count(estimate.pull_calls)} to read, {numbers.count(estimate.write_calls)} "
        f"to write via {estimate.method}){time}.{note}"
    )


def render(console: Console, preview: Preview) -> None:
    """The summary, in the order an admin reads it."""
    say = console.print
    if preview.records == 0:
        in_sync = sum(f.in_sync for f in preview.fields)
        left = numbers.count(len(preview.left_alone))
        say(
            "[bold]Dry run[/]: nothing would change: "
            + (
                f"{numbers.count(in_sync, 'field')} of "
                f"{numbers.count(preview.accounts, 'account')} already in sync"
                + (f", {left} left alone." if preview.left_alone else ".")
                if preview.accounts
                else "no account changed in the CRM since the last run."
            ),
            highlight=False,
        )
        if preview.left_alone:
            say(left_alone_table(preview))
        if preview.crm != "csv":
            say(cost_line(preview), highlight=False)
        return
    say(
        f"[bold]Dry run[/]: {numbers.count(preview.records)} of "
        f"{numbers.count(preview.accounts, 'account')} would change "
        f"({numbers.count(sum(f.to_write for f in preview.fields), 'field')}); nothing is "
        "written and no watermark moves.",
        highlight=False,
    )
    say(field_table(preview))
    for part in (tier_matrix(preview), moves_table(preview), left_alone_table(preview)):
        if part is not None:
            say(part)
    say(cost_line(preview), highlight=False)


@dataclass
class Page:
    number: int
    size: int | None
    rows: int
    first: int = field(init=False)
    last: int = field(init=False)
    pages: int = field(init=False)

    def __post_init__(self) -> None:
        size = self.size or max(self.rows, 1)
        self.pages = max(math.ceil(self.rows / size), 1)
        self.number = min(max(self.number, 1), self.pages)
        self.first = (self.number - 1) * size
        self.last = min(self.first + size, self.rows)

    def caption(self) -> str | None:
        if self.pages <= 1:
            return None
        nxt = f"; --page {self.number + 1} for the next" if self.number < self.pages else ""
        return (
            f"rows {numbers.count(self.first + 1)}-{numbers.count(self.last)} of "
            f"{numbers.count(self.rows)}, page {self.number} of {self.pages}{nxt} "
            "(--limit N rows a page, --all for every row)"
        )
