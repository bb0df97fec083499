"""Issue 9, the learner: what is written is what was judged.

Each test would have failed before issue 9: an olist-like funnel (one lead-origin trait,
win rates 3% to 16%, an unknown origin that wins most) whose learned penalties were cut
off at 0 and whose tiers came out empty; a headcount that is unknown for accounts that
win more than the smallest companies (rewarded before); overlapping criteria on one
field; an activation with no look at the criteria in use.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import pairwise

import icp_engine.mappings as bundled
import numpy as np
import pandas as pd
import pytest
import yaml
from icp_engine.scoring.criteria import ConditionEvaluator, score_accounts
from icp_engine.scoring.features import build_features
from icp_engine.scoring.learn.outcomes import collect_outcomes
from icp_engine.scoring.learn.scorecard_yaml import place_tiers
from icp_engine.scoring.learn.stats import auc
from icp_engine.scoring.learn.train import NotEnoughOutcomes, TrainSettings, train
from icp_engine.scoring.schema import IcpCriteria
from icp_engine.sync.config import load_config
from icp_engine.sync.yamlfile import ConfigError

from tests.planted import FIELD_TYPES as PLANTED_TYPES
from tests.planted import NOW as PLANTED_NOW
from tests.planted import planted_crm

pytestmark = pytest.mark.slow

NOW = datetime(2026, 6, 30, tzinfo=UTC)
MANUAL = IcpCriteria.model_validate(  # hand-written, on the funnel's fields
    {
        "criteria": {
            "must_have": [
                {"name": "Paid search", "field": "origin", "eq": "paid_search", "weight": 0.6}
            ],
            "bonus": [{"name": "50+ employees", "field": "employees", "gte": 50, "weight": 0.4}],
        },
        "tiers": {"A": 75, "B": 50, "C": 25, "D": 0},
        "segments": [
            {"name": "Sized", "when": [{"field": "employees", "gte": 10}]},
            {"name": "Everyone else"},
        ],
        "routing": [
            {"route": "AE", "when": [{"field": "tier", "in": ["A", "B"]}]},
            {"route": "SDR"},
        ],
    }
)
ORIGINS = {  # share of leads, win rate (olist's seller funnel, roughly)
    "organic_search": (0.29, 0.12),
    "paid_search": (0.20, 0.12),
    "social": (0.17, 0.056),
    "unknown": (0.14, 0.16),
    "direct_traffic": (0.06, 0.11),
    "email": (0.06, 0.03),
    "referral": (0.04, 0.085),
    "other": (0.02, 0.027),
    None: (0.02, 0.23),
}
FIELD_TYPES = {
    "account_id": "text",
    "name": "text",
    "origin": "text",
    "employees": "number",
    "created_at": "datetime",
}


def funnel(n: int = 8000, seed: int = 1, days: int = 500) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Leads with one deal each; the origin sets the win rate; closes spread over `days`.

    Employees: unknown for 30% (they win like the average), under 10 for 10% (they
    win a third as often), otherwise 10-5,000 (average).
    """
    rng = np.random.default_rng(seed)
    keys = list(ORIGINS)
    shares = np.array([ORIGINS[k][0] for k in keys])
    pick = rng.choice(len(keys), n, p=shares / shares.sum())
    origin = np.array(keys, dtype=object)[pick]
    rate = np.array([ORIGINS[k][1] for k in keys])[pick]
    size = rng.random(n)
    employees = np.where(size < 0.3, np.nan, np.where(size < 0.4, 5, rng.integers(10, 5000, n)))
    rate = np.where(size >= 0.3, np.where(size < 0.4, rate / 3, rate), rate * 1.15)
    won = rng.random(n) < rate
    closed = pd.Timestamp(NOW) - pd.to_timedelta(np.sort(rng.random(n))[::-1] * days, unit="D")
    ids = [f"L{i:05d}" for i in range(n)]
    accounts = pd.DataFrame(
        {
            "account_id": ids,
            "name": [f"Lead {i}" for i in range(n)],
            "origin": origin,
            "employees": employees,
            "created_at": closed - pd.Timedelta(days=20),
        }
    )
    opportunities = pd.DataFrame(
        {
            "opportunity_id": [f"O{i:05d}" for i in range(n)],
            "account_id": ids,
            "stage": np.where(won, "Closed Won", "Closed Lost"),
            "is_closed": True,
            "is_won": won,
            "amount": np.where(won, rng.lognormal(9, 0.5, n), np.nan),
            "created_at": closed - pd.Timedelta(days=14),
            "closed_at": closed,
            "type": "New Business",
        }
    )
    return accounts, opportunities


