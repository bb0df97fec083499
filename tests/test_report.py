"""The `icp report` page: self-contained, escaped, deterministic, and true to the data."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from typing import Any, ClassVar

import numpy as np
import pandas as pd
import pytest
import yaml
from icp_engine.scoring.report.build import checklist, conditions_text, render_report, tier_summary
from icp_engine.scoring.schema import IcpCriteria

CRITERIA_YAML = """
name: Starting ICP
criteria:
  must_have:
    - {name: employees 50-500, field: employees, between: [50, 500], weight: 0.25}
    - name: target industry
      field: industry
      in: [Technology/SaaS, E-commerce/Retail, Financial Services]
      weight: 0.20
    - name: uses Salesforce or HubSpot
      field: technologies
      contains: [Salesforce, HubSpot]
      weight: 0.15
  strong_signal:
    - {name: Series A-C funding, field: funding_stage, eq: Series A-C, weight: 0.10}
    - {name: headcount growth > 20%, field: employee_growth, gt: 0.20, weight: 0.10}
    - {name: 3+ sales and data tools, field: tech_count, gte: 3, weight: 0.08}
  bonus:
    - {name: HQ in North America or EMEA, field: region, in: [NA, EMEA], weight: 0.07}
    - {name: medium-priority industry, field: industry, in: [Healthcare, Media], weight: 0.05}
tiers: {A: 70, B: 45, C: 25, D: 0}
anti_patterns:
  - {name: pre-revenue, field: annual_revenue, lte: 0, penalty: 30}
  - {name: enterprise, field: employees, gt: 5000, penalty: 10, cap_tier: B}
segments:
  - name: Scale-up SaaS
    when: [{field: industry, eq: Technology/SaaS}]
  - name: Other
