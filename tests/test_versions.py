"""Learned criteria versions, choosing the criteria in use, and score tracking."""

from __future__ import annotations

import sqlite3
from datetime import UTC, datetime
from pathlib import Path

import icp_engine.mappings as bundled
import pandas as pd
import pytest
import yaml
from icp_engine.sync.config import load_config
from icp_engine.sync.state.records import ScoreRecord
from icp_engine.sync.state.store import SCHEMA_VERSION, StateStore
from icp_engine.sync.versions import (
    Version,
    VersionError,
    VersionStore,
    parse_version,
    track_predictions,
)
from icp_engine.sync.yamlfile import ConfigError

T0 = datetime(2026, 5, 1, 12, tzinfo=UTC)


def manual_criteria() -> dict:
    return yaml.safe_load(bundled.default("icp.yaml").read_text(encoding="utf-8"))


def learned(weight: float = 0.4) -> dict:
    criteria = manual_criteria()
    criteria["name"] = "Learned ICP"
    criteria["criteria"]["must_have"][0]["weight"] = weight
    criteria["learned"] = {"window": ["2024-01-01", "2026-01-01"], "n_won": 80}
    return criteria


def save(store: VersionStore, weight: float = 0.4, activate: bool = True) -> Version:
    number = store.next_number()
    version = store.save(number, learned(weight), {"signal": True, "n": number}, "header\nline 2")
    if activate:
        store.activate(version)
    return version


def test_an_empty_state_has_no_versions(tmp_path: Path) -> None:
    store = VersionStore(tmp_path)
    assert store.versions() == [] and store.active() is None and store.pointer() is None
    assert store.next_number() == 1
    assert not (tmp_path / "criteria").exists()  # nothing is created by reading


def test_save_activate_and_find_versions(tmp_path: Path) -> None:
    store = VersionStore(tmp_path)
    first, second = save(store, 0.4), save(store, 0.5, activate=False)
    assert [v.name for v in store.versions()] == ["v0001", "v0002"]
    assert store.active() == first  # saving does not activate
    store.activate(second)
    assert store.active() == second and store.pointer() == "v0002"
    assert store.previous(second) == first and store.previous(first) is None
    assert store.get("v2") == store.get("2") == store.get(2) == second
    assert second.load_model() == {"signal": True, "n": 2}
    assert not list((tmp_path / "criteria").glob(".*tmp"))  # written to a temporary, renamed
    store.activate(None)
    assert store.pointer() == "manual" and store.active() is None


def test_saved_yaml_has_the_header_and_reloads_as_criteria(tmp_path: Path) -> None:
    store = VersionStore(tmp_path)
    version = save(store)
    text = version.yaml_path.read_text()
    assert text.startswith("# header\n# line 2\nversion: 1\n")
    assert yaml.safe_load(text) == learned()


def test_unknown_versions_are_refused_with_the_saved_ones(tmp_path: Path) -> None:
    store = VersionStore(tmp_path)
    save(store)
    with pytest.raises(VersionError, match=r"no version v0009 .* saved: v0001"):
        store.get("v9")
    for bad in ("latest", "v0", "-1", ""):
        with pytest.raises(VersionError, match="not a version"):
            parse_version(bad)
    (tmp_path / "criteria" / "active").write_text("v0007\n")
    with pytest.raises(VersionError, match=r"names 'v0007'.*rollback"):
        store.active()


def write_icp(directory: Path, text: str) -> Path:
    directory.mkdir(exist_ok=True)
    (directory / "icp.yaml").write_text(text)
    return directory


def test_config_uses_the_active_learned_version(tmp_path: Path) -> None:
    assert load_config("csv", None, tmp_path).criteria_version == "manual"
    version = save(VersionStore(tmp_path), 0.45)
    config = load_config("csv", None, tmp_path)
    assert config.criteria_version == "v0001"
    assert config.criteria_label.startswith("learned v0001")
    assert config.icp.name == "Learned ICP" and config.icp.criteria.must_have[0].weight == 0.45
    assert config.manual_icp is not None and config.manual_icp.name == "Starting ICP"
    assert config.files["icp"] == str(version.yaml_path)
    assert load_config("csv", None).criteria_version == "manual"  # no state: the manual file


def test_scoring_source_manual_pins_the_hand_written_file(tmp_path: Path) -> None:
    save(VersionStore(tmp_path / "state"))
    text = bundled.default("icp.yaml").read_text() + "\nscoring: {source: manual}\n"
    maps = write_icp(tmp_path / "maps", text)
    config = load_config("csv", maps, tmp_path / "state")
    assert config.criteria_version == "manual" and config.icp.name == "Starting ICP"
    assert "pinned" in config.criteria_label
    learned_text = text.replace("source: manual", "source: learned")
    write_icp(maps, learned_text)
    assert load_config("csv", maps, tmp_path / "state").criteria_version == "v0001"


def test_a_misspelt_scoring_setting_names_file_and_line(tmp_path: Path) -> None:
    text = bundled.default("icp.yaml").read_text() + "\nscoring:\n  source: manul\n"
    maps = write_icp(tmp_path / "maps", text)
    line = text.splitlines().index("  source: manul") + 1
    with pytest.raises(ConfigError) as caught:
        load_config("csv", maps, tmp_path)
    [problem] = caught.value.problems
    assert str(problem).startswith(f"{maps / 'icp.yaml'}:{line}: scoring.source:")
    assert "'manual' or 'learned'" in str(problem) and "'manul'" in str(problem)