@pytest.fixture(scope="module")
def learned():
    accounts, opportunities = funnel()
    result = train(accounts, opportunities, MANUAL, FIELD_TYPES, NOW, TrainSettings(bootstrap=200))
    return accounts, opportunities, result


def _holdout(opportunities: pd.DataFrame, result) -> pd.DataFrame:
    start = pd.Timestamp(result.holdout["window"]["start"])
    return opportunities[opportunities["closed_at"] >= start]


def test_the_reported_holdout_auc_is_the_backtested_scores_auc(learned):
    """Validate, then refit: the holdout figures are those of the learner fitted on the
    older outcomes, written as criteria and scored as sync scores them (the backtest);
    the document written is the same learner refit on every outcome, and writing it as
    points keeps the model's lift too. (Before the refit, the document written was the
    backtested one: this test then compared `criteria` with the holdout figures.)"""
    accounts, opportunities, result = learned
    assert result.signal is True
    frame = build_features(accounts, opportunities)
    backtest = IcpCriteria.model_validate(result.backtest_criteria)
    judged = score_accounts(frame, backtest).set_index("account_id")
    held = _holdout(opportunities, result)
    assert len(held) == result.holdout["n_won"] + result.holdout["n_lost"]
    won = held["is_won"].to_numpy(bool)
    mine = auc(judged.loc[held["account_id"], "score"].to_numpy(), won)
    assert mine == pytest.approx(result.holdout["auc"], abs=1e-12)
    # the written score keeps the model's lift: penalties are not cut off at 0
    model = result.holdout_model["auc"]
    assert (mine - 0.5) >= 0.97 * (model - 0.5)
    assert result.flattening["clipped_low"] == 0 and result.flattening["clipped_high"] == 0
    # the document written is refit on every closed outcome, and says so
    refit = result.written
    assert refit["window"]["n_won"] + refit["window"]["n_lost"] == len(opportunities)
    assert "backtest" in result.criteria["learned"]["written"]
    assert refit["flattening"]["lift_kept"] >= 0.97
    assert refit["flattening"]["clipped_low"] == 0 == refit["flattening"]["clipped_high"]
    icp = IcpCriteria.model_validate(result.criteria)
    written = score_accounts(frame, icp).set_index("account_id")
    every = opportunities.set_index("account_id")["is_won"].to_numpy(bool)
    assert auc(written.loc[opportunities["account_id"], "score"].to_numpy(), every) == (
        pytest.approx(refit["flattening"]["written_auc"], abs=1e-12)
    )
    by_origin = written.join(accounts.set_index("account_id")["origin"]).groupby("origin")["score"]
    assert by_origin.mean()["paid_search"] > by_origin.mean()["email"] + 5
    saved = result.to_json(None)
    assert saved["holdout"]["auc"] == result.holdout["auc"]
    assert saved["written"]["flattening"] == refit["flattening"]
    assert {"auc", "auc_ci", "brier", "ece", "n_won", "n_lost", "window"} <= set(
        saved["holdout_model"]
    )


def test_every_tier_is_used_and_wins_less_from_a_to_d(learned):
    *_, result = learned
    tiers = result.tiers
    assert [t["tier"] for t in tiers] == ["A", "B", "C", "D"]
    assert all(t["closed"] > 0 for t in tiers)
    assert all(t["share"] > 0 for t in tiers), tiers
    rates = [t["win_rate"] for t in tiers]
    assert rates[0] > rates[-1] + 0.05
    for upper, lower in pairwise(tiers):  # falling, up to the noise of a small tier
        assert lower["win_rate_ci"][0] < upper["win_rate"], rates
    assert all({"threshold", "win_rate_ci", "acv", "cycle_days"} <= set(t) for t in tiers)
    assert tiers[0]["acv"] and tiers[0]["acv"] > 0


def test_place_tiers_leaves_no_tier_empty_on_lumpy_scores():
    rng = np.random.default_rng(3)
    lumpy = rng.choice(
        [6.0, 20.0, 40.0, 41.0, 60.0, 80.0], 3000, p=[0.05, 0.2, 0.3, 0.1, 0.2, 0.15]
    )
    heavy_top = np.concatenate([np.full(1159, 100.0), rng.integers(0, 60, 6841).astype(float)])
    for scores in (lumpy, heavy_top, rng.integers(0, 101, 5000).astype(float)):
        cuts = place_tiers(scores, ["A", "B", "C", "D"])
        assert list(cuts) == ["A", "B", "C", "D"] and cuts["D"] == 0
        bounds = [*cuts.values()]
        assert all(a > b for a, b in pairwise(bounds))
        tier = np.select([scores >= b for b in bounds], list(cuts), "none")
        assert set(tier) == {"A", "B", "C", "D"}
    even = rng.integers(0, 101, 20_000).astype(float)
    cuts = place_tiers(even, ["A", "B", "C", "D"], {"A": 0.1, "B": 0.2, "C": 0.3})
    assert (even >= cuts["A"]).mean() == pytest.approx(0.1, abs=0.02)
    assert ((even >= cuts["C"]) & (even < cuts["B"])).mean() == pytest.approx(0.3, abs=0.02)


