"""Retraining policy: when drift should trigger a new training run.

The rule is deliberately small and explainable, because its ``reason`` is written into the run
tags by the sensor and read by people: retrain when the share of drifted features reaches the
threshold, but at most once per cool-down period so a lasting shift does not retrain every tick.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta


@dataclass(frozen=True)
class RetrainDecision:
    """Whether to retrain, and a one-line reason for the run tags."""

    retrain: bool
    reason: str


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
