"""Monitoring: Evidently drift of the scoring features and of the scores; performance
estimated before the labels land and realized once they have (monitoring.model_performance);
score stability against the previous run (monitoring.score_stability)."""

from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import dagster as dg

from ml.core.settings import Settings
from ml.core.warehouse import connect
from ml.data.features import read_reference_features, read_scoring_features
from ml.modelling.alerts import STABILITY_RULES, stability_alerts
from ml.modelling.drift import MAX_ROWS
from ml.modelling.monitoring import Margins, MonitoringOutcome, conclude
from ml.modelling.registry import load_champion, reference_probabilities, version_metrics
from ml.modelling.stability import ScoreStability, StabilityThresholds, read_latest_stability
from ml.models.churn import pipeline as churn
from ml.models.churn.monitoring import monitor_performance, monitor_stability
from ml.models.lead_scoring import monitoring as lead_monitoring
from ml.models.lead_scoring import pipeline as leads
from ml.models.lead_scoring.model import LeadConfig
from orchestration.lib import keys
from orchestration.lib.metadata import performance_metadata
from orchestration.lib.sources import skip_without_inputs
from orchestration.resources import CrmSettings, registry


@dg.asset(
    key=keys.CHURN_DRIFT,
    group_name="monitoring",
    kinds={"evidently"},
    deps=[keys.serving("customer_scores")],
)
def churn_drift(crm: CrmSettings) -> dg.MaterializeResult:
    """Drift of today's scoring features against the champion's training data, and of scores.

    The retraining sensor reads ``drift_share`` from this asset's metadata.
    """
    settings = crm.get()
    if (skip := skip_without_inputs(settings, churn.NEEDS)) is not None:
        return skip
    model, version = load_champion(registry(settings), churn.MODEL_NAME)
    with connect(settings.warehouse_path, read_only=True) as con:
        # A sample in SQL: the report compares samples anyway, and the reference scores are
        # computed on these rows only (every training row was read and scored before).
        reference = read_reference_features(con, model.training_as_of_dates, max_rows=MAX_ROWS)
        current = read_scoring_features(con)
        scores = con.sql(
            "select churn_probability from serving.customer_scores "
            "where as_of_date = (select max(as_of_date) from serving.customer_scores)"
        ).df()
    drift = churn.drift(
        model, reference, current, scores["churn_probability"], settings.reports_dir
    )
    return dg.MaterializeResult(
        metadata={
            "drift_share": drift.features.drift_share,
            "drifted_columns": ", ".join(drift.features.drifted_columns) or "none",
            "score_drift_share": drift.scores.drift_share,
            "model_version": version,
            "reference_rows": drift.features.reference_rows,
            "current_rows": drift.features.current_rows,
            "report": dg.MetadataValue.path(str(drift.features.html_path)),
            "score_report": dg.MetadataValue.path(str(drift.scores.html_path)),
        }
    )


def _reference_auc(settings: Settings, model: str, version: str | None) -> float | None:
    if version is None:
        return None
    found = version_metrics(registry(settings), model, version).get("roc_auc")
    return None if found is None else float(found)


def _margins(settings: Settings) -> Margins:
    return Margins(settings.retrain_estimated_auc_margin, settings.retrain_realized_auc_margin)


def _drift_figures(instance: dg.DagsterInstance) -> dict[str, object]:
    event = instance.get_latest_materialization_event(keys.CHURN_DRIFT)
    if event is None or event.asset_materialization is None:
        return {}
    metadata = event.asset_materialization.metadata
    shown = ("drift_share", "drifted_columns", "score_drift_share", "report")
    return {
        name: getattr(metadata[name], "value", metadata[name]) for name in shown if name in metadata
    }


def _with_alerts(outcome: MonitoringOutcome) -> dict[str, Any]:
    # The checks read each rule's verdict here (orchestration/defs/monitoring/checks.py).
    found: dict[str, Any] = {}
    for alert in outcome.alerts:
        found[f"alert/{alert.rule}/passed"] = alert.passed
        found[f"alert/{alert.rule}/observed"] = _null(alert.observed)
        found[f"alert/{alert.rule}/threshold"] = _null(alert.threshold)
        found[f"alert/{alert.rule}/message"] = alert.message
    return found


def _null(value: float | None) -> float | dg.MetadataValue:
    return dg.MetadataValue.null() if value is None else value


def _stability_thresholds(settings: Settings) -> StabilityThresholds:
    return StabilityThresholds(
        psi=settings.stability_psi_threshold,
        band_changed=settings.stability_band_changed_threshold,
        action_changed=settings.stability_action_changed_threshold,
    )


def _stability_result(
    found: ScoreStability | None, rules: Sequence[str] = STABILITY_RULES
) -> dg.MaterializeResult:
    # The checks read each rule's verdict here (orchestration/defs/monitoring/checks.py).
    if found is None:
        return dg.MaterializeResult(metadata={"compared": "one scoring run so far"})
    return dg.MaterializeResult(
        metadata={
            "as_of_date": str(found.as_of_date),
            "previous_as_of_date": str(found.previous_as_of_date),
            **{
                f"alert/{alert.rule}/{part}": value
                for alert in stability_alerts(found.figures, rules)
                for part, value in (
                    ("passed", alert.passed),
                    ("observed", _null(alert.observed)),
                    ("threshold", _null(alert.threshold)),
                    ("message", alert.message),
                )
            },
        }
    )