def _rules(document):
    for group in ("must_have", "strong_signal", "bonus"):
        for rule in document["criteria"][group]:
            yield "criterion", rule
    for rule in document["anti_patterns"]:
        yield "anti", rule


def _conditions(rule):
    inline = {
        k: v
        for k, v in rule.items()
        if k not in {"name", "when", "weight", "penalty", "cap_tier", "description"}
    }
    return ([inline] if inline else []) + list(rule.get("when", []))


def test_missing_is_not_a_trait(learned):
    accounts, opportunities, result = learned
    for kind, rule in _rules(result.criteria):
        for condition in _conditions(rule):
            if kind == "criterion":  # no criterion earns points for an empty value
                assert condition.get("is_null") is not True, rule
    # unknown origin wins more than any known one, yet earns nothing for being unknown
    icp = IcpCriteria.model_validate(result.criteria)
    scored = score_accounts(build_features(accounts, opportunities), icp)
    unknown = accounts["origin"].isna().to_numpy()
    assert "origin" not in " ".join(scored["reasons"][unknown].unique()).casefold()


def test_unknown_that_predicts_losing_is_a_labelled_anti_pattern():
    accounts, opportunities = funnel(seed=2)
    rng = np.random.default_rng(9)
    accounts["employees"] = accounts["employees"].fillna(500)
    losers = ~opportunities["is_won"].to_numpy() & (rng.random(len(accounts)) < 0.15)
    accounts.loc[losers, "employees"] = np.nan  # unknown headcount: mostly lost leads
    result = train(accounts, opportunities, MANUAL, FIELD_TYPES, NOW, TrainSettings(bootstrap=200))
    unknown = [r for kind, r in _rules(result.criteria) if r.get("is_null") is True]
    assert unknown and all("penalty" in r for r in unknown)
    assert all("unknown" in r["name"].casefold() for r in unknown)
    assert [h["field"] for h in result.enrichment] == ["employees"]
    assert any("enrichment would help" in w for w in result.warnings)


def test_at_most_one_reason_per_field(learned):
    accounts, opportunities, result = learned
    features = build_features(accounts, opportunities)
    evaluator = ConditionEvaluator(features)
    icp = IcpCriteria.model_validate(result.criteria)
    per_field: dict[str, np.ndarray] = {}
    rules = [*(c for _, _, c in icp.all_criteria()), *(a for a in icp.anti_patterns if a.penalty)]
    for rule in rules:
        fields = {c.field for c in rule.conditions()}
        if len(fields) != 1:
            continue  # an interaction of two traits is one reason of its own
        (name,) = fields
        hits = evaluator.all_of(rule.conditions()).astype(int)
        per_field[name] = per_field.get(name, 0) + hits
    assert per_field and all(int(np.max(hits)) <= 1 for hits in per_field.values()), {
        k: int(np.max(v)) for k, v in per_field.items()
    }


def test_win_probability_is_calibrated_on_the_holdout(learned):
    accounts, opportunities, result = learned
    icp = IcpCriteria.model_validate(result.criteria)
    assert icp.calibration is not None and icp.calibration.method == "platt"
    scored = score_accounts(build_features(accounts, opportunities), icp).set_index("account_id")
    held = _holdout(opportunities, result)
    p = scored.loc[held["account_id"], "win_probability"].to_numpy() / 100
    assert np.all((p >= 0) & (p <= 1))
    assert p.mean() == pytest.approx(held["is_won"].mean(), abs=0.02)
    assert result.calibration["ece"] == result.holdout["ece"] < 0.05
    assert result.calibration["bins"]
    # hand-written criteria carry no calibration: nothing to write
    manual = score_accounts(build_features(accounts, opportunities), MANUAL)
    assert manual["win_probability"].isna().all()


