"""One monitoring pass of a model after its performance run: the evidence for the retraining
rule, the alerts, and the HTML report.

The model packages write the estimates and realized figures (``ml.models.<model>.monitoring``);
this module reads them back, judges them with the rules of ``ml.modelling.alerts`` and writes the
report, the same way for every model.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb

from ml.modelling.alerts import STABILITY_RULES, Alert, performance_alerts, stability_alerts
from ml.modelling.monitoring_report import MonitoringReport, write_report
from ml.modelling.performance_table import MonitoringPass, latest_realized, read_performance
from ml.modelling.retraining import PerformanceEvidence
from ml.modelling.stability import Stability


@dataclass(frozen=True)
class Margins:
    """How far the ROC AUC may fall below the version's reference before an alert.

    Attributes:
        estimated: For the AUC estimated without labels.
        realized: For the realized AUC once labels land.
    """

    estimated: float = 0.03
    realized: float = 0.03


@dataclass(frozen=True)
class MonitoringOutcome:
    """What a monitoring pass found.

    Attributes:
        run: The estimates and realized runs written by the model's pass.
        evidence: Reference, estimated and realized ROC AUC (the retraining rule's input).
        realized: The newest realized ROC AUC row of the version, or None.
        alerts: Every rule's verdict (performance, then stability).
        report: The HTML report.
    """

    run: MonitoringPass
    evidence: PerformanceEvidence
    realized: Mapping[str, object] | None
    alerts: tuple[Alert, ...]
    report: Path

    @property
    def thresholds(self) -> dict[str, float | None]:
        """The AUC floors the checks and the sensor compare with."""
        by_rule = {a.rule: a for a in self.alerts}
        return {
            "estimated_auc_threshold": by_rule["estimated_auc"].threshold,
            "realized_auc_threshold": by_rule["realized_auc"].threshold,
        }


def conclude(
    con: duckdb.DuckDBPyConnection,
    model: str,
    run: MonitoringPass,
    reference_auc: float | None,
    margins: Margins,
    report_path: Path,
    now: datetime,
    drift: Mapping[str, object] | None = None,
    stability: Sequence[Stability] = (),
    stability_rules: Sequence[str] = STABILITY_RULES,
) -> MonitoringOutcome:
    """Judge a model's newest figures and write its report.

    Args:
        con: Warehouse connection (reads ``monitoring.model_performance``).
        model: Registered model name.
        run: The model's monitoring pass (``ml.models.<model>.monitoring.monitor_performance``).
        reference_auc: The held-out ROC AUC the version was promoted with, or None.
        margins: Alert margins.
        report_path: Where the HTML report goes.
        now: When the pass ran.
        drift: Drift figures to show in the report.
        stability: Stability figures against the previous run.
        stability_rules: The model's stability rules (``ml.modelling.alerts.STABILITY_RULES``).
    """
    version = run.version
    realized = latest_realized(con, model, version) if version else None
    rate = latest_realized(con, model, version, "positive_rate") if version else None
    evidence = PerformanceEvidence(
        reference_auc=reference_auc,
        estimated_auc=run.figure("roc_auc"),
        realized_auc=float(realized["realized"]) if realized else None,  # type: ignore[arg-type]
    )
    alerts = (
        *performance_alerts(evidence, margins.estimated, margins.realized, rate),
        *(stability_alerts(stability, stability_rules) if stability else ()),
    )
    report = MonitoringReport(
        model=model,
        version=version,
        as_of_date=run.as_of_date,
        history=read_performance(con, model),
        reference={} if reference_auc is None else {"roc_auc": reference_auc},
        drift=drift or {},
        stability=stability,
        alerts=tuple(a.message for a in alerts if not a.passed),
    )
    path = write_report(report, report_path, now)
    return MonitoringOutcome(run, evidence, realized, alerts, path)
