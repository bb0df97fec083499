"""What tests do to a state that a run never does (moved out of `StateStore`)."""

from __future__ import annotations

from icp_engine.sync.state.store import StateStore


def reset_watermarks(store: StateStore, crm: str) -> None:
    """Forget the watermarks of `crm`: its next run pulls everything."""
    with store._transaction() as db:
        db.execute("DELETE FROM watermarks WHERE crm = ?", (crm,))


def reset_records(store: StateStore, crm: str) -> None:
    """Drop every mirror row of `crm` (last-written values and failures stay)."""
    with store._transaction() as db:
        db.execute("DELETE FROM records WHERE crm = ?", (crm,))