def test_a_broken_learned_file_is_an_error_with_its_line(tmp_path: Path) -> None:
    version = save(VersionStore(tmp_path))
    path = version.yaml_path
    text = path.read_text().replace("field: employees", "field: headcount", 1)
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config("csv", None, tmp_path)
    assert any(
        p.file == str(path) and p.line and "unknown field 'headcount'" in p.message
        for p in caught.value.problems
    )


def records(version: str, fingerprint: str, *scores: tuple[str, float, str]) -> list[ScoreRecord]:
    return [ScoreRecord(a, s, t, version, fingerprint) for a, s, t in scores]


def test_scores_are_kept_once_per_account_and_version(tmp_path: Path) -> None:
    with StateStore(tmp_path) as store:
        run = store.start_run("csv", "sync")
        store.record_batch(
            "csv", run, [], [], ["a1"], T0, scores=records("manual", "f1", ("a1", 40.0, "C"))
        )
        later = T0.replace(day=2)
        store.record_scores("csv", run, records("manual", "f1", ("a1", 90.0, "A")), later)
        store.record_scores("csv", run, records("v0001", "f2", ("a1", 70.0, "B")), later)
        store.record_scores("csv", run, records("v0001", "f2", ("a2", 10.0, "D")), later)
        frame = store.scores("csv").sort_values(["fingerprint", "account_id"])
        assert frame[["account_id", "version", "score", "tier"]].to_numpy().tolist() == [
            ["a1", "manual", 40.0, "C"],  # the first score under a version is kept
            ["a1", "v0001", 70.0, "B"],
            ["a2", "v0001", 10.0, "D"],
        ]
        assert frame["written_at"].iloc[0] == pd.Timestamp(T0)
        store.forget_accounts("csv", ["a1"])
        assert store.scores("csv")["account_id"].tolist() == ["a2"]
        assert store.get_meta("schema_version") == str(SCHEMA_VERSION)  # scores: no bump


def test_an_older_state_file_gains_the_scores_table(tmp_path: Path) -> None:
    StateStore(tmp_path).close()
    with sqlite3.connect(tmp_path / StateStore.FILE_NAME) as db:
        db.execute("DROP TABLE scores")
    db.close()
    with StateStore(tmp_path) as store:
        assert store.scores("csv").empty


def opportunities(*rows: tuple[str, bool, bool, str | None]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["account_id", "is_closed", "is_won", "closed_at"])
    frame["closed_at"] = pd.to_datetime(frame["closed_at"], utc=True)
    return frame


def scores_frame(*rows: tuple[str, str, float, str]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=["account_id", "version", "score", "tier"])
    return frame.assign(fingerprint=frame["version"], run_id=1, written_at=pd.Timestamp(T0))


def test_tracking_counts_outcomes_closed_since_the_score_per_version_and_tier() -> None:
    scores = scores_frame(
        ("a1", "v0001", 90, "A"),
        ("a2", "v0001", 80, "A"),
        ("a3", "v0001", 20, "D"),
        ("a4", "v0001", 10, "D"),
    )
    opps = opportunities(
        ("a1", True, True, "2026-06-01"),
        ("a2", True, False, "2026-05-01"),  # the same day as the score: counts
        ("a3", True, True, "2026-01-01"),  # closed before it was scored: not a prediction
        ("a3", False, False, None),
        ("a4", True, False, "2026-07-01"),
    )
    tracking = track_predictions(scores, opps)
    assert tracking is not None
    [entry] = tracking["versions"]
    assert (entry["version"], entry["scored"], entry["win_rate"]) == ("v0001", 4, 0.3333)
    assert (entry["closed_won"], entry["closed_lost"]) == (1, 2)
    assert entry["auc"] is None  # too few outcomes to judge
    by_tier = entry["win_rate_by_tier"]
    assert [(t, f["closed_won"], f["closed_lost"]) for t, f in by_tier.items()] == [
        ("A", 1, 1),
        ("D", 0, 1),
    ]
    assert track_predictions(scores.iloc[:0], opps) is None


def test_tracking_reports_auc_once_enough_outcomes_closed() -> None:
    n = 12
    scores = scores_frame(
        *[(f"w{i}", "v0002", 60.0 + i, "A") for i in range(n)],
        *[(f"l{i}", "v0002", 30.0 + i * 3, "B") for i in range(n)],
    )
    opps = opportunities(
        *[(f"w{i}", True, True, "2026-08-01") for i in range(n)],
        *[(f"l{i}", True, False, "2026-08-01") for i in range(n)],
    )
    tracking = track_predictions(scores, opps)
    assert tracking is not None
    # winners score 60..71, losers 30..63: l10 (60) ties w0; l11 (63) beats w0-w2, ties w3
    assert tracking["versions"][0]["auc"] == pytest.approx(1 - 4 / (n * n), abs=1e-4)


def test_tracking_leaves_out_expansion_deals() -> None:
    scores = scores_frame(("a1", "manual", 90, "A"))
    opps = opportunities(("a1", True, True, "2026-06-01"), ("a1", True, False, "2026-06-02"))
    opps["type"] = ["Expansion", "New Business"]
    tracking = track_predictions(scores, opps)
    assert tracking is not None
    assert tracking["versions"][0]["closed_lost"] == 1
    assert tracking["versions"][0]["closed_won"] == 0
