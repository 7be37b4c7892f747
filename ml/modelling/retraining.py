"""Retraining policy: when drift or a loss of performance should trigger a new training run.

The rules are deliberately small and explainable, because the trigger and its ``reason`` are
written into the run tags by the sensor and read by people: retrain when the share of drifted
features reaches the threshold, when the AUC estimated without labels (CBPE) falls more than a
margin below the AUC the model version was promoted with, or when the realized AUC of a run whose
labels have landed does; at most once per cool-down period, so a lasting shift does not retrain
every tick.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class RetrainDecision:
    """Whether to retrain, what triggered it, and a one-line reason for the run tags."""

    retrain: bool
    reason: str
    trigger: str = "drift"


TRIGGERS: tuple[str, ...] = ("realized_performance", "estimated_performance", "drift")
"""What can trigger a retraining, as named in the ``crm/trigger`` run tag."""


def should_retrain(
    drift_share: float | None,
    threshold: float,
    last_triggered_at: datetime | None,
    now: datetime,
    cooldown: timedelta,
) -> RetrainDecision:
    """Decide whether drift should trigger a retraining run.

    Args:
        drift_share: Share of drifted feature columns (0..1) from the latest drift report, or
            None when no report exists yet.
        threshold: Share at or above which drift triggers retraining.
        last_triggered_at: When drift last triggered a retraining, or None if never.
        now: The current time (same time-zone awareness as ``last_triggered_at``).
        cooldown: Minimum time between two drift-triggered retrainings.

    Returns:
        The decision; its reason reads like ``"drift share 0.42 >= 0.30"``,
        ``"drift share 0.10 < 0.30"`` or ``"drift share 0.42 >= 0.30 but cooling down until
        2026-09-02T06:00:00"``.
    """
    if drift_share is None:
        return RetrainDecision(False, "no drift report yet")
    if drift_share < threshold:
        return RetrainDecision(False, f"drift share {drift_share:.2f} < {threshold:.2f}")
    crossed = f"drift share {drift_share:.2f} >= {threshold:.2f}"
    if last_triggered_at is not None:
        until = last_triggered_at + cooldown
        if now < until:
            return RetrainDecision(
                False, f"{crossed} but cooling down until {until.isoformat(timespec='seconds')}"
            )
    return RetrainDecision(True, crossed)


@dataclass(frozen=True)
class PerformanceEvidence:
    """The newest performance figures of a model version.

    Attributes:
        reference_auc: The held-out ROC AUC the version was promoted with.
        estimated_auc: The ROC AUC estimated from the newest scoring run (CBPE), or None.
        realized_auc: The realized ROC AUC of the newest run whose labels have landed, or None.
    """

    reference_auc: float | None
    estimated_auc: float | None
    realized_auc: float | None


def _cooled(
    decision: RetrainDecision,
    last_triggered_at: datetime | None,
    now: datetime,
    cooldown: timedelta,
) -> RetrainDecision:
    if last_triggered_at is not None and now < (until := last_triggered_at + cooldown):
        return RetrainDecision(
            False,
            f"{decision.reason} but cooling down until {until.isoformat(timespec='seconds')}",
            decision.trigger,
        )
    return decision


def should_retrain_on_performance(
    evidence: PerformanceEvidence,
    estimated_margin: float,
    realized_margin: float,
    last_triggered_at: datetime | None,
    now: datetime,
    cooldown: timedelta,
) -> RetrainDecision:
    """Decide whether a loss of performance should trigger a retraining run.

    A realized loss weighs more than an estimated one and is checked first: the labels are the
    truth, the estimate assumes the model is still calibrated.

    Args:
        evidence: Reference, estimated and realized ROC AUC.
        estimated_margin: How far the estimated AUC may fall below the reference.
        realized_margin: How far the realized AUC may fall below the reference.
        last_triggered_at: When a retraining was last triggered (by any trigger), or None.
        now: The current time.
        cooldown: Minimum time between two triggered retrainings.

    Returns:
        The decision, its trigger (``realized_performance`` or ``estimated_performance``) and a
        reason such as ``"realized ROC AUC 0.741 < 0.780 (reference 0.810 - margin 0.030)"``.
    """
    reference = evidence.reference_auc
    if reference is None:
        return RetrainDecision(False, "no reference AUC for the model version", "none")
    for trigger, observed, margin, label in (
        ("realized_performance", evidence.realized_auc, realized_margin, "realized"),
        ("estimated_performance", evidence.estimated_auc, estimated_margin, "estimated"),
    ):
        if observed is None:
            continue
        floor = reference - margin
        if observed < floor:
            reason = (
                f"{label} ROC AUC {observed:.3f} < {floor:.3f} "
                f"(reference {reference:.3f} - margin {margin:.3f})"
            )
            return _cooled(RetrainDecision(True, reason, trigger), last_triggered_at, now, cooldown)
    said = ", ".join(
        f"{label} {value:.3f}"
        for label, value in (
            ("realized", evidence.realized_auc),
            ("estimated", evidence.estimated_auc),
        )
        if value is not None
    )
    return RetrainDecision(
        False,
        f"ROC AUC within margins of reference {reference:.3f} ({said or 'no figures'})",
        "none",
    )