def test_the_gate_compares_with_the_criteria_in_use():
    accounts, opportunities = funnel(seed=4)
    # criteria in use that read the outcome itself (a field filled only for wins): the
    # learned ones are clearly worse on the same holdout
    accounts["deal_stage"] = np.where(opportunities["is_won"], "Customer", None)
    perfect = IcpCriteria.model_validate(
        {
            "criteria": {
                "must_have": [{"name": "x", "field": "deal_stage", "eq": "Customer", "weight": 1}]
            }
        }
    )
    settings = TrainSettings(bootstrap=200, exclude_fields=("deal_stage",))
    result = train(accounts, opportunities, MANUAL, FIELD_TYPES, NOW, settings, perfect)
    gate = result.gate
    assert gate is not None and gate["worse"] is True
    assert gate["auc_active"] > 0.99 and gate["difference_ci"][1] < 0
    # against weaker criteria in use (one origin of nine): not worse
    result = train(accounts, opportunities, MANUAL, FIELD_TYPES, NOW, settings, MANUAL)
    assert result.gate is not None and result.gate["worse"] is False


def test_old_data_names_its_dates_and_the_lookback_that_reaches_them():
    accounts, opportunities = funnel(n=2000)
    for column in ("closed_at", "created_at"):
        opportunities[column] -= pd.Timedelta(days=1200)
    with pytest.raises(NotEnoughOutcomes) as caught:
        train(accounts, opportunities, MANUAL, FIELD_TYPES, NOW)
    text = str(caught.value)
    first = opportunities["closed_at"].min()
    last = opportunities["closed_at"].max()
    assert f"from {first:%Y-%m-%d} to {last:%Y-%m-%d}" in text
    days = int(text.split("--lookback-days ")[1].split(maxsplit=1)[0])
    assert (pd.Timestamp(NOW) - timedelta(days=days)) < first
    assert (pd.Timestamp(NOW) - timedelta(days=days - 2)) > first
    train(accounts, opportunities, MANUAL, FIELD_TYPES, NOW, TrainSettings(lookback_days=days))


def test_repeat_buyers_are_told_to_train_per_deal():
    accounts, opportunities = funnel(n=600)
    rng = np.random.default_rng(5)
    # 60 accounts, every one with many deals, most of them won at some point
    opportunities["account_id"] = accounts["account_id"].to_numpy()[rng.integers(0, 60, 600)]
    opportunities["is_won"] = rng.random(600) < 0.3
    with pytest.raises(NotEnoughOutcomes) as caught:
        train(accounts, opportunities, MANUAL, FIELD_TYPES, NOW)
    assert "train per deal with --unit deal" in str(caught.value)
    per_deal = TrainSettings(unit="deal", min_won=50, min_lost=50, bootstrap=100)
    result = train(accounts, opportunities, MANUAL, FIELD_TYPES, NOW, per_deal)
    assert result.holdout["n_won"] + result.holdout["n_lost"] > 100  # deals, not accounts


def test_expected_value_objective_ranks_by_deal_size():
    accounts, opportunities = funnel(seed=6)
    big = accounts["origin"].eq("referral").to_numpy()
    opportunities.loc[big, "amount"] *= 20  # referrals win as often as others, but 20x bigger
    settings = TrainSettings(bootstrap=200, objective="expected_value")
    result = train(accounts, opportunities, MANUAL, FIELD_TYPES, NOW, settings)
    assert result.objective == "expected_value"
    icp = IcpCriteria.model_validate(result.criteria)
    scored = score_accounts(build_features(accounts, opportunities), icp)
    plain = train(accounts, opportunities, MANUAL, FIELD_TYPES, NOW, TrainSettings(bootstrap=200))
    by_rate = score_accounts(
        build_features(accounts, opportunities), IcpCriteria.model_validate(plain.criteria)
    )
    rank = scored["score"].rank(pct=True)[big].mean()
    assert rank > by_rate["score"].rank(pct=True)[big].mean() + 0.2
    assert all(t["acv"] is not None for t in result.tiers if t["won"])


def test_points_with_a_base_score_without_clipping_and_map_to_a_probability():
    icp = IcpCriteria.model_validate(
        {
            "criteria": {
                "must_have": [{"name": "Big", "field": "employees", "gte": 50, "weight": 70}]
            },
            "anti_patterns": [{"name": "Tiny", "field": "employees", "lt": 10, "penalty": 30}],
            "scale": {"weights": "points", "base": 30},
            "calibration": {"intercept": -5.0, "slope": 0.1},
        }
    )
    frame = pd.DataFrame({"account_id": ["a", "b", "c", "d"], "employees": [500, 20, 5, None]})
    scored = score_accounts(frame, icp)
    assert scored["score"].tolist() == [100.0, 30.0, 0.0, 30.0]
    assert scored["reasons"].tolist()[:3] == ["+70 Big", "no criteria matched", "-30 Tiny"]
    expected = [round(100 / (1 + np.exp(-(-5.0 + 0.1 * s)))) for s in (100, 30, 0, 30)]
    assert scored["win_probability"].tolist() == expected


