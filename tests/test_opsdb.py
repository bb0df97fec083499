"""The operations tables share the state file, so a damaged file must fail the same way."""

from __future__ import annotations

from pathlib import Path

import pytest
from icp_engine.sync.state.opsdb import OpsDB
from icp_engine.sync.state.records import StateError

from tests.state_helpers import state_backend  # noqa: F401 (fixture `backend`: SQLite, then PostgreSQL)


def test_damaged_state_file_gives_the_state_error_not_a_traceback(tmp_path: Path) -> None:
    (tmp_path / "state.sqlite").write_bytes(b"not a database, just bytes " * 200)
    with pytest.raises(StateError) as caught:
        OpsDB(tmp_path)
    message = str(caught.value)
    assert "state.sqlite: is damaged or not an ICP state file" in message
    assert "icp state reset" in message


def test_operations_tables_round_trip(tmp_path: Path, backend: str) -> None:
    with OpsDB(tmp_path) as db:
        db.put_detail(7, "csv", {"failed": 2})
        db.replace_audience("top", {"001A": "row-a"})
    with OpsDB(tmp_path) as db:
        assert db.detail(7) == {"failed": 2}
        assert db.audience_rows("top") == {"001A": "row-a"}
        assert db.audiences() == ["top"]
