"""The scorecard compiled to SQL scores exactly as the Python scorer, on DuckDB and PostgreSQL.

Same accounts, same criteria: score, tier, segment, route, reasons (and expansion and win
probability) must be identical row by row, including nulls in every kind of field, value
maps (the table holds the CRM's spellings), multi-select `contains`, tier caps, points and
share scales, half-way scores, reasons cut to a field's length, timestamps and booleans.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa
import yaml
from icp_engine.scoring.criteria import score_accounts
from icp_engine.scoring.schema import IcpCriteria
from icp_engine.scoring.sql import SqlCompileError, compile_scorecard

TYPES = {
    "account_id": "text",
    "industry": "text",
    "employees": "number",
    "annual_revenue": "number",
    "country": "text",
    "region": "text",
    "web_technologies": "multi",
    "intent_score": "number",
    "is_public": "boolean",
    "is_customer": "boolean",
    "founded_at": "datetime",
    "domain": "domain",
}
INDUSTRY_MAP = {
    "tech": "Technology/SaaS",
    "software": "Technology/SaaS",
    "banking": "Financial Services",
    "public sector": "Government",
}
"""CRM spelling (case-folded) -> canonical value, as `FieldMap.lookup()` gives it."""

POINTS = """
name: points scale, calibrated
criteria:
  must_have:
    - {name: Employees 50-500, field: employees, between: [50, 500], weight: 12.5}
    - {name: "Industry: SaaS or Financial Services", field: industry,
       in: [Technology/SaaS, Financial Services], weight: 10}
    - {name: Runs Snowflake or BigQuery, field: web_technologies,
       contains: [Snowflake, BigQuery], weight: 7.5}
  strong_signal:
    - {name: Founded 2015 or later, field: founded_at, gte: 2015-01-01, weight: 5}
    - {name: Outside Germany, field: country, not_in: [Germany], weight: 2.5}
    - {name: Has a website, field: domain, is_null: false, weight: 1.5}
    - {name: Publicly traded, field: is_public, eq: true, weight: 3}
  bonus:
    - {name: Surging intent, field: intent_score, gt: 60, weight: 4}
    - name: Big SaaS in NA
      when:
        - {field: industry, eq: technology/saas}
        - {field: employees, gte: 200}
        - {field: region, in: [NA]}
      weight: 2
tiers: {A: 60, B: 45, C: 30, D: 0}
anti_patterns:
  - {name: Pre-revenue, field: annual_revenue, lte: 0, penalty: 30}
  - {name: "Over 5,000 employees", field: employees, gt: 5000, penalty: 10, cap_tier: B}
  - {name: Uses a competitor, field: web_technologies, contains: [Competitor X], cap_tier: C}
  - {name: "Industry: Government", field: industry, eq: Government, penalty: 7.5}
segments:
  - name: Scale-up SaaS
    when: [{field: industry, eq: Technology/SaaS}, {field: employees, between: [100, 300]}]
  - name: Banks
    when: [{field: industry, eq: Financial Services}]
  - name: Warehouse users
    when: [{field: web_technologies, contains: [Snowflake]}]
  - {name: Unsized, when: [{field: employees, is_null: true}]}
routing:
  - route: CSM
    when: [{field: is_customer, eq: true}, {field: tier, in: [A, B]}]
  - route: AE Banks
    when: [{field: segment, eq: Banks}, {field: score, gte: 50}]
  - route: AE
    when: [{field: tier, eq: A}]
  - route: SDR
    when: [{field: score, between: [30, 59.5]}]
expansion:
  - {name: Large, field: employees, gt: 300, weight: 2}
  - {name: Warehouse, field: web_technologies, contains: [Databricks], weight: 1}
scale: {weights: points, base: 30}
calibration: {intercept: -3.1, slope: 0.061}
"""

SHARE = """
name: share scale, scores with a decimal
criteria:
  must_have:
    - {name: Employees 50-500 (the sweet spot of the whole market), field: employees,
       between: [50, 500], weight: 0.3}
    - {name: "Industry: Technology/SaaS", field: industry, eq: Technology/SaaS, weight: 0.3}
  bonus:
    - {name: Uses Snowflake, field: web_technologies, contains: [snowflake], weight: 0.2}
    - {name: Intent 40+, field: intent_score, gte: 40, weight: 0.1}
    - {name: North America, field: region, eq: NA, weight: 0.1}
tiers: {A: 66.7, B: 33.3, C: 0}
anti_patterns:
  - {name: Government buyer (long procurement), field: industry, in: [Government], penalty: 12.5}
segments:
  - {name: Tech, when: [{field: industry, eq: Technology/SaaS}]}
routing:
  - {route: Fast lane, when: [{field: tier, eq: A}]}
