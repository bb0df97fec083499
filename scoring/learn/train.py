"""`icp train`: closed outcomes -> a learned criteria document, with honest figures.

1. Outcomes: closed new-business deals in the look-back window, per account (won if
   any won, else lost; rule in `scoring.learn_outcomes`). Expansion is separate.
2. Split in time: the most recent `holdout_share` of outcomes is held out, never a
   random split. For the backtest, binning, screening, `C`, merging, interactions, tier
   cut-offs and tier caps are all fit on the older part only.
3. Validate, then refit on everything (`scoring.learn.holdout.judge`, then `refit`):
   the criteria document fitted on the older part, scored exactly as `sync` scores it,
   is judged on the holdout (a time-ordered backtest of the learner); those are the
   holdout figures reported, with the model's own beside them. Once judged, the same
   learner runs again on every closed outcome and that document is the one written
   (its tier cut-offs placed and its Platt calibration fitted on every outcome; what
   writing it as points cost is measured on them too, `written`).
4. Signal: a bootstrap interval (resampling accounts) on the holdout AUC; only when
   its lower end is above 0.5 is a new criteria document proposed. Otherwise the
   manual criteria are returned unchanged, with `learned.signal: false`.
5. The criteria in use (`active`) are judged on the same holdout, so the caller can
   keep a worse version as a candidate (`gate`). Segments, anti-patterns and loss
   patterns are reported from every outcome; the hand-written segments and routing
   carry over into the learned document, the hand-written segments first.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from itertools import pairwise
from typing import Any

import numpy as np
import pandas as pd
from icp_engine.scoring.features import build_features
from icp_engine.scoring.labels import field_label
from icp_engine.scoring.learn import patterns as lp
from icp_engine.scoring.learn.binning import candidate_fields
from icp_engine.scoring.learn.holdout import Judged, judge, pipeline, refit, yaml_scores
from icp_engine.scoring.learn.outcomes import Outcomes, collect_outcomes
from icp_engine.scoring.learn.sample import Sampled, sample_customers, sample_outcomes
from icp_engine.scoring.learn.scorecard_yaml import with_segments
from icp_engine.scoring.learn.settings import TrainSettings
from icp_engine.scoring.learn.stats import two_proportion_z
from icp_engine.scoring.learn.summary import score_distribution, summary_text, temporal, tier_table
from icp_engine.scoring.schema import IcpCriteria

MODEL_KIND = "scorecard: L2 logistic regression over binned traits"
PLATT = "P(win) = 1 / (1 + exp(-(intercept + slope * score)))"
OUTCOME_RULE = {
    "account": "an account is won when a new-business deal of it closed won in the window, "
    "lost when its new-business deals closed in the window were all lost; expansion deals "
    "(by type, or opened once the account was a customer) are a separate outcome",
    "deal": "every new-business deal closed in the window is one outcome (won or lost), "
    "carrying its account's traits; expansion deals (by type) are a separate outcome",
}
_DAY_NS = 86_400 * 10**9
FAMILY_ALPHA = 0.05
"""Segments are reported at a 5% false-discovery rate; only those significant after
Bonferroni over every candidate are written into the criteria, where they tag accounts."""


class NotEnoughOutcomes(Exception):
    """Too few won or lost outcomes in the window to learn anything honest."""

    def __init__(
        self,
        won: int,
        lost: int,
        min_won: int,
        min_lost: int,
        unit: str = "account",
        deals: int = 0,
        closes: tuple[pd.Timestamp, pd.Timestamp, int] | None = None,
        lookback_days: int = 0,
        now: datetime | None = None,
    ) -> None:
        self.won, self.lost, self.min_won, self.min_lost = won, lost, min_won, min_lost
        hint = (
            f" ({deals} closed new-business deals: where accounts buy again and again, "
            "train per deal with --unit deal)"
            if unit == "account" and deals > 2 * (won + lost)
            else ""
        )
        dates = ""
        if closes is not None and now is not None:
            first, last, count = closes
            need = int(np.ceil((pd.Timestamp(now) - first) / pd.Timedelta(days=1))) + 1
            dates = (
                f". The data holds {count:,} closed deals from {first:%Y-%m-%d} to "
                f"{last:%Y-%m-%d}; the window covers the last {lookback_days} days"
            )
            if need > lookback_days:
                dates += f": --lookback-days {need} would include them all"
        elif closes is None and now is not None:
            dates = ". The data holds no closed deal with a close date"
        super().__init__(
            f"not enough closed outcomes to learn from: {won} won and {lost} lost "
            f"{unit}s in the window; at least {min_won} won and {min_lost} lost are needed"
            f"{hint}{dates}"
        )


def close_range(opportunities: pd.DataFrame) -> tuple[pd.Timestamp, pd.Timestamp, int] | None:
    """(first, last close date, count) of the closed deals in the data, or None."""
    if "closed_at" not in opportunities or opportunities.empty:
        return None
    closed = opportunities.get("is_closed", pd.Series(False, index=opportunities.index))
    won = opportunities.get("is_won", pd.Series(False, index=opportunities.index))
    flags = closed.astype("boolean").fillna(False) | won.astype("boolean").fillna(False)
    dates = pd.to_datetime(
        opportunities.loc[flags.to_numpy(bool), "closed_at"],
        utc=True,
        errors="coerce",
        format="mixed",
    ).dropna()
    if dates.empty:
        return None
    return dates.min(), dates.max(), int(dates.size)


REPEAT_SHARE = 0.9
"""Per account, a won share above this (with many deals per account) means accounts buy
again and again: train per deal."""


@dataclass
class TrainResult:
    criteria: dict[str, Any]
    holdout: dict[str, Any]
    train_window: dict[str, Any]
    signal: bool
    challenger: dict[str, Any]
    calibration: dict[str, Any]
    score_distribution: list[dict[str, Any]]
    segments: list[dict[str, Any]]
    emerging: list[dict[str, Any]]
    anti_patterns: list[dict[str, Any]]
    loss_patterns: list[dict[str, Any]]
    expansion: dict[str, Any] | None
    tracking: dict[str, Any] | None = None
    warnings: list[str] = field(default_factory=list)
    features_used: list[str] = field(default_factory=list)
    features_dropped: list[str] = field(default_factory=list)
    holdout_model: dict[str, Any] = field(default_factory=dict)
    tiers: list[dict[str, Any]] = field(default_factory=list)
    dropped_features: list[dict[str, str]] = field(default_factory=list)
    flattening: dict[str, Any] = field(default_factory=dict)
    gate: dict[str, Any] | None = None
    """The new criteria against those in use on the same holdout (None: nothing to compare)."""
    enrichment: list[dict[str, Any]] = field(default_factory=list)
    objective: str = "win_rate"
    written: dict[str, Any] = field(default_factory=dict)
    """The document written: refit on every closed outcome, its window and what writing it
    as points cost on those outcomes (`holdout` and `flattening` are the backtest's)."""
    backtest_criteria: dict[str, Any] | None = None
    """The criteria the backtest fitted on the older outcomes and judged on the holdout."""
    sampled: dict[str, Any] | None = None
    """On large orgs, the sample of closed outcomes learned from (used of how many);
    None: every closed outcome in the window (`scoring.learn.sample`)."""

    def to_json(self, criteria_file: str | None) -> dict[str, Any]:
        """The `icp train --json` object (DESIGN.md contract), JSON-safe."""
        return plain(
            {
                "holdout": self.holdout,
                "signal": self.signal,
                "segments": self.segments,
                "emerging": self.emerging,
                "anti_patterns": self.anti_patterns,
                "loss_patterns": self.loss_patterns,
                "criteria_file": criteria_file,
                "challenger": self.challenger,
                "warnings": self.warnings,
                "calibration": self.calibration,
                "score_distribution": self.score_distribution,
                "train_window": self.train_window,
                "expansion": self.expansion,
                "tracking": self.tracking,
                "features_used": self.features_used,
                "features_dropped": self.features_dropped,
                "holdout_model": self.holdout_model,
                "tiers": self.tiers,
                "dropped_features": self.dropped_features,
                "flattening": self.flattening,
                "gate": self.gate,
                "enrichment": self.enrichment,
                "objective": self.objective,
                "written": self.written,
                "sampled": self.sampled,
            }
        )


def plain(value: Any) -> Any:
    """Numpy scalars -> Python, NaN -> None, recursively (safe for JSON and YAML)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [plain(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _joined(accounts: pd.DataFrame, field_types: dict[str, str]) -> pd.DataFrame:
    """Multi-select values held as lists become the canonical `;`-joined text."""
    out = accounts
    for name, kind in field_types.items():
        if kind == "multi" and name in accounts and accounts[name].dtype == object:
            values = accounts[name]
            if values.map(lambda v: isinstance(v, list | tuple | set)).any():
                out = out.assign(**{name: values.map(_join, na_action="ignore")})
    return out


def _join(value: Any) -> Any:
    if isinstance(value, list | tuple | set):
        items = sorted(map(str, value)) if isinstance(value, set) else map(str, value)
        return ";".join(items) or None
    return value


@dataclass
class _Outcomes:
    """The closed outcomes `train` learns from, one row each (time order)."""

    acc: np.ndarray
    y: np.ndarray
    closed: np.ndarray
    amount: np.ndarray
    cycle: np.ndarray
    outcomes: Outcomes
    warnings: list[str]


def _outcomes(
    accounts: pd.DataFrame, opportunities: pd.DataFrame, now: datetime, s: TrainSettings
) -> _Outcomes:
    """Step 1: the closed outcomes in the window; refuses with too few won or lost."""
    out = collect_outcomes(accounts, opportunities, now, s.lookback_days, s.unit, s.emerging_days)
    y = out.rows["won"].to_numpy(bool)
    n_won, n_lost = int(y.sum()), int((~y).sum())
    if n_won < s.min_won or n_lost < s.min_lost:
        raise NotEnoughOutcomes(
            n_won,
            n_lost,
            s.min_won,
            s.min_lost,
            s.unit,
            out.deals,
            close_range(opportunities),
            s.lookback_days,
            now,
        )
    warnings: list[str] = []
    if s.unit == "account" and n_won > REPEAT_SHARE * (n_won + n_lost) and out.deals > 2 * n_won:
        warnings.append(
            f"{n_won / (n_won + n_lost):.0%} of accounts count as won and there are "
            f"{out.deals:,} closed deals for {n_won + n_lost:,} accounts: accounts buy again "
            "and again, so per account almost everyone wins; train per deal (--unit deal)"
        )
    if n_won < s.wide_below or n_lost < s.wide_below:
        warnings.append(
            f"only {n_won} won and {n_lost} lost outcomes: estimates are wide "
            f"(below {s.wide_below} of each)"
        )
    return _Outcomes(
        acc=out.rows["account"].to_numpy(np.int64),
        y=y,
        closed=out.rows["closed"].to_numpy(np.int64),
        amount=out.rows["amount"].to_numpy(float),
        cycle=out.rows["cycle_days"].to_numpy(float),
        outcomes=out,
        warnings=warnings,
    )


def _sampled(o: _Outcomes, sampled: Sampled) -> _Outcomes:
    """The outcomes of the sample (time order kept); lost deals of sampled accounts."""
    rows = sampled.rows
    if rows is None:
        return o
    kept = o.outcomes.rows.iloc[rows]
    losses = o.outcomes.losses
    losses = losses[losses["account"].isin(np.unique(o.acc[rows]))]
    outcomes = Outcomes(kept, losses, o.outcomes.customers, o.outcomes.deals)
    return _Outcomes(
        o.acc[rows], o.y[rows], o.closed[rows], o.amount[rows], o.cycle[rows], outcomes, o.warnings
    )


def _learned(
    judged: Judged,
    o: _Outcomes,
    unused: dict[str, str],
    now: datetime,
    s: TrainSettings,
) -> dict[str, Any]:
    """The `learned:` block of the criteria document: how it was learned and judged."""
    card = judged.card
    used = sorted({f.field for f in card.features}) if card else []
    return {
        "model": MODEL_KIND,
        "unit": s.unit,
        "objective": s.objective,
        "outcome_rule": OUTCOME_RULE[s.unit],
        "trained_at": pd.Timestamp(now).isoformat(),
        "lookback_days": s.lookback_days,
        "train_window": judged.train_window,
        "holdout": judged.holdout,
        "holdout_model": judged.holdout_model,
        "signal": judged.signal,
        "n_won": int(o.y.sum()),
        "n_lost": int((~o.y).sum()),
        "C": judged.C,
        "features_used": used,
        "features_dropped": sorted(unused),
        "dropped_reasons": dict(sorted(unused.items())),
        "interactions": [" + ".join(t.label for t in r.traits) for r in card.rules] if card else [],
        "challenger": judged.challenger,
        "written": judged.written.get("note")
        or "the criteria fitted on the training window and judged on the holdout, "
        "exactly as sync scores them",
    } | ({"refit": judged.written} if judged.written else {})


def _document(
    judged: Judged,
    manual: IcpCriteria,
    good: list[dict[str, Any]],
    learned: dict[str, Any],
    warnings: list[str],
    now: datetime,
    y: np.ndarray,
) -> tuple[dict[str, Any], bool]:
    """Step 4: (the criteria document, signal): the learned one, named, with the
    hand-written segments first and the routing kept; or, without signal (or when the
    final scorecard kept no criterion), the manual criteria unchanged."""
    if judged.signal and judged.document is not None:
        document = dict(judged.document)
        document |= {
            "name": f"Learned ICP ({pd.Timestamp(now).date().isoformat()})",
            "description": summary_text(
                int(y.sum()), int((~y).sum()), judged.train_window, judged.holdout
            ),
            "segments": with_segments(manual, [g for g in good if g["family_p"] < FAMILY_ALPHA]),
            "routing": [
                r.model_dump(by_alias=True, exclude_none=True, mode="json") for r in manual.routing
            ],
        }
        learned["flattening"] = judged.flattening
        learned["tiers"] = judged.tiers
        return document, True
    if judged.signal:
        warnings.append("the final scorecard kept no criterion; the manual criteria are kept")
        learned["signal"] = False
    learned["note"] = "no signal: the manual criteria are proposed unchanged"
    return manual.model_dump(by_alias=True, exclude_none=True, mode="json"), False


def _with_learned(
    document: dict[str, Any],
    learned: dict[str, Any],
    calibration: dict[str, Any],
    scores: np.ndarray,
    o: _Outcomes,
    manual: IcpCriteria,
    enrichment: list[dict[str, Any]],
) -> dict[str, Any]:
    """Step 5: the `learned:` block completed (calibration, tiers, temporal patterns,
    enrichment hints) and attached; the document checked against the schema."""
    learned["calibration"] = {k: v for k, v in calibration.items() if k != "bins"} | {
        "formula": PLATT
    }
    if not learned.get("tiers"):
        tiers = document.get("tiers") or dict(manual.tiers)
        learned["tiers"] = tier_table(scores, o.acc, o.y, tiers)
    learned["temporal"] = temporal(o.outcomes.rows)
    if enrichment:
        learned["enrichment"] = enrichment
    document = plain(document | {"learned": learned})
    IcpCriteria.model_validate(document)
    return document


def train(
    accounts: pd.DataFrame,
    opportunities: pd.DataFrame,
    manual: IcpCriteria,
    field_types: dict[str, str],
    now: datetime,
    settings: TrainSettings | None = None,
    active: IcpCriteria | None = None,
) -> TrainResult:
    """Learn criteria from closed outcomes (see the module docstring).

    Args:
        accounts: canonical accounts (`account_id` unique).
        opportunities: canonical opportunities of those accounts.
        manual: the hand-written criteria: kept unchanged without signal; its tiers,
            segments and routing carry over into the learned document.
        field_types: canonical field -> type of every mapped account attribute.
        now: the reference time (end of the look-back window).
        settings: thresholds; defaults as in `TrainSettings`.
        active: the criteria in use (learned or hand-written), judged on the same
            holdout: `gate` says whether the new criteria are worse.

    Raises:
        NotEnoughOutcomes: fewer than `min_won` won or `min_lost` lost outcomes.
    """
    s = settings or TrainSettings()
    frame = build_features(  # ages as of `now`, the end of the window the outcomes are in
        _joined(accounts.reset_index(drop=True), field_types),
        opportunities,
        as_of=pd.Timestamp(now).date(),
    )
    o = _outcomes(accounts, opportunities, now, s)
    sampled = sample_outcomes(o.y, s.seed, s.max_outcomes)  # large orgs: reported sample
    if sampled.active:
        o = _sampled(o, sampled)
        o.warnings.append(sampled.warning(s.unit))
    acc, y, closed, amount, cycle = o.acc, o.y, o.closed, o.amount, o.cycle
    warnings = o.warnings
    kinds, never = candidate_fields(frame, field_types, s.exclude_fields)
    tier_names = [name for name, _ in manual.tier_order()]
    # Step 2: the time-ordered backtest, then the same learner refit on every outcome.
    judged = judge(frame, kinds, tier_names, acc, y, closed, amount, cycle, s, active)
    judged = refit(judged, frame, kinds, tier_names, acc, y, closed, amount, cycle, s)
    if sampled.active and judged.written:  # refit on the sample, not on every outcome
        of = f"the sample ({y.size:,} of {sampled.n_won + sampled.n_lost:,})"
        judged.written["fit_on"] = f"every closed outcome of {of}"
        judged.calibration["note"] = judged.calibration["note"].replace(
            "every closed outcome", f"every closed outcome of {of}"
        )
    signal = judged.signal
    if not signal:
        lo, hi = judged.holdout["auc_ci"]
        warnings.append(
            f"no signal: the holdout AUC interval [{lo:.2f}, {hi:.2f}] does not exclude 0.5; "
            "the manual criteria are kept unchanged"
        )

    # Step 3: patterns are reported from every outcome; the criteria are the judged learner's.
    _, cands, _ = pipeline(frame, kinds, acc, y, s)
    patterns = lp.Patterns(frame, cands, acc, y, amount, cycle, s.min_support)
    good, bad = patterns.segments()
    slow = patterns.long_cycles()
    rising = patterns.emerging(closed > pd.Timestamp(now).value - s.emerging_days * _DAY_NS)
    card = judged.card
    used = sorted({f.field for f in card.features}) if card else []
    if not used:
        warnings.append("no account trait is significantly linked to winning")
    unused = {name: why for name, why in {**never, **judged.dropped}.items() if name not in used}
    learned = _learned(judged, o, unused, now, s)
    if sampled.active:
        learned["sampled"] = sampled.figures(s.unit, s.max_outcomes)

    # Step 4: the document (learned, or the manual criteria without signal).
    second = tier_names[1] if len(tier_names) > 2 else tier_names[-1]
    document, signal = _document(judged, manual, good, learned, warnings, now, y)
    customers, customers_sampled = sample_customers(o.outcomes.customers, s.seed, s.max_customers)
    expanded = lp.expansion(
        frame,
        customers,
        kinds,
        lambda f, k, r, t: pipeline(f, k, r, t, s),
        s.min_support,
        s.seed,
    )
    if expanded is not None and customers_sampled is not None:
        expanded["sampled"] = customers_sampled
    if signal and expanded and expanded["criteria"] and (expanded["auc_ci"] or [0.0])[0] > 0.5:
        document["expansion"] = expanded["criteria"]  # scored for customers: `expansion` output

    # Step 5: figures of the document written, hints, and the result.
    scores = yaml_scores(frame, document, s.score_scale)
    calibration = dict(judged.calibration)
    enrichment = enrichment_hints(document, frame, acc, y)
    document = _with_learned(document, learned, calibration, scores, o, manual, enrichment)
    tiers = judged.tiers
    if signal:
        warnings += tier_warnings(tiers)
    for hint in enrichment:
        warnings.append(hint["text"])
    return TrainResult(
        criteria=document,
        holdout=judged.holdout,
        train_window=judged.train_window,
        signal=signal,
        challenger=judged.challenger,
        calibration=calibration,
        score_distribution=score_distribution(scores, acc, y),
        segments=good,
        emerging=rising,
        anti_patterns=lp.anti_entries(
            bad,
            slow,
            list(document.get("anti_patterns") or []),
            scores,
            acc,
            patterns.account_mask,
            float(y.mean()),
            second,
        ),
        loss_patterns=patterns.loss_patterns(o.outcomes.losses, good + bad),
        expansion=expanded,
        warnings=warnings,
        features_used=used,
        features_dropped=sorted(unused),
        holdout_model=judged.holdout_model,
        tiers=tiers if signal else [],
        dropped_features=[{"field": k, "reason": v} for k, v in sorted(unused.items())],
        flattening=judged.flattening if signal else {},
        gate=judged.gate if signal else None,
        enrichment=enrichment,
        objective=s.objective,
        written=plain(judged.written) if signal else {},
        backtest_criteria=plain(judged.backtest_document) if signal else None,
        sampled=sampled.figures(s.unit, s.max_outcomes) if sampled.active else None,
    )


def tier_warnings(tiers: list[dict[str, Any]]) -> list[str]:
    """An empty tier, or a win rate that does not fall from the best tier to the worst."""
    out = []
    empty = [t["tier"] for t in tiers if not t["closed"]]
    if empty:
        out.append(f"tier {', '.join(empty)} holds no holdout account (too few distinct scores)")
    rates = [(t["tier"], t["win_rate"]) for t in tiers if t["win_rate"] is not None]
    for (upper, a), (lower, b) in pairwise(rates):
        if b > a:
            out.append(
                f"on the holdout tier {lower} wins more often than tier {upper} "
                f"({b:.0%} vs {a:.0%})"
            )
    return out


def enrichment_hints(
    document: dict[str, Any], frame: pd.DataFrame, acc: np.ndarray, y: np.ndarray
) -> list[dict[str, Any]]:
    """Fields of the learned criteria whose unknown values lose: enrichment would help.

    A field counts when its accounts with an outcome and no value win significantly less
    often than those with one (two-proportion z below -2): an unknown value never earns
    points, so filling it in can only lift the accounts that turn out to fit.
    """
    fields: list[str] = []
    rules = [r for g in (document.get("criteria") or {}).values() for r in g]
    rules += list(document.get("anti_patterns") or [])
    for rule in rules:
        for c in ([rule] if "field" in rule else []) + list(rule.get("when") or []):
            if c["field"] in frame and c["field"] not in fields:
                fields.append(c["field"])
    penalties = {
        a["field"]: a.get("penalty")
        for a in document.get("anti_patterns") or []
        if a.get("is_null") is True and "field" in a
    }
    out = []
    for name in fields:
        unknown = frame[name].isna().to_numpy()
        hit = unknown[acc]
        if hit.sum() < 10 or (~hit).sum() < 10:
            continue
        k = np.array([y[hit].sum()])
        n = np.array([hit.sum()])
        z = float(two_proportion_z(k, n, np.array([y[~hit].sum()]), np.array([(~hit).sum()]))[0])
        if z >= -2:
            continue
        rate, known = float(y[hit].mean()), float(y[~hit].mean())
        penalty = penalties.get(name)
        scored = (
            f"they score -{penalty:g} as '{field_label(name)} unknown'"
            if penalty
            else "they earn none of its points"
        )
        out.append(
            {
                "field": name,
                "accounts": int(unknown.sum()),
                "share": float(unknown.mean()),
                "win_rate_unknown": rate,
                "win_rate_known": known,
                "penalty": penalty,
                "text": (
                    f"enrichment would help: {int(unknown.sum()):,} accounts "
                    f"({unknown.mean():.0%}) have no {field_label(name)} value and win "
                    f"{rate:.0%} vs {known:.0%} with one; {scored}. Filled in, those that fit "
                    "score higher"
                ),
            }
        )
    return out
