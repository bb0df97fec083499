"""Criteria evaluation (`score_accounts`) and the derived features it scores on."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import yaml
from icp_engine.scoring.criteria import NO_MATCH_REASON, score_accounts
from icp_engine.scoring.features import available_fields, build_features, region_of
from icp_engine.scoring.schema import IcpCriteria
from icp_engine.sync.config import load_config

T, F = True, False


def icp_from(text: str) -> IcpCriteria:
    return IcpCriteria.model_validate(yaml.safe_load(text))


def one_criterion(condition: str) -> IcpCriteria:
    return icp_from(f"criteria:\n  must_have:\n    - {{name: c, weight: 1, {condition}}}\n")


def nulls_as_none(series: pd.Series) -> list[object]:
    return [None if pd.isna(v) else v for v in series]


def accounts(**columns: object) -> pd.DataFrame:
    n = len(next(iter(columns.values())))  # type: ignore[arg-type]
    return pd.DataFrame({"account_id": [f"a{i}" for i in range(1, n + 1)], **columns})


# -- operators ------------------------------------------------------------------------------


@pytest.fixture(params=["object", "str"])
def frame(request: pytest.FixtureRequest) -> pd.DataFrame:
    """Five accounts; text columns as plain objects or as pandas' string dtype."""
    text = request.param
    return accounts(
        industry=pd.Series(
            ["Technology/SaaS", " technology/saas ", None, "Media", "Healthcare"], dtype=text
        ),
        technologies=pd.Series(
            ["Salesforce;HubSpot", "hubspot", None, "Marketo", "Salesforce"], dtype=text
        ),
        employees=[50.0, 500.0, np.nan, 10.0, 1000.0],
        is_customer=[T, F, T, F, F],
        won=pd.array([T, F, None, T, F], dtype="boolean"),
        created_at=pd.to_datetime(
            ["2025-01-01", "2023-06-01", None, "2024-01-02", "2024-01-01"], utc=True
        ),
    )


OPERATOR_CASES = [
    ("field: industry, eq: TECHNOLOGY/SAAS", [T, T, F, F, F]),
    ("field: industry, eq: Media", [F, F, F, T, F]),
    ("field: industry, in: [media, HEALTHCARE]", [F, F, F, T, T]),
    ("field: industry, not_in: [Media]", [T, T, F, F, T]),
    ("field: industry, is_null: true", [F, F, T, F, F]),
    ("field: industry, is_null: false", [T, T, F, T, T]),
    ("field: employees, between: [50, 500]", [T, T, F, F, F]),
    ("field: employees, gt: 500", [F, F, F, F, T]),
    ("field: employees, gte: 500", [F, T, F, F, T]),
    ("field: employees, lt: 50", [F, F, F, T, F]),
    ("field: employees, lte: 50", [T, F, F, T, F]),
    ("field: employees, eq: 500", [F, T, F, F, F]),
    ("field: employees, in: [10, 1000]", [F, F, F, T, T]),
    ("field: employees, not_in: [10]", [T, T, F, F, T]),
    ("field: employees, is_null: true", [F, F, T, F, F]),
    ("field: employees, is_null: false", [T, T, F, T, T]),
    ("field: technologies, contains: hubspot", [T, T, F, F, F]),
    ("field: technologies, contains: [SALESFORCE, Marketo]", [T, F, F, T, T]),
    ("field: technologies, contains: Sales", [F, F, F, F, F]),
    ("field: is_customer, eq: true", [T, F, T, F, F]),
    ("field: is_customer, eq: false", [F, T, F, T, T]),
    ("field: won, eq: true", [T, F, F, T, F]),
    ("field: won, eq: false", [F, T, F, F, T]),
    ("field: won, is_null: true", [F, F, T, F, F]),
    ("field: created_at, gt: 2024-01-01", [T, F, F, T, F]),
    ("field: created_at, gte: 2024-01-01", [T, F, F, T, T]),
    ("field: created_at, lt: 2024-01-01", [F, T, F, F, F]),
    ("field: created_at, between: [2024-01-01, 2024-12-31]", [F, F, F, T, T]),
    ("field: created_at, gt: 2024-01-01T12:00:00Z", [T, F, F, T, F]),
]