"""


def _accounts(n: int = 4000, seed: int = 15) -> pd.DataFrame:
    """Feature rows with nulls everywhere, CRM spellings and multi-select values."""
    rng = np.random.default_rng(seed)
    spellings = np.array(
        ["Tech", " software ", "Technology/SaaS", "Banking", "Financial Services", "Retail",
         "Public Sector", "Government", None], dtype=object,
    )  # fmt: skip
    stacks = np.array(
        ["Snowflake;Stripe", "stripe", "Segment; BigQuery", "Competitor X;Snowflake",
         "Databricks", "snowflake", "", None, "Snowflake Analytics"], dtype=object,
    )  # fmt: skip
    employees = rng.choice([10, 49, 50, 120, 200, 300, 500, 501, 4000, 6000, np.nan], n)
    revenue = rng.choice([0.0, -5.0, 1e6, 2.5e7, np.nan], n)
    founded = [
        None if r < 0.1 else datetime(2014, 12, 31, 23, 0, tzinfo=UTC) + timedelta(days=int(d))
        for r, d in zip(rng.random(n), rng.integers(-400, 400, n), strict=True)
    ]
    frame = pd.DataFrame(
        {
            "account_id": [f"001{i:06d}" for i in range(n)],
            "industry_raw": rng.choice(spellings, n),
            "employees": employees.astype(float),
            "annual_revenue": revenue,
            "country": rng.choice(np.array(["Germany", "United States", None], object), n),
            "region": rng.choice(np.array(["NA", "EMEA", "na", None], object), n),
            "web_technologies": rng.choice(stacks, n),
            "intent_score": rng.choice([30.0, 40.0, 60.0, 61.0, np.nan], n),
            "is_public": pd.array(rng.choice([True, False, None], n), dtype="boolean"),
            "is_customer": rng.random(n) < 0.3,
            "founded_at": pd.to_datetime(pd.Series(founded, dtype=object), utc=True),
            "domain": rng.choice(np.array(["acme.com", None], object), n),
        }
    )
    frame["web_technologies"] = frame["web_technologies"].replace("", None)
    raw = frame["industry_raw"]
    mapped = raw.map(
        lambda v: INDUSTRY_MAP.get(str(v).strip().casefold(), str(v).strip()), na_action="ignore"
    )
    frame["industry"] = mapped
    return frame


@pytest.fixture(scope="module")
def accounts() -> pd.DataFrame:
    return _accounts()


def _database_table(frame: pd.DataFrame) -> pd.DataFrame:
    """What the warehouse holds: the CRM's spellings (mapped in SQL), NULL for missing."""
    table = frame.drop(columns=["industry"]).rename(columns={"industry_raw": "industry"})
    return (
        table.astype(object)
        .where(table.notna(), None)
        .astype({"employees": float, "annual_revenue": float, "intent_score": float})
    )


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.slow)])
def database(
    request: pytest.FixtureRequest, accounts: pd.DataFrame
) -> Iterator[tuple[str, sa.Connection | duckdb.DuckDBPyConnection]]:
    table = _database_table(accounts)
    if request.param == "duckdb":
        con = duckdb.connect()
        con.register("frame", table)
        con.execute("CREATE TABLE icp_features AS SELECT * FROM frame")
        yield "duckdb", con
        con.close()
        return
    url = request.getfixturevalue("postgres_url")
    engine = sa.create_engine(url)
    with engine.begin() as connection:
        table.to_sql("icp_features", connection, if_exists="replace", index=False)
    with engine.connect() as connection:
        yield "postgres", connection
    engine.dispose()


def _run(database: tuple[str, object], sql: str) -> pd.DataFrame:
    dialect, con = database
    if dialect == "duckdb":
        return con.execute(sql).df()  # type: ignore[attr-defined]
    return pd.read_sql(sa.text(sql), con)  # type: ignore[arg-type]


def _compare(python: pd.DataFrame, sql: pd.DataFrame) -> None:
    assert len(sql) == len(python)
    merged = python.merge(sql, on="account_id", suffixes=("_py", "_sql"), validate="1:1")
    for column in ("score", "tier", "segment", "route", "reasons", "expansion", "win_probability"):
        left, right = merged[f"{column}_py"], merged[f"{column}_sql"]
        if column in ("score", "expansion", "win_probability"):
            left, right = left.astype(float), pd.to_numeric(right).astype(float)
        same = (left == right) | (left.isna() & right.isna())
        wrong = merged.loc[~same, ["account_id", f"{column}_py", f"{column}_sql"]]
        assert same.all(), f"{column} differs on {len(wrong)} accounts:\n{wrong.head()}"


@pytest.mark.parametrize(
    ("criteria", "length", "scale"),
    [(POINTS, 255, 0), (POINTS, 48, 0), (SHARE, 60, 1), (SHARE, None, 0)],
    ids=["points", "points-cut-reasons", "share-decimal", "share"],
)
def test_sql_scores_exactly_as_python(
    accounts: pd.DataFrame,
    database: tuple[str, object],
    criteria: str,
    length: int | None,
    scale: int,
) -> None:
    icp = IcpCriteria.model_validate(yaml.safe_load(criteria))
    python = score_accounts(accounts, icp, reasons_length=length, score_scale=scale)
    sql = compile_scorecard(
        icp,
        TYPES,
        dialect=database[0],
        reasons_length=length,
        score_scale=scale,
        value_maps={"industry": INDUSTRY_MAP},
    )
    result = _run(database, sql)
    _compare(python, result)
    # the data exercises what it should: every tier, caps, nulls, cut reasons
    assert python["tier"].nunique() == len(icp.tiers)
    assert python["route"].isna().any() and python["segment"].isna().any()
    if length is not None and length < 100:
        assert python["reasons"].str.len().max() <= length
    if criteria is POINTS and length == 255:
        assert python["reasons"].str.contains("tier capped at C").any()
        assert python["win_probability"].notna().all()
        assert python["expansion"].notna().any()


