"""Learned criteria versions kept in the state directory, and which one is active.

`icp train` saves each learned ICP as a numbered version under `STATE/criteria/`:

- `v0003.yaml`: the criteria, in the schema of `mappings/icp.yaml`, behind a comment
  header (training window, counts, holdout metrics); people read, diff and edit it;
- `v0003.json`: the whole training result (`icp train --json`), which `icp report` draws;
- `active`: one line naming the version `sync` and `backfill` score with (`v0003`), or
  `manual` for the hand-written `icp.yaml`. No file: no version was ever activated.

Every file is written to a temporary name and renamed into place, and the pointer is
written last, so a crash never leaves a half-written version active.

`track_predictions` judges the scores each version wrote (remembered by `sync.state`)
against the outcomes that closed since.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from icp_engine.sync.state.mirror import to_jsonable

DIRECTORY = "criteria"
POINTER = "active"
MANUAL = "manual"
_NAME = re.compile(r"^v(\d{4,})$")
MIN_OUTCOMES_FOR_AUC = 10
"""Won and lost accounts each needed before tracking reports an AUC for a version."""


class VersionError(ValueError):
    """A version that does not exist, or a pointer that names none (exit 2)."""


@dataclass(frozen=True)
class Version:
    """One saved version: its number and its two files."""

    number: int
    directory: Path

    @property
    def name(self) -> str:
        return f"v{self.number:04d}"

    @property
    def yaml_path(self) -> Path:
        return self.directory / f"{self.name}.yaml"

    @property
    def json_path(self) -> Path:
        return self.directory / f"{self.name}.json"

    def load_model(self) -> dict[str, Any]:
        """The saved training result (the `icp train --json` object of this version)."""
        data: dict[str, Any] = json.loads(self.json_path.read_text(encoding="utf-8"))
        return data


def parse_version(text: str) -> int:
    """`v0003`, `v3` or `3` -> 3; anything else raises `VersionError`."""
    cleaned = text.strip().lower().removeprefix("v")
    if not cleaned.isdigit() or int(cleaned) < 1:
        raise VersionError(f"{text!r} is not a version: expected one like v0003 (or 3)")
    return int(cleaned)


class VersionStore:
    """The versions of one state directory (nothing is created until something is saved)."""

    def __init__(self, state_dir: Path) -> None:
        self.directory = Path(state_dir) / DIRECTORY

    def versions(self) -> list[Version]:
        """Every saved version, oldest first (a version needs both of its files)."""
        if not self.directory.is_dir():
            return []
        numbers = sorted(
            int(match.group(1))
            for path in self.directory.glob("v*.yaml")
            if (match := _NAME.match(path.stem)) and path.with_suffix(".json").is_file()
        )
        return [Version(n, self.directory) for n in numbers]

    def get(self, name: str | int) -> Version:
        """The version named `v0003` / `3`; raises `VersionError` listing the ones saved."""
        number = name if isinstance(name, int) else parse_version(name)
        saved = self.versions()
        for version in saved:
            if version.number == number:
                return version
        listed = ", ".join(v.name for v in saved) or "none (run icp train)"
        raise VersionError(f"no version v{number:04d} in {self.directory}; saved: {listed}")

    def pointer(self) -> str | None:
        """What the `active` file says (`v0003` or `manual`), or None if there is none."""
        path = self.directory / POINTER
        if not path.is_file():
            return None
        return path.read_text(encoding="utf-8").strip() or None

    def active(self) -> Version | None:
        """The active learned version, or None (the hand-written criteria are in use)."""
        pointer = self.pointer()
        if pointer is None or pointer == MANUAL:
            return None
        try:
            return self.get(pointer)
        except VersionError as exc:
            raise VersionError(
                f"{self.directory / POINTER} names {pointer!r}, which is not a saved version: "
                f"{exc}. Fix it with `icp mappings rollback VERSION` or `--manual`"
            ) from None

    def previous(self, version: Version | None) -> Version | None:
        """The newest version older than `version` (None: the newest of all)."""
        older = [v for v in self.versions() if version is None or v.number < version.number]
        return older[-1] if older else None

    def next_number(self) -> int:
        saved = self.versions()
        return saved[-1].number + 1 if saved else 1

    def save(
        self, number: int, criteria: dict[str, Any], model: dict[str, Any], header: str
    ) -> Version:
        """Write version `number` (YAML with `header` as comments, and the JSON); not active."""
        version = Version(number, self.directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        comment = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
        _write(version.yaml_path, comment + criteria_yaml(criteria))
        _write(version.json_path, json.dumps(to_jsonable(model), indent=1) + "\n")
        return version

    def activate(self, version: Version | None) -> None:
        """Make `version` the active criteria; None goes back to the hand-written file."""
        self.directory.mkdir(parents=True, exist_ok=True)
        _write(self.directory / POINTER, (version.name if version else MANUAL) + "\n")


def criteria_yaml(criteria: dict[str, Any]) -> str:
    """A criteria document as block YAML in the key order given (plain JSON types only)."""
    return yaml.safe_dump(
        to_jsonable(criteria), sort_keys=False, allow_unicode=True, width=100, indent=2
    )


def _write(path: Path, text: str) -> None:
    temporary = path.with_name(f".{path.name}.tmp")
    with temporary.open("w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    os.replace(temporary, path)


def track_predictions(scores: pd.DataFrame, opportunities: pd.DataFrame) -> dict[str, Any] | None:
    """How the scores written under each criteria version fared against later outcomes.

    An account scored under a version counts as won if one of its new-business
    opportunities closed won on or after the day its score was written, as lost if some
    closed then and none won, else as still open (expansion deals are left out, as the
    learner leaves them out of new-business outcomes). Per version and per tier:
    accounts scored, won and lost since, win rate; per version also the AUC of the score
    against won/lost once `MIN_OUTCOMES_FOR_AUC` of each closed. None when no score was
    remembered.
    """
    if scores.empty:
        return None
    from icp_engine.scoring.learn import is_expansion_type

    keep = (
        opportunities["is_closed"].fillna(False).astype(bool) & opportunities["closed_at"].notna()
    )
    if "type" in opportunities:  # an existing customer's expansion deal is not a new-logo outcome
        keep &= ~is_expansion_type(opportunities["type"])
    opps = opportunities.loc[keep, ["account_id", "is_won", "closed_at"]]
    opps = opps.assign(
        account_id=opps["account_id"].astype(str), won=opps["is_won"].fillna(False).astype(bool)
    )
    merged = scores.merge(opps, on="account_id", how="left")
    since = merged["closed_at"].dt.floor("D") >= merged["written_at"].dt.floor("D")
    merged = merged.assign(w=since & merged["won"].eq(True), lo=since & merged["won"].eq(False))
    flags = merged.groupby(["fingerprint", "account_id"], sort=False)[["w", "lo"]].any()
    rows = scores.join(flags, on=["fingerprint", "account_id"])
    rows["outcome"] = np.where(rows["w"], "won", np.where(rows["lo"], "lost", "open"))
    versions = []
    for fingerprint, group in sorted(
        rows.groupby("fingerprint"), key=lambda g: g[1]["written_at"].min()
    ):
        order = group.groupby("tier")["score"].mean().sort_values(ascending=False).index
        versions.append(
            {
                "version": str(group["version"].iloc[0]),
                "fingerprint": str(fingerprint),
                "scored_from": group["written_at"].min().isoformat(),
                "scored_to": group["written_at"].max().isoformat(),
                **_outcomes(group),
                "auc": _auc(group),
                "win_rate_by_tier": {str(t): _outcomes(group[group["tier"] == t]) for t in order},
            }
        )
    return {
        "versions": versions,
        "min_outcomes_for_auc": MIN_OUTCOMES_FOR_AUC,
        "note": "new-business outcomes that closed on or after the day each score was written",
    }


def _outcomes(group: pd.DataFrame) -> dict[str, Any]:
    won, lost = int((group["outcome"] == "won").sum()), int((group["outcome"] == "lost").sum())
    return {
        "scored": len(group),
        "closed_won": won,
        "closed_lost": lost,
        "win_rate": round(won / (won + lost), 4) if won + lost else None,
    }


def _auc(group: pd.DataFrame) -> float | None:
    closed = group[group["outcome"] != "open"]
    won = closed["outcome"] == "won"
    if won.sum() < MIN_OUTCOMES_FOR_AUC or (~won).sum() < MIN_OUTCOMES_FOR_AUC:
        return None
    ranks = closed["score"].rank()  # Mann-Whitney: ties share a rank
    n_won, n_lost = int(won.sum()), int((~won).sum())
    return round(float((ranks[won].sum() - n_won * (n_won + 1) / 2) / (n_won * n_lost)), 4)
