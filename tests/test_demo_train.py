"""The README's first loop, as a new user runs it: `icp demo`, then `icp train` and
`icp report` on the demo's own export and mappings (enrichment included)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.cli_helpers import icp


@pytest.mark.slow
def test_train_and_report_run_on_the_demo_with_its_enrichment(tmp_path: Path) -> None:
    demo = tmp_path / "icp-demo"
    code, _, err = icp("demo", "--dir", demo)
    assert code == 0, err
    where = ("--crm", "csv", "--source", demo / "export", "--state", demo / ".icp")
    mappings = ("--mappings", demo / "mappings")
    code, out, err = icp("train", *where, *mappings, "--json")
    assert code == 0, err
    result = json.loads(out)
    # the learned criteria may use the joined enrichment fields and must validate with them
    assert result["signal"] is True
    assert result["version"] == "v0001"
    assert Path(result["criteria_file"]).is_file()
    code, _, err = icp("report", *where, *mappings, "--out", tmp_path / "report.html")
    assert code == 0, err
    assert "ICP report" in (tmp_path / "report.html").read_text(encoding="utf-8")
