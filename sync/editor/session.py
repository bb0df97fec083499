"""One editing session: the files on disk, the CRM's fields and data, and what an edit does.

`check(edits)` applies the edits to the file texts (comments kept, `sync.mapedit`), runs
the validator `icp mappings validate` runs (`sync.config.load_config`, then the field
check against the export or the org, `sync.fieldcheck`), so the page shows the very
messages the CLI prints, and scores the export's accounts before and after the edit with
the engine's own pipeline (`to_canonical`, `build_features`, `score_accounts`).
`save(edits)` writes the files only when they are valid.
"""

from __future__ import annotations

import difflib
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from icp_engine.connectors.canonical import to_canonical
from icp_engine.connectors.mapping import CANONICAL_FIELDS, OUTPUT_KEYS
from icp_engine.scoring.criteria import score_accounts
from icp_engine.scoring.features import build_features
from icp_engine.scoring.schema import Condition
from icp_engine.sync.config import Config, load_config, locate, read_document
from icp_engine.sync.fieldcheck import check_fields
from icp_engine.sync.mapedit import GROUPS, Edit, EditError, FileKey, apply_edits
from icp_engine.sync.sourcedata import KINDS, SourceData
from icp_engine.sync.suggest import suggest
from icp_engine.sync.yamlfile import ConfigError, ConfigProblem, load_yaml

SAMPLES = 6
"""Accounts shown as examples of what an edit changes."""
FEATURE_CACHE = 4
"""Mappings whose account features are kept (the saved one and the last edits)."""


@dataclass
class Checked:
    """The files after some edits, and what the validator says about them."""

    texts: dict[FileKey, str]
    errors: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    config: Config | None = None


