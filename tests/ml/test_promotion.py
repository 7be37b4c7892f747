"""The promotion rule term by term, on scores from real labels and probabilities."""

from __future__ import annotations

import numpy as np
import pytest

from ml.modelling.promotion import PromotionRule, decide_promotion, promotion_scores

RULE = PromotionRule(capacity=100)


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    risk = rng.normal(size=5_000)
    p = 1 / (1 + np.exp(-(risk * 1.5 - 2.5)))
    return (rng.random(5_000) < p).astype(int), p


def test_a_better_calibrated_and_ranked_model_is_promoted(data) -> None:
    y, p = data
    noisy = np.clip(p + np.random.default_rng(1).normal(0, 0.15, len(p)), 0.001, 0.999)
    decision = decide_promotion(
        promotion_scores(y, p, 100),
        promotion_scores(y, noisy, 100),
        RULE,
        rows=len(y),
        champion_version="3",
    )
    assert decision.promote
    assert decision.reason.startswith("promoted over champion v3 on the same 5000")
    assert [t.name for t in decision.terms] == ["roc_auc", "brier", "ece", "lift_at_capacity"]


def test_same_ranking_with_broken_calibration_stays_challenger(data) -> None:
    y, p = data
    overconfident = p**0.3  # monotone: identical AUC and lift, probabilities far too high
    decision = decide_promotion(
        promotion_scores(y, overconfident, 100),
        promotion_scores(y, p, 100),
        RULE,
        rows=len(y),
        champion_version="3",
    )
    terms = {t.name: t for t in decision.terms}
    assert terms["roc_auc"].passed and terms["lift_at_capacity"].passed
    assert not terms["brier"].passed and not terms["ece"].passed
    assert not decision.promote
    assert "brier" in decision.reason and "FAILED" in decision.reason


def test_a_blocking_gate_wins_over_every_metric(data) -> None:
    y, p = data
    decision = decide_promotion(
        promotion_scores(y, p, 100),
        None,
        RULE,
        rows=len(y),
        gate_failures=("fairness gate: gender ratio 0.5",),
    )
    assert not decision.promote
    assert decision.reason == "kept as challenger: blocked by fairness gate: gender ratio 0.5"


def test_first_version_is_decided_by_the_gates_alone(data) -> None:
    y, p = data
    decision = decide_promotion(promotion_scores(y, p, 100), None, RULE, rows=len(y))
    assert decision.promote and decision.terms == ()
    assert decision.to_dict()["terms"] == []


def test_margins_must_not_be_negative() -> None:
    with pytest.raises(ValueError, match="margins"):
        PromotionRule(auc_margin=-0.1)
