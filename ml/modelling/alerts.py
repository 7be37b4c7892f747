"""The monitoring rules, each with its observed value and threshold: what the Dagster asset
checks report, the HTML report lists and docs/operations.md explains how to act on.

A rule without a figure to judge (no reference AUC, no run with labels yet) passes and says so:
a missing figure is not an alert.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from ml.modelling.retraining import PerformanceEvidence
from ml.modelling.stability import Stability

CALIBRATION_TOLERANCE = 1.5
"""How many half-widths of the 95% interval the realized positive rate may stray from the
estimate: 1.5 is about three standard errors (NannyML's band), so a calibrated model raises the
alert in about 0.3% of runs instead of 5%."""

PERFORMANCE_RULES: tuple[str, ...] = ("estimated_auc", "realized_auc", "realized_calibration")
STABILITY_RULES: tuple[str, ...] = ("score_psi", "band_changed_share", "action_changed_share")


@dataclass(frozen=True)
class Alert:
    """One rule's verdict.

    Attributes:
        rule: One of :data:`PERFORMANCE_RULES` or :data:`STABILITY_RULES`.
        observed: The figure judged, or None when there is none yet.
        threshold: What it is compared with, or None.
        passed: Whether the rule holds.
        message: One line for the report and the check.
    """

    rule: str
    observed: float | None
    threshold: float | None
    passed: bool
    message: str


def performance_alerts(
    evidence: PerformanceEvidence,
    estimated_margin: float,
    realized_margin: float,
    realized_rate: Mapping[str, object] | None,
) -> list[Alert]:
    """The three performance rules of a model version.

    Args:
        evidence: Reference, estimated and realized ROC AUC.
        estimated_margin: How far the estimated AUC may fall below the reference.
        realized_margin: How far the realized AUC may fall below the reference.
        realized_rate: The positive rate of the newest run with labels (``estimated``,
            ``realized``, ``interval_low``, ``interval_high``), or None.
    """
    reference = evidence.reference_auc
    found = []
    for rule, observed, margin, label in (
        ("estimated_auc", evidence.estimated_auc, estimated_margin, "estimated"),
        ("realized_auc", evidence.realized_auc, realized_margin, "realized"),
    ):
        if reference is None or observed is None:
            found.append(Alert(rule, observed, None, True, f"no {label} ROC AUC to judge yet"))
            continue
        floor = reference - margin
        passed = observed >= floor
        found.append(
            Alert(
                rule,
                observed,
                floor,
                passed,
                f"{label} ROC AUC {observed:.3f} {'>=' if passed else '<'} {floor:.3f} "
                f"(reference {reference:.3f} - margin {margin:.3f})",
            )
        )
    if realized_rate is None:
        found.append(
            Alert("realized_calibration", None, None, True, "no run with labels to judge yet")
        )
    else:
        rate = float(realized_rate["realized"])  # type: ignore[arg-type]
        low = float(realized_rate["interval_low"])  # type: ignore[arg-type]
        high = float(realized_rate["interval_high"])  # type: ignore[arg-type]
        estimated = float(realized_rate["estimated"])  # type: ignore[arg-type]
        gap, allowed = abs(rate - estimated), CALIBRATION_TOLERANCE * (high - low) / 2.0
        passed = gap <= allowed
        found.append(
            Alert(
                "realized_calibration",
                gap,
                allowed,
                passed,
                f"realized positive rate {rate:.4f} against estimated {estimated:.4f}: "
                f"gap {gap:.4f} {'within' if passed else 'beyond'} the tolerance {allowed:.4f} "
                f"(1.5 half-widths of the 95% interval; as of {realized_rate['as_of_date']})",
            )
        )
    return found


def stability_alerts(
    figures: Sequence[Stability], rules: Sequence[str] = STABILITY_RULES
) -> list[Alert]:
    """One alert per stability rule of the model (a figure not measured passes).

    Args:
        figures: The figures of the newest pair of runs.
        rules: The model's stability rules (a lead has no action: ``score_psi`` and
            ``band_changed_share`` only).
    """
    by_metric = {f.metric: f for f in figures}
    found = []
    for rule in rules:
        figure = by_metric.get(rule)
        if figure is None:
            found.append(Alert(rule, None, None, True, f"no {rule} measured (one run so far)"))
            continue
        found.append(
            Alert(
                rule,
                figure.value,
                figure.threshold,
                figure.passed,
                f"{rule} {figure.value:.3f} {'<' if figure.passed else '>='} "
                f"{figure.threshold:.3f} over {figure.rows} rows",
            )
        )
    return found
