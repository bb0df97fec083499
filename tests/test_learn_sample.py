"""Large orgs: `icp train` fits on a stratified sample of the closed outcomes, and says so."""

from __future__ import annotations

import numpy as np
import pytest
from icp_engine.scoring.learn.sample import stratified
from icp_engine.scoring.learn.train import TrainSettings, train

from tests.planted import FIELD_TYPES, NOW, planted_crm
from tests.test_learn import MANUAL


def test_stratified_sample_keeps_the_win_rate_and_the_time_order():
    y = np.random.default_rng(3).random(10_000) < 0.3
    rows = stratified(y, 2_000, seed=7)
    assert rows is not None and abs(rows.size - 2_000) <= 1
    assert np.all(np.diff(rows) > 0)  # sorted, no repeats: the time order is kept
    assert abs(y[rows].mean() - y.mean()) < 0.001  # won and lost drawn at the same rate
    assert stratified(y, 10_000, seed=7) is None  # at or below the limit: no sample


@pytest.mark.slow
def test_train_above_the_limit_learns_from_a_reported_sample():
    accounts, opportunities, _ = planted_crm(4000, seed=12)
    full = train(accounts, opportunities, MANUAL, FIELD_TYPES, NOW)
    assert full.sampled is None and "sampled" not in full.criteria["learned"]
    of = full.criteria["learned"]["n_won"] + full.criteria["learned"]["n_lost"]

    result = train(
        accounts, opportunities, MANUAL, FIELD_TYPES, NOW, TrainSettings(max_outcomes=1200)
    )
    sampled = result.sampled
    assert sampled is not None and sampled["of"] == of and sampled["used"] == 1200
    assert sampled["of_won"] == full.criteria["learned"]["n_won"]
    # every figure is of the sample: the holdout and training window hold only sampled rows
    window = result.train_window
    assert (
        window["n_won"] + window["n_lost"] + result.holdout["n_won"] + result.holdout["n_lost"]
        == sampled["used"]
    )
    assert result.criteria["learned"]["sampled"] == sampled
    assert result.to_json(None)["sampled"] == sampled
    assert any(f"sample of {sampled['used']:,} of {of:,}" in w for w in result.warnings)
    # the criteria written were refit on the sample, and say so
    assert result.signal
    assert result.written["fit_on"] == f"every closed outcome of the sample (1,200 of {of:,})"