"""
GENERATED = datetime(2025, 6, 30, 12, 0, tzinfo=UTC)
# closed deals per tier: (won, lost); Tier A wins 6 of 10, B 4 of 10, C 2 of 10, D 1 of 10
OUTCOMES = {"A": (6, 4), "B": (4, 6), "C": (2, 8), "D": (1, 9)}
ACCOUNTS = {"A": 8, "B": 12, "C": 12, "D": 8}


@pytest.fixture
def criteria() -> IcpCriteria:
    return IcpCriteria.model_validate(yaml.safe_load(CRITERIA_YAML))


@pytest.fixture
def scored() -> pd.DataFrame:
    rows = []
    base = {"A": 80, "B": 55, "C": 30, "D": 10}
    for tier, count in ACCOUNTS.items():
        rows += [
            {"account_id": f"{tier}{i}", "score": base[tier] + i, "tier": tier, "segment": "Other"}
            for i in range(count)
        ]
    return pd.DataFrame(rows)


@pytest.fixture
def opportunities() -> pd.DataFrame:
    start = pd.Timestamp("2025-01-01", tz="UTC")
    rows = []
    for tier, (won, lost) in OUTCOMES.items():
        for i in range(won + lost):
            rows.append(
                {
                    "opportunity_id": f"o-{tier}-{i}",
                    "account_id": f"{tier}{i % ACCOUNTS[tier]}",
                    "is_closed": True,
                    "is_won": i < won,
                    "amount": 10_000.0 * (1 + i),
                    "created_at": start,
                    "closed_at": start + timedelta(days=20 + 3 * i),
                }
            )
    rows.append(  # an open deal counts in no win rate
        {
            "opportunity_id": "open",
            "account_id": "A0",
            "is_closed": False,
            "is_won": False,
            "amount": 5.0,
            "created_at": start,
            "closed_at": pd.NaT,
        }
    )
    return pd.DataFrame(rows)


def pattern(name: str, **extra: Any) -> dict[str, Any]:
    return {
        "name": name,
        "rule": "industry = Technology/SaaS and employees 100-300",
        "support": 120,
        "win_rate": 0.48,
        "win_rate_ci": [0.39, 0.57],
        "acv": 42_000.0,
        "cycle_days": 38.0,
        **extra,
    }


def full_model(signal: bool = True, segment_name: str = "Scale-up SaaS") -> dict[str, Any]:
    return {
        "version": 3,
        "signal": signal,
        "holdout": {
            "auc": 0.71 if signal else 0.52,
            "auc_ci": [0.64, 0.78] if signal else [0.45, 0.59],
            "brier": 0.208,
            "ece": 0.031,
            "n_won": 140,
            "n_lost": 260,
            "window": {"start": "2025-01-01", "end": "2025-06-30"},
        },
        "challenger": {
            "model": "HistGradientBoosting",
            "auc": 0.73,
            "auc_ci": [0.66, 0.8],
            "clearly_better": False,
            "note": "Within the scorecard's interval.",
        },
        "calibration": [
            {"predicted": p / 10, "observed": p / 10 + 0.02, "n": 40} for p in range(1, 9)
        ],
        "score_distribution": [
            {"low": lo, "high": lo + 10, "n": 30 + lo, "win_rate": lo / 150}
            for lo in range(0, 100, 10)
        ],
        "segments": [
            pattern(
                segment_name,
                lift=1.6,
                acv_vs_avg=1.3,
                traits=["SaaS", "100-300 staff"],
                llm_name="Hungry scale-ups",
                hypotheses=["They outgrow spreadsheets"],
            )
        ],
        "emerging": [
            pattern(
                "Fintech mid-market",
                recent_wins=12,
                before_wins=3,
                recent_share=0.21,
                before_share=0.06,
                share_of_revenue=0.18,
                p_value=0.004,
            )
        ],
        "anti_patterns": [
            pattern(
                "Pre-revenue",
                win_rate=0.04,
                win_rate_ci=[0.01, 0.1],
                penalty=30,
                reason="wins far below the overall rate",
            )
        ],
        "loss_patterns": [
            pattern("Price in SMB", reason="Price", share_in_segment=0.45, share_overall=0.2)
        ],
        "warnings": ["Only 140 won deals: estimates are wide."],
        "features_used": ["employees", "industry"],
        "features_dropped": [{"name": "favourite_colour", "reason": "no lift"}],
        "criteria_file": "criteria/v3.yaml",
        "tracking": {
            "versions": [
                {
                    "version": "v0002",
                    "scored": 900,
                    "closed_won": 40,
                    "closed_lost": 60,
                    "auc": 0.66,
                    "win_rate_by_tier": {
                        "A": {"n": 30, "won": 15, "win_rate": 0.5},
                        "D": {"n": 20, "won": 2, "win_rate": 0.1},
                    },
                },
            ]
        },
        "train_window": {"start": "2023-01-01", "end": "2024-12-31"},
        "expansion": {
            "auc": 0.68,
            "auc_ci": [0.6, 0.75],
            "n_customers": 210,
            "n_expanded": 60,
            "criteria": [{"name": "uses HubSpot", "weight": 3.0}, {"name": "EMEA", "weight": 1.0}],
            "note": "AUC from 4-fold cross-validation over customers",
        },
    }


class StrictParser(HTMLParser):
    """Fails on a closing tag that does not close the innermost open element."""

    VOID: ClassVar[set[str]] = {
        "meta",
        "br",
        "img",
        "input",
        "link",
        "hr",
        "circle",
        "line",
        "rect",
        "polyline",
    }

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.tables: list[list[list[str]]] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self._cell = []
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pass

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        assert self.stack, f"</{tag}> closes nothing"
        opened = self.stack.pop()
        assert opened == tag, f"</{tag}> closes <{opened}>"
        if tag in ("td", "th") and self._cell is not None:
            self.tables[-1][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def parse(html: str) -> StrictParser:
    parser = StrictParser()
    parser.feed(html)
    parser.close()
    assert parser.stack == [], f"unclosed: {parser.stack}"
    return parser


def table_with(parser: StrictParser, header: str) -> list[list[str]]:
    return next(t for t in parser.tables if t and header in t[0])


def render(
    model: dict[str, Any],
    criteria: IcpCriteria,
    scored: pd.DataFrame,
    opportunities: pd.DataFrame,
    previous: dict[str, Any] | None = None,
    at: datetime = GENERATED,
) -> str:
    return render_report(model, scored, opportunities, criteria, previous, at)


def test_report_is_self_contained_html(criteria, scored, opportunities):
    html = render(full_model(), criteria, scored, opportunities)
    parse(html)
    assert html.startswith("<!DOCTYPE html>")
    assert not re.search(r"""(src|href)\s*=\s*["']?\s*(https?:)?//""", html, re.IGNORECASE)
    assert "@import" not in html
    assert not re.search(r"url\(", html)
    assert "<script" not in html.lower()
    assert "<svg" in html  # charts are inline
    assert "trained on 1 Jan 2023 to 31 Dec 2024" in html  # human dates (issue 9)
    assert "Expansion AUC" in html and "uses HubSpot" in html
    tracking = table_with(parse(html), "Won since")
    assert tracking[1][:5] == ["v0002", "900", "40", "60", "0.66"]


