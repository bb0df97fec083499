"""The report's "Sync health" section: are the scores in the CRM being kept up to date?

Drawn from the run history (`sync.history.health`, handed in as plain figures so this
layer stays independent of `sync`): per day, runs, successes, records written and
failed, API calls and time taken; the last run, the last successful one, and the
records the CRM keeps refusing.
"""

from __future__ import annotations

from typing import Any

from icp_engine.scoring.report.html import esc, section, table, tile

TITLE = "Sync health"


def health_section(health: dict[str, Any] | None) -> str:
    """The section's markup; a short note when nothing has synced yet."""
    if not health:
        text = "No sync has run with this state directory yet: the CRM has no scores from it."
        return section("health", TITLE, f'<p class="muted">{esc(text)}</p>')
    last = health.get("last_run") or {}
    success = health.get("last_success")
    failing = int(health.get("records_failing") or 0)
    stuck = int(health.get("failing_3_runs") or 0)
    tiles = (
        tile(
            "Last run",
            str(last.get("outcome", "-")),
            f"#{last.get('id')} {_when(last.get('started_at'))}",
        )
        + tile("Last successful run", _when(success) if success else "never")
        + tile(
            "Records still failing", str(failing), f"{stuck} for 3 runs or more" if stuck else ""
        )
    )
    rows = [
        [
            esc(d["day"]),
            esc(d["runs"]),
            esc(d["ok"]),
            esc(d["failed_runs"]),
            esc(d["written"]),
            esc(d["failed"]),
            esc(d["api_calls"]),
            esc(f"{float(d['duration_s']):.0f} s"),
        ]
        for d in health.get("days") or []
    ]
    trend = (
        table(
            ["Day (UTC)", "Runs", "OK", "Failed runs", "Written", "Failed", "API calls", "Took"],
            rows,
            {1, 2, 3, 4, 5, 6, 7},
        )
        if rows
        else '<p class="muted">No run in the last 14 days.</p>'
    )
    lead = "Runs of the last 14 days, from the run history (icp status shows the same)."
    return section("health", TITLE, f'<div class="tiles">{tiles}</div>{trend}', lead)


def _when(value: Any) -> str:
    return str(value)[:16].replace("T", " ") + " UTC" if value else "-"
