"""What changed since the previous model: metrics, criteria, thresholds and patterns.

`changes_rows` compares two saved models (and the previous criteria with the active
ones) as (change, before, now) rows; `changes_section` shows them on the report.
"""

from __future__ import annotations

from typing import Any

from icp_engine.scoring.report import html as h
from icp_engine.scoring.schema import GROUPS, IcpCriteria


def changes_rows(
    model: dict[str, Any], previous: dict[str, Any], criteria: IcpCriteria
) -> list[tuple[str, str, str]]:
    """(change, before, now) rows: metrics, criteria added/removed/re-weighted, patterns."""
    rows: list[tuple[str, str, str]] = []
    if previous.get("version") is not None or model.get("version") is not None:
        rows.append(
            (
                "Model version",
                h.value_text(previous.get("version", "—")),
                h.value_text(model.get("version", "—")),
            )
        )
    before_auc = h.number((previous.get("holdout") or {}).get("auc"))
    now_auc = h.number((model.get("holdout") or {}).get("auc"))
    delta = ""
    if before_auc is not None and now_auc is not None:
        delta = f" ({now_auc - before_auc:+.2f})"
    rows.append(("Holdout AUC", h.num(before_auc), h.num(now_auc) + delta))
    lift = [h.value_text(bool(m["signal"])) if "signal" in m else "—" for m in (previous, model)]
    rows.append(("Real lift", lift[0], lift[1]))
    if isinstance(previous.get("criteria"), dict | list):
        rows += _criteria_changes(previous["criteria"], criteria)
    else:
        rows.append(("Criteria", "not recorded by the previous model", "—"))
    for key, label in (
        ("segments", "Segment"),
        ("emerging", "Emerging segment"),
        ("anti_patterns", "Anti-pattern"),
        ("loss_patterns", "Loss pattern"),
    ):
        before, now = _names(previous.get(key)), _names(model.get(key))
        rows += [(f"{label} new: {n}", "—", "found") for n in sorted(now - before)]
        rows += [(f"{label} gone: {n}", "found", "—") for n in sorted(before - now)]
    return rows


def _names(items: Any) -> set[str]:
    return {str(i["name"]) for i in items or [] if isinstance(i, dict) and i.get("name")}


def _criteria_changes(before_data: Any, criteria: IcpCriteria) -> list[tuple[str, str, str]]:
    """Criteria added, removed, and re-weighted (their own weight or group changed)."""
    before = _weights(before_data)
    now = _weights(criteria.model_dump(by_alias=True, exclude_none=True))
    rows = _diff(
        "Criterion",
        {k: _weight_text(v) for k, v in before.items()},
        {k: _weight_text(v) for k, v in now.items()},
    )
    rows = [row for row in rows if " changed: " not in row[0]]
    for name in sorted(now.keys() & before.keys()):
        if now[name][:2] != before[name][:2]:
            row = (_weight_text(before[name]), _weight_text(now[name]))
            rows.append((f"Criterion re-weighted: {name}", *row))
    if isinstance(before_data, dict) and isinstance(before_data.get("tiers"), dict):
        old = {str(k): h.points_text(v) for k, v in before_data["tiers"].items()}
        rows += _diff(
            "Tier threshold", old, {k: h.points_text(v) for k, v in criteria.tiers.items()}
        )
    if isinstance(before_data, dict) and "anti_patterns" in before_data:
        old = {str(a.get("name")): _penalty_text(a) for a in before_data["anti_patterns"] or []}
        now_anti = {a.name: _penalty_text(a.model_dump()) for a in criteria.anti_patterns}
        rows += _diff("Anti-pattern rule", old, now_anti)
    return rows


def _diff(label: str, before: dict[str, str], now: dict[str, str]) -> list[tuple[str, str, str]]:
    """Rows for names added, removed, and changed (their texts differ)."""
    rows = [(f"{label} added: {n}", "—", now[n]) for n in sorted(now.keys() - before.keys())]
    rows += [(f"{label} removed: {n}", before[n], "—") for n in sorted(before.keys() - now.keys())]
    changed = sorted(n for n in now.keys() & before.keys() if now[n] != before[n])
    return rows + [(f"{label} changed: {n}", before[n], now[n]) for n in changed]


def _penalty_text(anti: Any) -> str:
    anti = anti if isinstance(anti, dict) else {}
    parts = [f"{h.MINUS}{h.points_text(anti['penalty'])}"] if anti.get("penalty") else []
    parts += [f"cap {anti['cap_tier']}"] if anti.get("cap_tier") else []
    return ", ".join(parts) or "—"


def _weights(data: Any) -> dict[str, tuple[str, float, float]]:
    """name -> (group, weight, points of 100) from a criteria file, its groups, or a list."""
    if isinstance(data, dict) and isinstance(data.get("criteria"), dict | list):
        data = data["criteria"]
    pairs: list[tuple[str, Any]] = []
    if isinstance(data, dict):
        pairs = [(g, c) for g in GROUPS for c in data.get(g) or []]
    elif isinstance(data, list):
        pairs = [(str(c.get("group", "")) if isinstance(c, dict) else "", c) for c in data]
    valid = [
        (g, str(c["name"]), float(c["weight"]))
        for g, c in pairs
        if isinstance(c, dict) and c.get("name") and h.number(c.get("weight")) is not None
    ]
    total = sum(w for _, _, w in valid) or 1.0
    return {name: (g, w, 100.0 * w / total) for g, name, w in valid}


def _weight_text(entry: tuple[str, float, float]) -> str:
    group, _, points = entry
    label = h.GROUP_LABELS.get(group, group)
    return f"+{h.points_text(points)}" + (f" ({label})" if label else "")


def changes_section(
    model: dict[str, Any], previous: dict[str, Any] | None, criteria: IcpCriteria
) -> str:
    title = "What changed since the previous model"
    if previous is None:
        return h.section("changes", title, "<p>First model version: nothing to compare yet.</p>")
    rows = changes_rows(model, previous, criteria)
    if not rows:
        return h.section("changes", title, "<p>Nothing changed.</p>")
    body = h.table(["Change", "Before", "Now"], [[h.esc(c) for c in row] for row in rows], set())
    return h.section("changes", title, body)