def _mappings(tmp_path, icp_extra: str = "", csv_extra: str = ""):
    for name in ("icp.yaml", "csv.yaml"):
        (tmp_path / name).write_text(bundled.default(name).read_text())
    with (tmp_path / "icp.yaml").open("a") as handle:
        handle.write(icp_extra)
    if csv_extra:
        text = (tmp_path / "csv.yaml").read_text()
        anchor = "  route: {field: ICP_Route__c"
        head, tail = text.split(anchor, 1)
        (tmp_path / "csv.yaml").write_text(head + csv_extra + anchor + tail)
    return tmp_path


def test_learning_settings_in_icp_yaml(tmp_path):
    maps = _mappings(
        tmp_path, "\nlearning:\n  objective: expected_value\n  tier_shares: {A: 0.1, B: 0.2}\n"
    )
    config = load_config("csv", maps)
    assert config.learning.objective == "expected_value"
    assert config.learning.tier_shares == {"A": 0.1, "B": 0.2}
    (maps / "icp.yaml").write_text(
        bundled.default("icp.yaml").read_text() + "\nlearning:\n  tier_shares: {A: 0.5, Z: 0.6}\n"
    )
    with pytest.raises(ConfigError) as caught:
        load_config("csv", maps)
    text = str(caught.value)
    assert "icp.yaml" in text and "learning" in text and "add up to 1.1" in text


def test_learning_tier_shares_name_real_tiers(tmp_path):
    maps = _mappings(tmp_path, "\nlearning:\n  tier_shares: {A: 0.2, Z: 0.1}\n")
    with pytest.raises(ConfigError) as caught:
        load_config("csv", maps)
    [problem] = caught.value.problems
    assert problem.path == ("learning", "tier_shares", "Z") and "valid: A, B, C" in problem.message


def test_win_probability_is_an_optional_output(tmp_path):
    assert "win_probability" not in load_config("csv", None).mapping.outputs  # off by default
    line = "  win_probability: {field: ICP_Win_Probability__c, type: number, scale: 0}\n"
    config = load_config("csv", _mappings(tmp_path, csv_extra=line))
    assert config.mapping.outputs["win_probability"].field == "ICP_Win_Probability__c"


def test_planted_structure_keeps_the_models_lift_backtested_and_written():
    """Issue 9 item 1 on the planted generator (the configuration `bench/learn_judged.py`
    measures: 4,000 accounts, seed 11): the score as sync writes it keeps at least 97% of
    the model's lift, both in the backtest on the holdout and for the criteria written
    (refit on every outcome). Before the points spanned only reachable totals, the
    whole-point rounding tied accounts and the backtest kept 0.974; before the refit,
    the written criteria were the backtest's, fitted without the most recent quarter,
    and ranked a fresh draw of the generator worse (captured lift 0.90 against 0.93)."""
    accounts, opportunities, _ = planted_crm(4000, seed=11)
    manual = IcpCriteria.model_validate(yaml.safe_load(bundled.default("icp.yaml").read_text()))
    settings = TrainSettings(lookback_days=730, bootstrap=100, challenger=False)
    result = train(accounts, opportunities, manual, PLANTED_TYPES, PLANTED_NOW, settings)
    assert result.signal is True
    backtest, written = result.flattening, result.written["flattening"]
    assert backtest["lift_kept"] >= 0.97 and backtest["written_auc"] > 0.65
    assert written["lift_kept"] >= 0.97
    for flat in (backtest, written):
        assert flat["clipped_low"] == 0 == flat["clipped_high"]
    # the refit ranks accounts it never saw at least as well as the backtested criteria
    fresh, fresh_opps, oracle = planted_crm(4000, seed=1011)
    outcomes = collect_outcomes(fresh, fresh_opps, PLANTED_NOW, 730, "account", 90).rows
    rows = outcomes["account"].to_numpy(np.int64)
    won = outcomes["won"].to_numpy(bool)
    frame = build_features(fresh, fresh_opps)
    rank = {}
    for name, document in (("backtest", result.backtest_criteria), ("written", result.criteria)):
        scores = score_accounts(frame, IcpCriteria.model_validate(document))
        rank[name] = auc(scores["score"].to_numpy(float)[rows], won)
    ids = fresh["account_id"].to_numpy()[rows]
    truth = auc(oracle["p_win"].reindex(ids).to_numpy(float), won)
    assert rank["written"] > rank["backtest"]
    assert (rank["written"] - 0.5) >= 0.9 * (truth - 0.5)