@pytest.mark.parametrize(("condition", "expected"), OPERATOR_CASES)
def test_operators(frame: pd.DataFrame, condition: str, expected: list[bool]) -> None:
    scored = score_accounts(frame, one_criterion(condition))
    assert (scored["score"] == 100.0).tolist() == expected
    assert set(scored["score"]) <= {0.0, 100.0}


def test_conditions_under_when_must_all_hold(frame: pd.DataFrame) -> None:
    icp = icp_from(
        """
criteria:
  must_have:
    - name: saas mid-size
      weight: 1
      when:
        - {field: industry, eq: Technology/SaaS}
        - {field: employees, gte: 100}
"""
    )
    assert score_accounts(frame, icp)["score"].tolist() == [0.0, 100.0, 0.0, 0.0, 0.0]


# -- score, penalties, tiers ------------------------------------------------------------------


SCORE_ICP = """
criteria:
  must_have:
    - {name: big, field: employees, gte: 100, weight: 3}
  bonus:
    - {name: saas, field: industry, eq: SaaS, weight: 1}
    - {name: known, field: country, is_null: false, weight: 2}
tiers: {A: 80, B: 40, C: 0}
"""


def test_score_is_the_share_of_matched_weight() -> None:
    frame = accounts(
        employees=[500.0, 500.0, 10.0, 10.0, np.nan],
        industry=["SaaS", "Other", "saas", None, None],
        country=["US", "US", None, None, None],
    )
    scored = score_accounts(frame, icp_from(SCORE_ICP))
    # weights 3, 1, 2 of 6
    assert scored["score"].tolist() == [100.0, 83.0, 17.0, 0.0, 0.0]
    assert scored["tier"].tolist() == ["A", "A", "C", "C", "C"]
    scaled = score_accounts(frame, icp_from(SCORE_ICP), score_scale=2)
    assert scaled["score"].tolist() == [100.0, 83.33, 16.67, 0.0, 0.0]
    assert scored["account_id"].tolist() == ["a1", "a2", "a3", "a4", "a5"]
    assert list(scored.columns) == [
        "account_id", "score", "tier", "segment", "route", "reasons", "expansion",
        "win_probability",  # issue 9: the optional calibrated output
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("weights", "scale", "score", "tier"),
    [
        ((70, 30), 0, 70.0, "A"),
        ((69, 31), 0, 69.0, "B"),
        ((69.6, 30.4), 0, 70.0, "A"),  # tiers use the rounded score
        ((69.6, 30.4), 1, 69.6, "B"),
        ((45, 55), 0, 45.0, "B"),
        ((24.9, 75.1), 1, 24.9, "D"),
        ((25, 75), 0, 25.0, "C"),
    ],
)
def test_tiers_by_threshold(
    weights: tuple[float, float], scale: int, score: float, tier: str
) -> None:
    icp = icp_from(
        f"""
criteria:
  must_have:
    - {{name: hit, field: x, eq: 1, weight: {weights[0]}}}
    - {{name: miss, field: x, eq: 2, weight: {weights[1]}}}
tiers: {{A: 70, B: 45, C: 25, D: 0}}
"""
    )
    scored = score_accounts(accounts(x=[1.0]), icp, score_scale=scale)
    assert scored["score"].tolist() == [score]
    assert scored["tier"].tolist() == [tier]


ANTI_ICP = """
criteria:
  must_have:
    - {name: big, field: employees, gte: 100, weight: 60}
    - {name: saas, field: industry, eq: SaaS, weight: 40}
tiers: {A: 75, B: 50, C: 25, D: 0}
anti_patterns:
  - {name: pre-revenue, field: revenue, lte: 0, penalty: 30}
  - {name: government, field: industry, eq: Government, penalty: 80}
  - {name: enterprise, field: employees, gt: 5000, cap_tier: C}
  - {name: huge, field: employees, gt: 100000, penalty: 5, cap_tier: B}
"""