@dg.asset(
    key=keys.CHURN_STABILITY,
    group_name="monitoring",
    kinds={"duckdb"},
    deps=[keys.serving("customer_scores"), keys.serving("next_best_actions")],
)
def churn_score_stability(crm: CrmSettings) -> dg.MaterializeResult:
    """How far the churn scores moved against the previous scoring run: PSI of the
    probabilities, share of customers whose risk band and whose next best action changed
    (monitoring.score_stability)."""
    settings = crm.get()
    if (skip := skip_without_inputs(settings, churn.NEEDS)) is not None:
        return skip
    with connect(settings.warehouse_path, threads=settings.threads) as con:
        found = monitor_stability(
            con, _stability_thresholds(settings), datetime.now(UTC).replace(tzinfo=None)
        )
    return _stability_result(found)


@dg.asset(
    key=keys.LEAD_STABILITY,
    group_name="monitoring",
    kinds={"duckdb"},
    deps=[keys.serving("lead_scores")],
)
def lead_scoring_score_stability(crm: CrmSettings) -> dg.MaterializeResult:
    """How far the lead scores moved against the previous scoring run: PSI of the conversion
    probabilities and share of the leads scored in both runs whose grade changed
    (monitoring.score_stability). Keeps the run's scores in monitoring.lead_score_snapshots."""
    settings = crm.get()
    if (skip := skip_without_inputs(settings, leads.NEEDS)) is not None:
        return skip
    with connect(settings.warehouse_path, threads=settings.threads) as con:
        found = lead_monitoring.monitor_stability(
            con, _stability_thresholds(settings), datetime.now(UTC).replace(tzinfo=None)
        )
    return _stability_result(found, lead_monitoring.STABILITY_RULES)


@dg.asset(
    key=keys.CHURN_PERFORMANCE,
    group_name="monitoring",
    kinds={"duckdb", "html"},
    deps=[
        keys.serving("customer_scores"),
        keys.serving("customer_segments"),
        keys.CHURN_DRIFT,
        keys.CHURN_STABILITY,
    ],
)
def churn_performance(context: dg.AssetExecutionContext, crm: CrmSettings) -> dg.MaterializeResult:
    """The churn champion's ROC AUC, precision at capacity and calibration, estimated from the
    newest scores (CBPE) for all customers and per segment; realized next to the estimates of
    every earlier run whose 90-day labels have landed (monitoring.model_performance). Writes the
    monitoring report (estimated vs realized over time, segments, drift, stability)."""
    settings = crm.get()
    if (skip := skip_without_inputs(settings, churn.NEEDS)) is not None:
        return skip
    now = datetime.now(UTC).replace(tzinfo=None)
    with connect(settings.warehouse_path, threads=settings.threads) as con:
        run = monitor_performance(
            con,
            settings.capacity_top_k,
            now,
            reference=reference_probabilities(registry(settings), churn.MODEL_NAME),
        )
        outcome = conclude(
            con,
            churn.MODEL_NAME,
            run,
            _reference_auc(settings, churn.MODEL_NAME, run.version),
            _margins(settings),
            settings.reports_dir / "monitoring" / "churn.html",
            now,
            drift=_drift_figures(context.instance),
            stability=read_latest_stability(con, churn.MODEL_NAME),
        )
    return dg.MaterializeResult(
        metadata=performance_metadata(
            run, settings.capacity_top_k, outcome.thresholds, outcome.realized, outcome.report
        )
        | {"reference_roc_auc": _null(outcome.evidence.reference_auc)}
        | _with_alerts(outcome)
    )


@dg.asset(
    key=keys.LEAD_PERFORMANCE,
    group_name="monitoring",
    kinds={"duckdb", "html"},
    deps=[keys.serving("lead_scores"), keys.raw("leads"), keys.LEAD_STABILITY],
)
def lead_scoring_performance(crm: CrmSettings) -> dg.MaterializeResult:
    """The lead model's ROC AUC, precision among the top leads (CRM_LEAD_CAPACITY_TOP_K) and
    calibration, estimated from the open leads' scores (CBPE), overall and per source, country
    and company size; realized once every conversion window of a run has closed. Each run's
    scores are kept in monitoring.lead_score_snapshots (serving.lead_scores holds the newest).
    Writes the monitoring report, with the score stability against the previous run."""
    settings = crm.get()
    if (skip := skip_without_inputs(settings, leads.NEEDS)) is not None:
        return skip
    now = datetime.now(UTC).replace(tzinfo=None)
    with connect(settings.warehouse_path, threads=settings.threads) as con:
        run = lead_monitoring.monitor_performance(
            con,
            settings.lead_capacity_top_k,
            LeadConfig().conversion_window_days,
            now,
            reference=reference_probabilities(registry(settings), leads.MODEL_NAME),
        )
        outcome = conclude(
            con,
            leads.MODEL_NAME,
            run,
            _reference_auc(settings, leads.MODEL_NAME, run.version),
            _margins(settings),
            settings.reports_dir / "monitoring" / "lead_scoring.html",
            now,
            stability=read_latest_stability(con, leads.MODEL_NAME),
            stability_rules=lead_monitoring.STABILITY_RULES,
        )
    return dg.MaterializeResult(
        metadata=performance_metadata(
            run, settings.lead_capacity_top_k, outcome.thresholds, outcome.realized, outcome.report
        )
        | {"reference_roc_auc": _null(outcome.evidence.reference_auc)}
        | _with_alerts(outcome)
    )