class EditorSession:
    """The mapping files of one CRM (and icp.yaml) in `directory`, edited against `data`."""

    def __init__(self, crm: str, directory: Path, data: SourceData) -> None:
        self.crm = crm
        self.directory = directory
        self.data = data
        self.names: dict[FileKey, str] = {"mapping": f"{crm}.yaml", "icp": "icp.yaml"}
        self.texts: dict[FileKey, str] = {}
        self.notice = ""
        """A fact the admin must know while editing (a learned version scores instead)."""
        self._before: pd.DataFrame | None = None
        self._feature_cache: dict[str, pd.DataFrame] = {}
        self._canonical_cache: dict[str, pd.DataFrame] = {}
        self.reload()

    def label(self, key: FileKey) -> str:
        return locate(self.directory, self.names[key])[1]

    def path(self, key: FileKey) -> Path:
        return self.directory / self.names[key]

    def reload(self) -> None:
        """Read the files again (page load, after a save); the preview's 'before' is what
        is on disk."""
        self.texts = {key: self.path(key).read_text(encoding="utf-8-sig") for key in self.names}
        base = self.check([])
        self._before = self._score(base.config) if base.config is not None else None

    # -- validation ---------------------------------------------------------------------

    def check(self, edits: list[Edit]) -> Checked:
        """Apply `edits` and validate the result as `icp mappings validate --source` does."""
        try:
            texts = apply_edits(self.texts, edits)
        except EditError as exc:
            return Checked(dict(self.texts), errors=[f"cannot apply the change: {exc}"])
        checked = Checked(texts)
        with tempfile.TemporaryDirectory(prefix="icp-edit-") as tmp:
            where = Path(tmp)
            for key, text in texts.items():
                (where / self.names[key]).write_text(text, encoding="utf-8")
            try:
                config = load_config(self.crm, where)
            except ConfigError as exc:
                checked.errors = [self._relabel(p, where) for p in exc.problems]
                return checked
            checked.config = config
            checked.warnings = [self._relabel(p, where) for p in config.warnings]
            if any(self.data.columns.values()):
                document = read_document(where, self.names["mapping"])
                errors, warnings = check_fields(
                    config.mapping, config.icp, self.data.columns, document, self.data.absent
                )
                checked.errors += [self._relabel(p, where) for p in errors]
                checked.warnings += [self._relabel(p, where) for p in warnings]
        return checked

    def _relabel(self, problem: ConfigProblem, where: Path) -> str:
        """The message with the file the admin edits in place of the scratch copy."""
        for key, name in self.names.items():
            if problem.file == str(where / name):
                problem = ConfigProblem(
                    self.label(key), problem.line, problem.path, problem.message
                )
        return str(problem)

    # -- preview ------------------------------------------------------------------------

    def _score(self, config: Config) -> pd.DataFrame | None:
        if not self.data.has_rows:
            return None
        features = self._features(config)
        outputs = config.mapping.outputs
        reasons, score = outputs.get("reasons"), outputs.get("score")
        scored = score_accounts(
            features,
            config.icp,
            reasons_length=reasons.length if reasons else None,
            score_scale=score.scale if score else 0,
        )
        names = features["name"] if "name" in features else features["account_id"]
        scored["name"] = names.fillna("").astype(str).to_numpy()
        return scored.set_index("account_id")

    def _features(self, config: Config) -> pd.DataFrame:
        """The accounts' features under this mapping; kept for the last few mappings, so
        typing a weight costs a scoring pass, not a re-read of every record."""
        key = config.mapping.model_dump_json()
        if key not in self._feature_cache:
            accounts = self._canonical(config, "account")
            accounts = accounts.drop_duplicates("account_id", keep="last").reset_index(drop=True)
            features = build_features(accounts, self._canonical(config, "opportunity"))
            _remember(self._feature_cache, key, features)
        return self._feature_cache[key]

    def _canonical(self, config: Config, kind: str) -> pd.DataFrame:
        """One object's canonical frame, kept per object map: a value-map edit on accounts
        does not re-read the opportunities."""
        object_map = getattr(config.mapping.objects, kind)
        key = f"{kind}:{object_map.model_dump_json()}"
        if kind == "account":  # account frames carry the outputs' current values too
            key += "".join(o.model_dump_json() for o in config.mapping.outputs.values())
        if key not in self._canonical_cache:
            frame, _ = to_canonical(self.data.raw[kind], config.mapping, kind)
            _remember(self._canonical_cache, key, frame)
        return self._canonical_cache[key]

    def preview(self, config: Config | None) -> dict[str, Any] | None:
        """Accounts per tier before and after, how many change tier, and examples."""
        if config is None or not self.data.has_rows:
            return None
        after = self._score(config)
        if after is None:
            return None
        before = self._before
        order = [name for name, _ in config.icp.tier_order()]
        if before is not None:
            order += [t for t in before["tier"].unique() if t not in order]
        counts_after = after["tier"].value_counts()
        counts_before = before["tier"].value_counts() if before is not None else None
        tiers = [
            {
                "tier": tier,
                "before": int(counts_before.get(tier, 0)) if counts_before is not None else None,
                "after": int(counts_after.get(tier, 0)),
            }
            for tier in order
        ]
        changed_ids: list[str] = []
        score_changed = 0
        if before is not None:
            common = after.index.intersection(before.index)
            moved = before.loc[common, "tier"] != after.loc[common, "tier"]
            changed_ids = list(common[moved.to_numpy()])
            score_changed = int((before.loc[common, "score"] != after.loc[common, "score"]).sum())
        shown = changed_ids[:SAMPLES] or list(after.sort_values("score").index[-3:][::-1])
        samples = []
        for account_id in shown:
            row: Any = after.loc[account_id]
            old: Any = (
                before.loc[account_id]
                if before is not None and account_id in before.index
                else None
            )
            samples.append(
                {
                    "name": str(row["name"]) or str(account_id),
                    "tier_before": str(old["tier"]) if old is not None else None,
                    "tier_after": str(row["tier"]),
                    "score_before": float(old["score"]) if old is not None else None,
                    "score_after": float(row["score"]),
                    "reasons": str(row["reasons"] or ""),
                }
            )
        return {
            "accounts": len(after),
            "tiers": tiers,
            "changed_tier": len(changed_ids),
            "changed_score": score_changed,
            "samples": samples,
            "samples_changed": bool(changed_ids),
        }

    # -- saving -------------------------------------------------------------------------

    def diff(self, texts: dict[FileKey, str]) -> str:
        parts: list[str] = []
        for key, text in texts.items():
            if text != self.texts[key]:
                label = self.label(key)
                parts += difflib.unified_diff(
                    self.texts[key].splitlines(keepends=True),
                    text.splitlines(keepends=True),
                    f"a/{label}",
                    f"b/{label}",
                )
        return "".join(parts)

    def save(self, edits: list[Edit]) -> tuple[Checked, list[str]]:
        """Write the edited files if they are valid; returns the check and the files written."""
        checked = self.check(edits)
        if checked.errors:
            return checked, []
        for key in self.names:
            on_disk = self.path(key).read_text(encoding="utf-8-sig")
            if on_disk != self.texts[key]:  # edited elsewhere meanwhile (an editor, a pull)
                checked.errors.append(
                    f"{self.label(key)} changed on disk since the editor read it: nothing was "
                    "saved. Reload the page to start again from the file as it is now."
                )
        if checked.errors:
            return checked, []
        written = []
        for key, text in checked.texts.items():
            if text == self.texts[key]:
                continue
            path = self.path(key)
            scratch = path.with_name(f".{path.name}.saving")
            scratch.write_text(text, encoding="utf-8")
            os.replace(scratch, path)
            written.append(str(path))
        self.reload()
        return checked, written

    # -- what the page shows ------------------------------------------------------------

    def model(self, texts: dict[FileKey, str]) -> dict[str, Any]:
        """The mapping and criteria as the page draws them (from possibly invalid files)."""
        mapping = _safe(texts["mapping"])
        icp = _safe(texts["icp"])
        return {
            "crm": self.crm,
            "origin": self.data.origin,
            "has_rows": self.data.has_rows,
            "files": {key: self.label(key) for key in self.names},
            "notice": self.notice,
            "canonical": {kind: _canonical(mapping, kind) for kind in KINDS},
            "columns": {
                kind: [c.to_json() for c in self.data.columns.get(kind, {}).values()]
                for kind in KINDS
            },
            "outputs": _outputs(mapping),
            "criteria": _criteria(icp),
            "tiers": [{"name": str(k), "threshold": v} for k, v in _dict(icp.get("tiers")).items()],
            "suggestions": [s.to_json() for s in suggest(mapping, self.data)],
        }