def test_penalty_subtracts_and_clips_at_zero() -> None:
    frame = accounts(
        employees=[200.0, 200.0, 200.0, 10.0],
        industry=["SaaS", "SaaS", "Government", "SaaS"],
        revenue=[1.0, 0.0, 0.0, -5.0],
    )
    scored = score_accounts(frame, icp_from(ANTI_ICP))
    assert scored["score"].tolist() == [100.0, 70.0, 0.0, 10.0]
    assert scored["tier"].tolist() == ["A", "B", "D", "D"]


def test_cap_tier_caps_a_high_score_and_never_raises_a_low_one() -> None:
    frame = accounts(
        employees=[6000.0, 6000.0, 200_000.0, 200_000.0],
        industry=["SaaS", "Other", "SaaS", None],
        revenue=[1.0, 1.0, 1.0, 1.0],
    )
    scored = score_accounts(frame, icp_from(ANTI_ICP))
    assert scored["score"].tolist() == [100.0, 60.0, 95.0, 55.0]
    # 6000 employees: capped at C. 200k: both caps apply, the lower (C) wins.
    assert scored["tier"].tolist() == ["C", "C", "C", "C"]
    low = accounts(employees=[6000.0], industry=["Government"], revenue=[0.0])
    assert score_accounts(low, icp_from(ANTI_ICP))["tier"].tolist() == ["D"]


# -- segments and routing ---------------------------------------------------------------------


ROUTING_ICP = """
criteria:
  must_have:
    - {name: big, field: employees, gte: 100, weight: 50}
    - {name: saas, field: industry, eq: SaaS, weight: 50}
tiers: {A: 100, B: 50, C: 0}
segments:
  - name: SaaS scale-up
    when:
      - {field: industry, eq: SaaS}
      - {field: employees, between: [100, 300]}
  - name: Big
    when: [{field: employees, gte: 100}]
  - name: Rest
routing:
  - route: scale-up desk
    when: [{field: segment, eq: SaaS scale-up}]
  - route: AE
    when: [{field: tier, in: [A, B]}]
  - route: customer success
    when: [{field: is_customer, eq: true}]
  - route: SDR
    when: [{field: score, gte: 0}, {field: employees, lt: 10}]
  - route: nurture
"""


def test_segments_and_routing_first_match_wins() -> None:
    frame = accounts(
        employees=[200.0, 1000.0, 2000.0, 20.0, 5.0, np.nan],
        industry=["SaaS", "SaaS", "Other", "Other", "Other", None],
        is_customer=[T, F, T, T, F, F],
    )
    scored = score_accounts(frame, icp_from(ROUTING_ICP))
    assert scored["score"].tolist() == [100.0, 100.0, 50.0, 0.0, 0.0, 0.0]
    assert scored["tier"].tolist() == ["A", "A", "B", "C", "C", "C"]
    assert scored["segment"].tolist() == ["SaaS scale-up", "Big", "Big", "Rest", "Rest", "Rest"]
    assert scored["route"].tolist() == [
        "scale-up desk",  # segment rule first, though tier A would match AE too
        "AE",
        "AE",  # tier before customer flag: order decides
        "customer success",
        "SDR",
        "nurture",
    ]


def test_no_segments_or_routing_gives_none() -> None:
    scored = score_accounts(accounts(x=[1.0, 2.0]), one_criterion("field: x, eq: 1"))
    assert scored["segment"].tolist() == [None, None]
    assert scored["route"].tolist() == [None, None]


# -- reasons ----------------------------------------------------------------------------------


REASONS_ICP = """
criteria:
  must_have:
    - {name: employees 50-500, field: employees, between: [50, 500], weight: 25}
    - {name: target industry, field: industry, eq: SaaS, weight: 20}
  strong_signal:
    - {name: other, field: industry, eq: nothing, weight: 45}
  bonus:
    - {name: equal to industry, field: country, eq: US, weight: 20}
    - {name: small bonus, field: country, eq: US, weight: 10}
anti_patterns:
  - {name: pre-revenue, field: revenue, lte: 0, penalty: 30}
  - {name: tiny penalty, field: revenue, lt: -100, penalty: 5}
  - {name: enterprise, field: employees, gt: 5000, cap_tier: C}
"""