def test_half_way_scores_round_to_even_like_numpy(database: tuple[str, object]) -> None:
    icp = IcpCriteria.model_validate(
        yaml.safe_load(
            "criteria:\n  bonus:\n"
            "    - {name: a, field: employees, gte: 1, weight: 0.5}\n"
            "    - {name: b, field: employees, gte: 2, weight: 1}\n"
            "scale: {weights: points, base: 0}\ntiers: {A: 1, B: 0}\n"
        )
    )
    frame = pd.DataFrame({"account_id": ["x", "y", "z"], "employees": [1.0, 2.0, 0.0]})
    python = score_accounts(frame, icp)
    assert python["score"].tolist() == [0.0, 2.0, 0.0]  # 0.5 -> 0 and 1.5 -> 2 (to even)
    dialect, con = database
    if dialect == "duckdb":
        con.register("half", frame)  # type: ignore[union-attr]
    else:
        frame.to_sql("half", con, if_exists="replace", index=False)  # type: ignore[arg-type]
    sql = compile_scorecard(icp, {"employees": "number"}, dialect=dialect, table="half")
    assert _run(database, sql)["score"].astype(float).tolist() == [0.0, 2.0, 0.0]


@pytest.mark.parametrize("dialect", ["snowflake", "bigquery", "tsql"])
def test_other_dialects_are_written(dialect: str) -> None:
    icp = IcpCriteria.model_validate(yaml.safe_load(POINTS))
    sql = compile_scorecard(icp, TYPES, dialect=dialect, table="analytics.icp_features")
    assert "analytics.icp_features" in sql
    assert sql.count("SELECT") >= 6


def test_unknown_dialect_lists_the_valid_ones() -> None:
    icp = IcpCriteria.model_validate(yaml.safe_load(SHARE))
    with pytest.raises(SqlCompileError, match=r"unknown SQL dialect 'postgre'; valid: .*postgres"):
        compile_scorecard(icp, TYPES, dialect="postgre")


def test_cli_score_where_the_data_is_matches_the_sync(tmp_path) -> None:
    """Features into DuckDB, the compiled SQL run there: the same values a sync writes."""
    from icp_engine.connectors.sample import write_sample_crm

    from tests.test_cli import icp

    export = tmp_path / "export"
    write_sample_crm(export, accounts=400)
    code, sql, _ = icp("score", "--sql", "postgres")
    assert code == 0 and sql.lstrip().startswith("WITH icp_source AS")
    url = f"duckdb:///{tmp_path / 'wh.duckdb'}"
    code, out, err = icp("score", "--features-to", url, "--source", export, "--json")
    assert code == 0, err
    assert json.loads(out)["rows"] == 400
    code, out, err = icp("score", "--url", url, "--out", tmp_path / "scores.csv", "--json")
    assert code == 0, err
    assert json.loads(out)["rows"] == 400
    code, _, err = icp("backfill", "--crm", "csv", "--source", export, state=tmp_path / "state")
    assert code == 0, err
    written = pd.read_csv(export / "icp_updates.csv", dtype=str).set_index("Id")
    warehouse = pd.read_csv(tmp_path / "scores.csv", dtype=str).set_index("account_id")
    warehouse = warehouse.loc[written.index]
    assert (warehouse["tier"] == written["ICP_Tier__c"]).all()
    assert (warehouse["reasons"] == written["ICP_Reasons__c"]).all()
    assert (warehouse["score"].astype(float) == written["ICP_Score__c"].astype(float)).all()

    # a sync that takes its scores from a view of the SQL writes the same update file
    code, view_sql, _ = icp("score", "--sql", "duckdb")
    with duckdb.connect(str(tmp_path / "wh.duckdb")) as con:
        con.execute(f"CREATE VIEW icp_scores AS {view_sql}")
    from_warehouse = tmp_path / "from_warehouse.csv"
    code, out, err = icp(
        "backfill", "--crm", "csv", "--source", export, "--out", from_warehouse,
        "--scores-from", url, "--json", state=tmp_path / "state2",
    )  # fmt: skip
    assert code == 0, err
    assert json.loads(out)["counts"]["written"] == len(written)
    same = pd.read_csv(from_warehouse, dtype=str).set_index("Id").loc[written.index]
    pd.testing.assert_frame_equal(same, written)


def test_cli_score_needs_exactly_one_mode() -> None:
    from tests.test_cli import icp

    code, _, err = icp("score")
    assert code == 2
    assert "give one of --sql DIALECT, --url URL or --features-to URL" in err
