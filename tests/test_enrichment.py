"""Enrichment join: vendor exports keyed by domain or account id, typed, with precedence."""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
from icp_engine.connectors.enrichment import EnrichmentConfig, join
from icp_engine.connectors.errors import SourceError
from icp_engine.sync.config import load_config
from icp_engine.sync.yamlfile import ConfigError

ACCOUNTS = pd.DataFrame(
    {
        "account_id": ["001A", "001B", "001C", "001D"],
        "domain": ["acme.com", "globex.io", None, "initech.net"],
        "employees": [120.0, None, 40.0, 900.0],
    }
)


def _csv(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


def _config(**source: object) -> EnrichmentConfig:
    return EnrichmentConfig.model_validate({"sources": [source]})


def test_domain_key_is_normalised_and_fields_typed(tmp_path: Path) -> None:
    _csv(
        tmp_path / "bw.csv",
        "Domain,Technologies,Technology Spend,Last Indexed\n"
        "https://www.ACME.com/pricing,Snowflake Computing;Stripe,1200,2026-10-01\n"
        "globex.io,Segment,,2026-09-01\n"
        "nobody.org,Snowflake,5,2026-09-01\n",
    )
    config = _config(
        name="BuiltWith",
        path="bw.csv",
        column="Domain",
        as_of="Last Indexed",
        fields={
            "web_technologies": {
                "field": "Technologies",
                "type": "multi",
                "values": {"Snowflake": ["Snowflake Computing"]},
            },
            "technology_spend": {"field": "Technology Spend", "type": "number"},
        },
    )
    joined, report = join(ACCOUNTS, config, tmp_path)
    assert joined["web_technologies"].tolist()[:2] == ["Snowflake;Stripe", "Segment"]
    assert joined["web_technologies"].isna().tolist()[2:] == [True, True]
    assert joined["technology_spend"].tolist()[0] == 1200.0
    assert pd.isna(joined["technology_spend"].iloc[1])  # blank stays unknown, not 0
    source = report.sources[0]
    assert (source.matched, source.rows, source.coverage) == (2, 3, 0.5)
    assert (source.oldest, source.newest) == ("2026-09-01", "2026-10-01")
    assert joined["account_id"].tolist() == ACCOUNTS["account_id"].tolist()  # same rows


def test_freshest_row_wins_for_one_key(tmp_path: Path) -> None:
    _csv(
        tmp_path / "zi.csv",
        "Website,Employees,Last Updated Date\n"
        "www.acme.com,150,2026-10-01\nacme.com,99,2025-01-01\n",
    )
    config = _config(
        name="ZoomInfo",
        path="zi.csv",
        column="Website",
        as_of="Last Updated Date",
        fields={"zi_employees": {"field": "Employees", "type": "number"}},
    )
    joined, report = join(ACCOUNTS, config, tmp_path)
    assert joined.loc[0, "zi_employees"] == 150.0
    assert report.sources[0].duplicates == 1


def test_precedence_and_conflicts(tmp_path: Path) -> None:
    _csv(tmp_path / "zi.csv", "Website,Employees\nacme.com,150\nglobex.io,60\ninitech.net,900\n")
    source = {
        "name": "ZoomInfo",
        "path": "zi.csv",
        "column": "Website",
        "fields": {"employees": {"field": "Employees", "type": "number"}},
    }
    crm_first = EnrichmentConfig.model_validate({"sources": [source]})
    joined, report = join(ACCOUNTS, crm_first, tmp_path)
    # the CRM's value stands where it has one; ZoomInfo fills the gap
    assert joined["employees"].tolist() == [120.0, 60.0, 40.0, 900.0]
    assert report.conflicts["employees"] == {"providers": ["crm", "ZoomInfo"], "accounts": 1}
    vendor_first = EnrichmentConfig.model_validate(
        {"sources": [source], "precedence": ["ZoomInfo", "crm"]}
    )
    joined, _ = join(ACCOUNTS, vendor_first, tmp_path)
    assert joined["employees"].tolist() == [150.0, 60.0, 40.0, 900.0]


def test_account_id_key_glob_and_parquet(tmp_path: Path) -> None:
    pd.DataFrame({"Id": ["001A"], "Surge": ["71"]}).to_parquet(tmp_path / "intent_1.parquet")
    pd.DataFrame({"Id": ["001D"], "Surge": ["40"]}).to_parquet(tmp_path / "intent_2.parquet")
    config = _config(
        name="Bombora",
        path="intent_*.parquet",
        key="account_id",
        column="Id",
        fields={"intent_score": {"field": "Surge", "type": "number"}},
    )
    joined, report = join(ACCOUNTS, config, tmp_path)
    assert joined["intent_score"].tolist()[0] == 71.0
    assert joined["intent_score"].tolist()[3] == 40.0
    assert report.sources[0].oldest is not None  # file time stands in for as_of


def test_sql_source_through_duckdb(tmp_path: Path) -> None:
    import duckdb

    database = tmp_path / "wh.duckdb"
    with duckdb.connect(str(database)) as con:
        con.execute("CREATE TABLE g2 (domain VARCHAR, buyer_intent INTEGER)")
        con.execute("INSERT INTO g2 VALUES ('WWW.Globex.io', 3), ('acme.com', NULL)")
    config = _config(
        name="G2",
        url=f"duckdb:///{database}",
        query="SELECT domain, buyer_intent FROM g2",
        column="domain",
        fields={"g2_intent": {"field": "buyer_intent", "type": "number"}},
    )
    joined, report = join(ACCOUNTS, config, tmp_path)
    assert joined["g2_intent"].tolist()[1] == 3.0
    assert pd.isna(joined["g2_intent"].iloc[0])
    assert report.sources[0].matched == 2


def test_missing_file_and_column_are_named(tmp_path: Path) -> None:
    config = _config(name="BuiltWith", path="nope_*.csv", column="Domain", fields={"x": "Tech"})
    with pytest.raises(SourceError, match=r"'BuiltWith': no file matches 'nope_\*.csv'"):
        join(ACCOUNTS, config, tmp_path)
    _csv(tmp_path / "bw.csv", "Domain,Tech\nacme.com,x\n")
    config = _config(name="BuiltWith", path="bw.csv", column="Domain", fields={"x": "Techs"})
    with pytest.raises(SourceError, match=r"no column 'Techs'; found: Domain, Tech"):
        join(ACCOUNTS, config, tmp_path)


def test_mapping_problems_name_file_and_key(tmp_path: Path) -> None:
    (tmp_path / "enrichment.yaml").write_text(
        "sources:\n"
        "  - name: ZoomInfo\n    path: zi.csv\n    column: Website\n"
        "    fields:\n      employees: {field: Employees, type: text}\n"
        "precedence: [crm, Clearbit]\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as caught:
        load_config("csv", tmp_path)
    text = str(caught.value)
    assert "enrichment.yaml" in text
    assert "unknown provider 'Clearbit'; valid: crm, ZoomInfo" in text
    assert "must be 'number' like the CRM field 'employees'" in text


def test_criterion_on_an_enrichment_field_validates_only_with_the_source(tmp_path: Path) -> None:
    icp = (
        "version: 1\nname: t\ncriteria:\n  bonus:\n"
        "    - {name: Warehouse, field: web_technologies, contains: [Snowflake], weight: 1}\n"
        "tiers: {A: 50, B: 0}\n"
    )
    (tmp_path / "icp.yaml").write_text(icp, encoding="utf-8")
    with pytest.raises(ConfigError, match="web_technologies"):
        load_config("csv", tmp_path)
    (tmp_path / "enrichment.yaml").write_text(
        "sources:\n  - name: BuiltWith\n    path: bw.csv\n    column: Domain\n"
        "    fields:\n      web_technologies: {field: Technologies, type: multi}\n",
        encoding="utf-8",
    )
    config = load_config("csv", tmp_path)
    assert config.account_field_types()["web_technologies"] == "multi"


@pytest.mark.slow
def test_demo_shows_enrichment_at_work(tmp_path: Path) -> None:
    from tests.test_cli import icp

    code, out, _ = icp("demo", "--dir", tmp_path / "demo", "--accounts", "600")
    assert code == 0
    assert "BuiltWith: " in out and "accounts matched" in out
    updates = (tmp_path / "demo" / "export" / "icp_updates.csv").read_text(encoding="utf-8")
    assert "Runs a cloud data warehouse" in updates  # a technographic criterion scored
    assert "Surging intent (Bombora 60+)" in updates
    code, out, _ = icp("demo", "--dir", tmp_path / "demo", "--accounts", "600", "--json")
    sources = json.loads(out)["enrichment"]["sources"]
    coverage = {s["source"]: s["coverage"] for s in sources}
    assert set(coverage) == {"ZoomInfo", "BuiltWith", "Bombora"}
    assert all(0 < share < 1 for share in coverage.values())