def _remember(cache: dict[str, pd.DataFrame], key: str, frame: pd.DataFrame) -> None:
    while len(cache) >= FEATURE_CACHE:
        cache.pop(next(iter(cache)))
    cache[key] = frame


def _safe(text: str) -> dict[str, Any]:
    data = load_yaml(text, "mapping").data  # the engine's one bounded loader (issue 11)
    return data if isinstance(data, dict) else {}


def _dict(value: Any) -> dict[Any, Any]:
    return value if isinstance(value, dict) else {}


def _canonical(mapping: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    fields = _dict(_dict(_dict(mapping.get("objects")).get(kind)).get("fields"))
    names = list(CANONICAL_FIELDS[kind]) + [n for n in fields if n not in CANONICAL_FIELDS[kind]]
    rows = []
    for name in names:
        spec = fields.get(name)
        block = spec if isinstance(spec, dict) else {}
        crm_field = block.get("field") if block else spec
        values = {
            str(k): [str(s) for s in (v if isinstance(v, list) else [v])]
            for k, v in _dict(block.get("values")).items()
        }
        rows.append(
            {
                "name": str(name),
                "type": CANONICAL_FIELDS[kind].get(name) or block.get("type") or "text",
                "core": name in CANONICAL_FIELDS[kind],
                "field": str(crm_field) if crm_field is not None else None,
                "values": values,
            }
        )
    return rows


def _outputs(mapping: dict[str, Any]) -> list[dict[str, Any]]:
    outputs = _dict(mapping.get("outputs"))
    return [
        {
            "key": key,
            "field": _dict(outputs[key]).get("field"),
            "type": _dict(outputs[key]).get("type", "text"),
            "policy": _dict(outputs[key]).get("policy", "overwrite"),
        }
        for key in OUTPUT_KEYS
        if key in outputs
    ]


def _criteria(icp: dict[str, Any]) -> list[dict[str, Any]]:
    groups = _dict(icp.get("criteria"))
    rows = []
    for group in GROUPS:
        rules = groups.get(group)
        for index, item in enumerate(rules if isinstance(rules, list) else []):
            rule = _dict(item)
            rows.append(
                {
                    "group": group,
                    "index": index,
                    "name": str(rule.get("name", "")),
                    "condition": _condition_text(rule),
                    "weight": rule.get("weight"),
                }
            )
    return rows


def _condition_text(rule: dict[str, Any]) -> str:
    inline = {k: v for k, v in rule.items() if k not in ("name", "weight", "when", "description")}
    parts = [inline] if "field" in inline else []
    parts += [w for w in rule.get("when", []) or [] if isinstance(w, dict)]
    texts = []
    for part in parts:
        try:
            texts.append(Condition.model_validate(part).describe())
        except ValueError:
            texts.append(", ".join(f"{k}: {v}" for k, v in part.items()))
    return " and ".join(texts)