def test_tier_table_shows_the_computed_figures(criteria, scored, opportunities):
    html = render(full_model(), criteria, scored, opportunities)
    rows = table_with(parse(html), "Win rate")
    header, body = rows[0], {r[0]: dict(zip(rows[0], r, strict=True)) for r in rows[1:]}
    assert header[0] == "Tier"
    assert list(body) == ["A", "B", "C", "D"]
    summary = tier_summary(scored, opportunities, ["A", "B", "C", "D"]).set_index("tier")
    for tier, (won, lost) in OUTCOMES.items():  # the deal-level table (icp demo) stays
        assert summary.loc[tier, "win_rate"] == pytest.approx(won / (won + lost))
    # The report counts accounts, as `icp train` does (issue 9: one overall win rate, one
    # definition): an account with a won deal is won. Deal i of a tier goes to account
    # i % accounts, and deals 0..won-1 are the won ones.
    for tier, (won, lost) in OUTCOMES.items():
        deals = won + lost
        owners = {i % ACCOUNTS[tier] for i in range(deals)}
        winners = {i % ACCOUNTS[tier] for i in range(won)}
        assert body[tier]["Closed"] == str(len(owners))
        assert body[tier]["Won"] == str(len(winners))
        assert body[tier]["Win rate"] == f"{len(winners) / len(owners):.1%}"
        assert body[tier]["Accounts"] == str(ACCOUNTS[tier])
    assert body["A"]["Share"] == "20.0%"
    assert body["A"]["Win rate"] == "75.0%"  # A0-A5 won, A6 and A7 lost
    assert body["A"]["Median cycle"] == "28 d"  # won A deals closed after 20, 23, ..., 35 days


def test_checklist_is_generated_from_the_criteria(criteria, scored, opportunities):
    html = render(full_model(), criteria, scored, opportunities)
    # field labels and a seller's words (issue 9), never `annual_revenue` or `is empty`
    assert "confirm Employees 50-500 (+25)" in html
    assert (
        "confirm Industry: Technology/SaaS, E-commerce/Retail or Financial Services (+20)" in html
    )
    assert "confirm Uses Salesforce or HubSpot (+15)" in html
    assert "Pre-revenue: \u221230 points" in html
    tiers = {t.tier: t for t in checklist(criteria)}
    # Tier A needs 70: all three must-haves (60) and the best other signal (10)
    assert [line.split(" (+")[0] for line in tiers["A"].confirm] == [
        "confirm Employees 50-500",
        "confirm Industry: Technology/SaaS, E-commerce/Retail or Financial Services",
        "confirm Uses Salesforce or HubSpot",
        "confirm Funding stage: Series A-C",
    ]
    assert len(tiers["B"].confirm) == 2  # 25 + 20 reach 45
    assert any("never above Tier B" in f for f in tiers["A"].flags)
    assert not any("never above" in f for f in tiers["B"].flags)
    assert tiers["D"].confirm == [] and "nurture" in tiers["D"].summary


def test_conditions_read_like_speech(criteria):
    texts = [conditions_text(c.conditions()) for _, _, c in criteria.all_criteria()]
    assert texts[4] == "Headcount growth over 20%"
    assert texts[5] == "3+ technologies"
    assert texts[6] == "Region: NA or EMEA"


def test_no_signal_says_so_and_signal_does_not(criteria, scored, opportunities):
    quiet = render(full_model(signal=False), criteria, scored, opportunities)
    assert "No real lift — criteria unchanged" in quiet
    loud = render(full_model(signal=np.bool_(True)), criteria, scored, opportunities)
    assert "No real lift" not in loud
    assert "The learned ICP has real lift" in loud


