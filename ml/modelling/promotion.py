"""The promotion rule: when a new model version replaces the champion, term by term.

Both versions are scored on the same out-of-time rows, so the comparison is about the models, not
about the data they happened to be tested on. A new version becomes champion only if every term
holds:

* **discrimination**: ROC AUC no lower than the champion's minus ``auc_margin``;
* **calibration**: Brier score and expected calibration error no higher than the champion's plus
  ``brier_margin`` and ``ece_margin`` (a model that ranks as well but whose probabilities drift
  away from observed rates misleads every threshold and expected-value calculation);
* **lift at capacity**: lift among the ``capacity`` highest scores no lower than the champion's
  minus ``lift_margin`` (what the team that acts on that many customers actually gets);
* **blocking gates**: no blocking check failed (the fairness gate).

The first version of a model has no champion to compare with: the gates alone decide.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from typing import Protocol

import numpy as np
import pandas as pd
from numpy.typing import ArrayLike

from ml.modelling.evaluation import capacity_metrics, evaluate


@dataclass(frozen=True)
class PromotionRule:
    """Margins of the promotion rule (see the module docstring).

    Attributes:
        auc_margin: How much lower the new ROC AUC may be.
        brier_margin: How much higher the new Brier score may be.
        ece_margin: How much higher the new expected calibration error may be.
        lift_margin: How much lower the new lift at capacity may be.
        capacity: Customers acted on per cycle (lift is measured among that many).
    """

    auc_margin: float = 0.0
    brier_margin: float = 0.002
    ece_margin: float = 0.02
    lift_margin: float = 0.25
    capacity: int = 500

    def __post_init__(self) -> None:
        margins = (self.auc_margin, self.brier_margin, self.ece_margin, self.lift_margin)
        if min(margins) < 0:
            raise ValueError(f"promotion margins must be >= 0, got {margins}")
        if self.capacity < 1:
            raise ValueError(f"capacity must be >= 1, got {self.capacity}")


@dataclass(frozen=True)
class PromotionScores:
    """What the rule compares, for one model version on the comparison rows."""

    roc_auc: float
    brier: float
    ece: float
    lift_at_capacity: float


def promotion_scores(y_true: ArrayLike, proba: ArrayLike, capacity: int) -> PromotionScores:
    """The rule's metrics of one version's probabilities on the comparison rows."""
    result = evaluate(y_true, proba)
    lift = capacity_metrics(y_true, proba, capacity)["lift_at_capacity"]
    return PromotionScores(result.roc_auc, result.brier, result.ece, lift)


@dataclass(frozen=True)
class PromotionTerm:
    """One term of the rule: the two values, the limit the new value had to meet, the verdict."""

    name: str
    new: float
    champion: float
    limit: float
    higher_is_better: bool
    passed: bool

    def describe(self) -> str:
        sign = ">=" if self.higher_is_better else "<="
        verdict = "ok" if self.passed else "FAILED"
        return (
            f"{self.name} {self.new:.4f} {sign} {self.limit:.4f} "
            f"(champion {self.champion:.4f}): {verdict}"
        )


@dataclass(frozen=True)
class PromotionDecision:
    """The outcome of the rule, with every term and the reason in words.

    Attributes:
        promote: Whether the new version becomes champion.
        reason: One sentence for people (run tags, asset metadata, model card).
        terms: The metric terms (empty for a first version).
        gate_failures: Why blocking checks failed (empty when they passed).
        champion_version: The champion compared against, or None.
        rows: Number of comparison rows.
    """

    promote: bool
    reason: str
    terms: tuple[PromotionTerm, ...]
    gate_failures: tuple[str, ...]
    champion_version: str | None
    rows: int

    def to_dict(self) -> dict[str, object]:
        return {
            "promote": self.promote,
            "reason": self.reason,
            "champion_version": self.champion_version,
            "rows": self.rows,
            "gate_failures": list(self.gate_failures),
            "terms": [asdict(t) for t in self.terms],
        }


def _terms(
    new: PromotionScores, champion: PromotionScores, rule: PromotionRule
) -> tuple[PromotionTerm, ...]:
    def term(name: str, n: float, c: float, margin: float, higher: bool) -> PromotionTerm:
        limit = c - margin if higher else c + margin
        passed = bool(n >= limit) if higher else bool(n <= limit)
        return PromotionTerm(name, float(n), float(c), float(limit), higher, passed)

    return (
        term("roc_auc", new.roc_auc, champion.roc_auc, rule.auc_margin, True),
        term("brier", new.brier, champion.brier, rule.brier_margin, False),
        term("ece", new.ece, champion.ece, rule.ece_margin, False),
        term(
            "lift_at_capacity",
            new.lift_at_capacity,
            champion.lift_at_capacity,
            rule.lift_margin,
            True,
        ),
    )


def decide_promotion(
    new: PromotionScores,
    champion: PromotionScores | None,
    rule: PromotionRule,
    *,
    rows: int,
    champion_version: str | None = None,
    gate_failures: tuple[str, ...] = (),
) -> PromotionDecision:
    """Apply the rule to a new version and the current champion, scored on the same rows.

    Args:
        new: The new version's scores.
        champion: The champion's scores on the same rows, or None when there is no champion.
        rule: The margins.
        rows: How many rows both were scored on (reported).
        champion_version: The champion's registry version (reported).
        gate_failures: Reasons of failed blocking checks; any keeps the new version a challenger.
    """
    terms = _terms(new, champion, rule) if champion is not None else ()
    failed = [t for t in terms if not t.passed]
    promote = not gate_failures and not failed
    on_rows = f"on the same {rows} out-of-time rows"
    if gate_failures:
        reason = "kept as challenger: blocked by " + "; ".join(gate_failures)
    elif champion is None:
        reason = f"first model: AUC {new.roc_auc:.4f}, no champion to compare; gates passed"
    elif failed:
        reason = f"kept as challenger against champion v{champion_version} {on_rows}: " + "; ".join(
            t.describe() for t in failed
        )
    else:
        reason = f"promoted over champion v{champion_version} {on_rows}: " + "; ".join(
            t.describe() for t in terms
        )
    return PromotionDecision(
        promote=promote,
        reason=reason,
        terms=terms,
        gate_failures=tuple(gate_failures),
        champion_version=champion_version,
        rows=rows,
    )


class ScoresRows(Protocol):
    """A model that gives a probability per row of a frame (every registered classifier)."""

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray: ...


def champion_rule(
    rows: pd.DataFrame,
    y_true: ArrayLike,
    proba: ArrayLike,
    rule: PromotionRule,
    gate_failures: tuple[str, ...] = (),
) -> Callable[[ScoresRows | None, str | None], PromotionDecision]:
    """The promotion rule of a candidate whose probabilities on ``rows`` are ``proba``: the
    champion is scored on the same rows, and every term of ``rule`` and the gates decide
    (:func:`decide_promotion`). The rows stay in the closure; they are never logged."""
    y = np.asarray(y_true)
    new_scores = promotion_scores(y, proba, rule.capacity)

    def decide(champion: ScoresRows | None, version: str | None) -> PromotionDecision:
        champion_scores = (
            promotion_scores(y, champion.predict_proba(rows), rule.capacity)
            if champion is not None
            else None
        )
        return decide_promotion(
            new_scores,
            champion_scores,
            rule,
            rows=len(rows),
            champion_version=version,
            gate_failures=gate_failures,
        )

    return decide


def decide_by_metric(
    metric: str,
    new_score: float,
    champion_score: float | None,
    *,
    rows: int,
    champion_version: str | None = None,
    margin: float = 0.0,
) -> PromotionDecision:
    """The rule for a model judged by one held-out metric (higher is better).

    The new version becomes champion when ``new_score >= champion_score - margin``, both measured
    on the same held-out rows. ``new_score`` is measured before any refit on those rows; the
    champion may have been refitted on them in its own run, which favours the champion: the rule
    errs on the side of keeping it.
    """
    if champion_score is None:
        reason = f"first model: {metric} {new_score:.4f}, no champion"
        return PromotionDecision(True, reason, (), (), champion_version, rows)
    limit = champion_score - margin
    passed = bool(new_score >= limit)
    term = PromotionTerm(metric, float(new_score), float(champion_score), limit, True, passed)
    comparison = (
        f"{metric} {new_score:.4f} {'>=' if passed else '<'} champion v{champion_version} "
        f"{champion_score:.4f} - margin {margin:.4f} on the same held-out data"
    )
    reason = f"promoted: {comparison}" if passed else f"kept as challenger: {comparison}"
    return PromotionDecision(passed, reason, (term,), (), champion_version, rows)


def with_gate(decision: PromotionDecision, gate_failures: tuple[str, ...]) -> PromotionDecision:
    """``decision`` kept as challenger when a blocking gate failed (e.g. the fairness gate)."""
    if not gate_failures:
        return decision
    return replace(
        decision,
        promote=False,
        reason="kept as challenger: blocked by " + "; ".join(gate_failures),
        gate_failures=gate_failures,
    )


def refitted_every_run(metric: str, score: float, *, rows: int) -> PromotionDecision:
    """The decision for a model refitted from scratch every run after a method was chosen on a
    holdout (CLV): the new version always serves, there is nothing to compare it with."""
    reason = f"refitted every run: {metric} {score:.4f} on its holdout"
    return PromotionDecision(True, reason, (), (), None, rows)
