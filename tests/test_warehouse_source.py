"""`--crm warehouse`: accounts and opportunities read from SQL tables (DuckDB, PostgreSQL),
incremental by the modified-at column, outputs written to an updates table."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import sqlalchemy as sa
from icp_engine.connectors.sample import write_sample_crm
from icp_engine.connectors.spreadsheet_safety import restore

from tests.test_cli import icp


@pytest.fixture(scope="module")
def export(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("export")
    write_sample_crm(directory, accounts=300)
    return directory


def _mappings(directory: Path, url: str) -> Path:
    text = (Path(__file__).parents[1] / "mappings" / "warehouse.yaml").read_text(encoding="utf-8")
    text = text.replace("url: duckdb:///icp.duckdb", f"url: {url}")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "warehouse.yaml").write_text(text, encoding="utf-8")
    return directory


@pytest.fixture(params=["duckdb", "postgres"])
def warehouse(request: pytest.FixtureRequest, export: Path, tmp_path: Path) -> tuple[str, Path]:
    """A database holding the sample export as tables `Account` and `Opportunity`."""
    if request.param == "duckdb":
        url = f"duckdb:///{tmp_path / 'crm.duckdb'}"
    else:
        url = request.getfixturevalue("postgres_url")
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        for name in ("Account", "Opportunity", "icp_updates"):
            connection.execute(sa.text(f'DROP TABLE IF EXISTS "{name}"'))
    for name in ("Account", "Opportunity"):
        frame = pd.read_csv(export / f"{name}.csv", dtype=str, keep_default_na=False)
        frame["SystemModstamp"] = pd.to_datetime(frame["SystemModstamp"], utc=True).dt.tz_localize(
            None
        )
        with engine.begin() as connection:
            frame.replace("", None).to_sql(name, connection, index=False, chunksize=5000)
    engine.dispose()
    return url, _mappings(tmp_path / "mappings", url)


def test_backfill_from_tables_equals_the_export(
    warehouse: tuple[str, Path], export: Path, tmp_path: Path
) -> None:
    url, mappings = warehouse
    code, out, err = icp(
        "backfill", "--crm", "warehouse", "--mappings", mappings, "--json", state=tmp_path / "s"
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["counts"]["accounts_pulled"] == 300
    assert summary["target"].startswith("icp_updates in ")
    assert "password" not in summary["target"]
    with sa.create_engine(url).connect() as connection:
        table = pd.read_sql(sa.text("SELECT * FROM icp_updates"), connection).set_index("Id")
    # the same scores as the CSV connector gives for the same export
    code, _, err = icp("backfill", "--crm", "csv", "--source", export, state=tmp_path / "c")
    assert code == 0, err
    expected = pd.read_csv(export / "icp_updates.csv", dtype=str).set_index("Id").map(restore)
    assert len(table) == len(expected) == 300
    table = table.loc[expected.index]
    assert (table["ICP_Tier__c"] == expected["ICP_Tier__c"]).all()
    assert (table["ICP_Score__c"].astype(float) == expected["ICP_Score__c"].astype(float)).all()
    assert (table["ICP_Reasons__c"] == expected["ICP_Reasons__c"]).all()


def test_sync_pulls_only_rows_modified_since_the_watermark(
    warehouse: tuple[str, Path], tmp_path: Path
) -> None:
    url, mappings = warehouse
    state = tmp_path / "s"
    code, _, err = icp("backfill", "--crm", "warehouse", "--mappings", mappings, state=state)
    assert code == 0, err
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        account = connection.execute(sa.text('SELECT "Id" FROM "Account" LIMIT 1')).scalar_one()
        connection.execute(
            sa.text(
                'UPDATE "Account" SET "NumberOfEmployees" = \'20000\', '
                '"SystemModstamp" = :now WHERE "Id" = :id'
            ),
            {"now": pd.Timestamp.now("UTC").tz_localize(None).to_pydatetime(), "id": account},
        )
    code, out, err = icp(
        "sync", "--crm", "warehouse", "--mappings", mappings, "--json", state=state
    )
    assert code == 0, err
    summary = json.loads(out)
    assert summary["counts"]["accounts_pulled"] == 1  # filtered in the database
    with engine.connect() as connection:
        reasons = connection.execute(
            sa.text('SELECT "ICP_Reasons__c" FROM icp_updates WHERE "Id" = :id'), {"id": account}
        ).scalar_one()
    engine.dispose()
    assert "More than 5,000 employees" in reasons


def test_unreachable_database_exits_3(tmp_path: Path) -> None:
    mappings = _mappings(tmp_path / "m", "postgresql+psycopg://icp:secret@127.0.0.1:9/none")
    code, _, err = icp("sync", "--crm", "warehouse", "--mappings", mappings, state=tmp_path / "s")
    assert code == 3
    assert "cannot reach postgresql+psycopg://icp:***@127.0.0.1:9/none" in err
    assert "secret" not in err