def test_text_is_escaped(criteria, scored, opportunities):
    model = full_model(segment_name="<script>alert('x')</script>")
    model["segments"][0]["hypotheses"] = ["<img src=x onerror=alert(1)>"]
    html = render(model, criteria, scored, opportunities)
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html
    assert "&lt;img src=x onerror=alert(1)&gt;" in html
    assert "<script" not in html and "<img" not in html
    parse(html)


def test_output_is_deterministic(criteria, scored, opportunities):
    first = render(full_model(), criteria, scored, opportunities)
    assert render(full_model(), criteria, scored, opportunities) == first
    later = render(full_model(), criteria, scored, opportunities, at=GENERATED + timedelta(days=1))
    differing = [(a, b) for a, b in zip(first.split("<"), later.split("<"), strict=True) if a != b]
    assert len(differing) == 1 and "generated 30 Jun 2025" in differing[0][0]


def test_empty_model_renders_gracefully(criteria):
    scored = pd.DataFrame(columns=["account_id", "score", "tier", "segment"])
    opportunities = pd.DataFrame(
        {
            "opportunity_id": pd.Series(dtype=str),
            "account_id": pd.Series(dtype=str),
            "is_closed": pd.Series(dtype=bool),
            "is_won": pd.Series(dtype=bool),
            "amount": pd.Series(dtype=float),
            "created_at": pd.Series(dtype="datetime64[ns, UTC]"),
            "closed_at": pd.Series(dtype="datetime64[ns, UTC]"),
        }
    )
    for model in ({}, {"signal": False, "segments": [], "emerging": [], "tracking": None}):
        html = render(model, criteria, scored, opportunities)
        parse(html)
        assert "No real lift — criteria unchanged" in html
        assert "No segments met the support threshold." in html
        assert "No deals scored by an earlier version have closed yet." in html
        assert "First model version" in html


def test_what_changed_since_the_previous_model(criteria, scored, opportunities):
    before = yaml.safe_load(CRITERIA_YAML)
    before["criteria"]["must_have"][0]["weight"] = 0.35  # re-weighted since
    before["criteria"]["bonus"].append(
        {"name": "old trait", "field": "region", "eq": "NA", "weight": 0.05}
    )
    before["tiers"]["A"] = 75
    previous = {
        "version": 2,
        "signal": True,
        "holdout": {"auc": 0.66},
        "criteria": before,
        "segments": [{"name": "Gone segment"}],
    }
    rows = table_with(
        parse(render(full_model(), criteria, scored, opportunities, previous)), "Before"
    )
    changes = {r[0]: (r[1], r[2]) for r in rows[1:]}
    assert changes["Holdout AUC"] == ("0.66", "0.71 (+0.05)")
    assert changes["Model version"] == ("2", "3")
    assert "Criterion removed: old trait" in changes
    assert changes["Criterion re-weighted: employees 50-500"] == (
        "+30 (Must have)",
        "+25 (Must have)",
    )
    assert changes["Tier threshold changed: A"] == ("75", "70")
    assert not any("re-weighted: target industry" in c for c in changes)  # only its share moved
    assert changes["Segment gone: Gone segment"] == ("found", "—")
    assert "Segment new: Scale-up SaaS" in changes


def test_odd_values_do_not_break_the_page(criteria, scored, opportunities):
    model = {
        "signal": "maybe",
        "holdout": {"auc": "high", "auc_ci": "wide", "window": "last year", "ece": None},
        "challenger": {"model": None, "auc": float("nan"), "auc_ci": [None, 0.7]},
        "calibration": [{"predicted": "x"}, None, {"predicted": 0.5, "observed": 0.4}],
        "score_distribution": [{"low": 0, "high": 50, "n": "many"}, "bin"],
        "segments": [{"name": None, "traits": "one trait", "win_rate_ci": [0.1]}, "junk"],
        "anti_patterns": None,
        "warnings": "just one warning",
        "tracking": {"versions": [{"version": 1, "win_rate_by_tier": {"A": None}}]},
        "expansion": {"holdout": {"auc": 0.6, "window": {"start": "x"}}, "notes": ["a"]},
        "features_dropped": "everything",
    }
    html = render(model, criteria, scored, opportunities, previous={"criteria": "bad"})
    parse(html)
    assert "one trait" in html
    assert "Just one warning" in html  # callouts start with a capital (issue 9)