def test_reasons_sorted_by_points_then_file_order() -> None:
    frame = accounts(
        employees=[100.0, 100.0, 10.0, 10.0, 9000.0],
        industry=["SaaS", "saas", None, None, None],
        country=["US", None, None, "US", None],
        revenue=[5.0, 5.0, 5.0, -500.0, 5.0],
    )
    reasons = score_accounts(frame, icp_from(REASONS_ICP))["reasons"].tolist()
    # whole points, as a seller reads them (issue 9); order still by exact points
    assert reasons[0] == (
        "+21 employees 50-500; +17 target industry; +17 equal to industry; +8 small bonus"
    )
    assert reasons[1] == "+21 employees 50-500; +17 target industry"
    assert reasons[2] == NO_MATCH_REASON == "no criteria matched"
    assert reasons[4] == "enterprise (tier capped at C)"


def test_reasons_format_with_whole_points() -> None:
    icp = icp_from(
        """
criteria:
  must_have:
    - {name: employees 50-500, field: employees, between: [50, 500], weight: 25}
    - {name: target industry, field: industry, eq: SaaS, weight: 20}
    - {name: rest, field: industry, eq: nothing, weight: 55}
anti_patterns:
  - {name: pre-revenue, field: revenue, lte: 0, penalty: 10}
"""
    )
    frame = accounts(employees=[100.0, 10.0], industry=["SaaS", None], revenue=[0.0, 0.0])
    scored = score_accounts(frame, icp)
    assert scored["reasons"].tolist() == [
        "+25 employees 50-500; +20 target industry; -10 pre-revenue",
        "-10 pre-revenue",
    ]
    assert scored["score"].tolist() == [35.0, 0.0]


def test_penalties_come_after_positive_reasons() -> None:
    icp = icp_from(
        """
criteria:
  must_have:
    - {name: employees 50-500, field: employees, between: [50, 500], weight: 25}
    - {name: target industry, field: industry, eq: SaaS, weight: 20}
    - {name: rest, field: industry, eq: nothing, weight: 55}
anti_patterns:
  - {name: pre-revenue, field: revenue, lte: 0, penalty: 30}
"""
    )
    frame = accounts(employees=[100.0], industry=["SaaS"], revenue=[0.0])
    assert score_accounts(frame, icp)["reasons"].tolist() == [
        "+25 employees 50-500; +20 target industry; -30 pre-revenue"
    ]


def test_reasons_are_cut_at_a_whole_reason() -> None:
    icp = icp_from(
        """
criteria:
  must_have:
    - {name: employees 50-500, field: employees, between: [50, 500], weight: 25}
    - {name: target industry, field: industry, eq: SaaS, weight: 20}
    - {name: rest, field: industry, eq: nothing, weight: 55}
"""
    )
    frame = accounts(employees=[100.0], industry=["SaaS"])
    full = "+25 employees 50-500; +20 target industry"

    def reasons(length: int | None) -> str:
        return str(score_accounts(frame, icp, reasons_length=length)["reasons"].iloc[0])

    assert reasons(None) == full
    assert reasons(len(full)) == full
    assert reasons(len(full) - 1) == "+25 employees 50-500"
    assert reasons(len("+25 employees 50-500")) == "+25 employees 50-500"
    # Even the first reason does not fit: it is cut to the length rather than left out.
    assert reasons(10) == "+25 employ"


# -- determinism and incremental equivalence ------------------------------------------------


def _population(n: int, seed: int = 7) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Accounts and opportunities with every field the bundled icp.yaml uses."""
    rng = np.random.default_rng(seed)
    industries = ["Technology/SaaS", "E-commerce/Retail", "Healthcare", "Government", None]
    countries = ["United States", "Germany", "India", "Brazil", "Atlantis", None]
    stacks = ["Salesforce;HubSpot;Snowflake", "HubSpot", "Marketo", None, "Salesforce"]
    funding = ["Series A-C", "Seed", None]
    employees = rng.choice([5, 40, 60, 150, 250, 800, 3000, 7000, np.nan], n).astype(float)
    acc = pd.DataFrame(
        {
            "account_id": [f"001{i:04d}" for i in range(n)],
            "name": [f"Account {i}" for i in range(n)],
            "industry": pd.Series(rng.choice(np.array(industries, dtype=object), n), dtype=object),
            "country": pd.Series(rng.choice(np.array(countries, dtype=object), n), dtype=object),
            "technologies": pd.Series(rng.choice(np.array(stacks, dtype=object), n), dtype=object),
            "funding_stage": pd.Series(
                rng.choice(np.array(funding, dtype=object), n), dtype=object
            ),
            "employees": employees,
            "employees_last_year": employees * rng.choice([0.5, 0.9, 1.0, np.nan], n),
            "annual_revenue": rng.choice([0.0, 1e5, 1e7, np.nan], n),
        }
    )
    m = 3 * n
    opp_accounts = rng.choice(acc["account_id"].to_numpy(), m)
    closed = rng.random(m) < 0.7
    opps = pd.DataFrame(
        {
            "opportunity_id": [f"006{i:05d}" for i in range(m)],
            "account_id": opp_accounts,
            "is_closed": pd.array(closed, dtype="boolean"),
            "is_won": pd.array(closed & (rng.random(m) < 0.4), dtype="boolean"),
            "amount": rng.choice([1000.0, 5000.0, np.nan], m),
        }
    )
    return acc, opps


@pytest.fixture(scope="module")
def bundled_icp() -> IcpCriteria:
    return load_config("csv", None).icp


def test_bundled_icp_fields_are_all_available(bundled_icp: IcpCriteria) -> None:
    acc, opps = _population(5)
    features = build_features(acc, opps)
    for _, _, criterion in bundled_icp.all_criteria():
        for condition in criterion.conditions():
            assert condition.field in features


def test_same_input_gives_identical_output(bundled_icp: IcpCriteria) -> None:
    acc, opps = _population(200)
    first = score_accounts(build_features(acc, opps), bundled_icp, 255)
    second = score_accounts(build_features(acc.copy(), opps.copy()), bundled_icp, 255)
    pd.testing.assert_frame_equal(first, second)
    assert first["reasons"].str.len().max() <= 255
    assert first["tier"].nunique() > 1
    assert first["segment"].nunique() > 1
    assert first["route"].nunique() > 1


def test_row_order_does_not_change_results(bundled_icp: IcpCriteria) -> None:
    acc, opps = _population(200)
    straight = score_accounts(build_features(acc, opps), bundled_icp, 255)
    shuffled_acc = acc.sample(frac=1.0, random_state=3)  # keeps the shuffled index
    shuffled_opps = opps.sample(frac=1.0, random_state=4)
    shuffled = score_accounts(build_features(shuffled_acc, shuffled_opps), bundled_icp, 255)
    assert shuffled["account_id"].tolist() == shuffled_acc["account_id"].tolist()
    pd.testing.assert_frame_equal(
        straight.set_index("account_id").sort_index(),
        shuffled.set_index("account_id").sort_index(),
    )


def test_scoring_alone_equals_scoring_among_many(bundled_icp: IcpCriteria) -> None:
    acc, opps = _population(40)
    together = score_accounts(build_features(acc, opps), bundled_icp, 255).set_index("account_id")
    for i in range(len(acc)):
        one = acc.iloc[[i]].reset_index(drop=True)
        own = opps.loc[opps["account_id"] == one["account_id"].iloc[0]]
        alone = score_accounts(build_features(one, own), bundled_icp, 255).set_index("account_id")
        pd.testing.assert_frame_equal(alone, together.loc[alone.index])


def test_empty_frame() -> None:
    empty = accounts(x=pd.Series([], dtype=float))
    scored = score_accounts(empty, one_criterion("field: x, eq: 1"))
    assert len(scored) == 0
    assert list(scored.columns) == [
        "account_id", "score", "tier", "segment", "route", "reasons", "expansion",
        "win_probability",  # issue 9: the optional calibrated output
    ]  # fmt: skip


@pytest.mark.parametrize(
    "condition",
    ["field: technologies, contains: Salesforce", "field: industry, in: [Technology/SaaS]"],
)
def test_text_condition_on_all_null_float_column_matches_nothing(condition: str) -> None:
    frame = accounts(technologies=[np.nan, np.nan], industry=[np.nan, np.nan])
    assert score_accounts(frame, one_criterion(condition))["score"].tolist() == [0.0, 0.0]


# -- features ---------------------------------------------------------------------------------


def test_region_from_country() -> None:
    countries = pd.Series(["US", "Germany", " united states ", "IN", "Brasil", "Atlantis", None])
    assert nulls_as_none(region_of(countries)) == ["NA", "EMEA", "NA", "APAC", "LATAM", None, None]


def test_build_features() -> None:
    acc = pd.DataFrame(
        {
            "account_id": ["A", "B", "C", "D"],
            "country": ["US", "Germany", "Atlantis", None],
            "employees": [120.0, 50.0, 10.0, np.nan],
            "employees_last_year": [100.0, 0.0, np.nan, 5.0],
            "technologies": ["Salesforce;HubSpot", "Salesforce", None, "a;b;c"],
        }
    )
    opps = pd.DataFrame(
        {
            "opportunity_id": ["o1", "o2", "o3", "o4", "o5", "o6"],
            "account_id": ["A", "A", "A", "B", "B", "Z"],
            "is_closed": pd.array([T, T, F, T, None, T], dtype="boolean"),
            "is_won": pd.array([T, F, F, F, None, T], dtype="boolean"),
            "amount": [1000.0, 500.0, 200.0, 300.0, np.nan, 99.0],
        }
    )
    features = build_features(acc, opps)
    assert features["account_id"].tolist() == ["A", "B", "C", "D"]
    assert nulls_as_none(features["region"]) == ["NA", "EMEA", None, None]
    growth = features["employee_growth"].tolist()
    assert growth[0] == pytest.approx(0.2)
    assert all(np.isnan(g) for g in growth[1:])  # no last year, or last year 0
    assert features["tech_count"].tolist() == [2.0, 1.0, 0.0, 3.0]
    assert features["won_deals"].tolist() == [1.0, 0.0, 0.0, 0.0]
    assert features["lost_deals"].tolist() == [1.0, 1.0, 0.0, 0.0]
    assert features["open_deals"].tolist() == [1.0, 1.0, 0.0, 0.0]  # unknown closed: open
    assert features["won_amount"].tolist() == [1000.0, 0.0, 0.0, 0.0]
    assert features["is_customer"].tolist() == [T, F, F, F]
    assert list(acc.columns) == [
        "account_id",
        "country",
        "employees",
        "employees_last_year",
        "technologies",
    ]  # the input is not modified


def test_features_without_opportunities_or_optional_inputs() -> None:
    acc = pd.DataFrame({"account_id": ["A", "B"], "employees": [10.0, 20.0]})
    features = build_features(acc, pd.DataFrame())
    assert "region" not in features
    assert "employee_growth" not in features
    assert "tech_count" not in features
    assert features["won_deals"].tolist() == [0.0, 0.0]
    assert features["is_customer"].tolist() == [F, F]


def test_mapped_region_is_kept() -> None:
    acc = pd.DataFrame({"account_id": ["A"], "country": ["US"], "region": ["Custom"]})
    assert build_features(acc, pd.DataFrame())["region"].tolist() == ["Custom"]


def test_available_fields_follow_inputs() -> None:
    fields = available_fields({"account_id": "text", "country": "text", "employees": "number"})
    assert fields["region"] == "text"
    assert fields["won_deals"] == "number"
    assert fields["is_customer"] == "boolean"
    assert "employee_growth" not in fields
    assert "tech_count" not in fields


def test_expansion_is_scored_for_customers_only() -> None:
    icp = icp_from(
        "criteria:\n  must_have:\n    - {name: c, weight: 1, field: employees, gte: 0}\n"
        "expansion:\n"
        "  - {name: Salesforce users, field: technologies, contains: Salesforce, weight: 3}\n"
        "  - {name: big, field: employees, gte: 100, weight: 1}\n"
    )
    frame = accounts(
        technologies=["Salesforce", "Salesforce", "Marketo", None],
        employees=[500.0, 50.0, 500.0, 10.0],
        is_customer=[T, T, T, F],
    )
    assert nulls_as_none(score_accounts(frame, icp)["expansion"]) == [100.0, 75.0, 25.0, None]
    without = one_criterion("field: employees, gte: 0")
    assert score_accounts(frame, without)["expansion"].isna().all()
