"""Monitoring: Evidently drift of the scoring features and of the scores; performance
estimated before the labels land and realized once they have (monitoring.model_performance)."""

from datetime import UTC, datetime

import dagster as dg

from ml.core.warehouse import connect
from ml.data.features import read_reference_features, read_scoring_features
from ml.modelling.drift import MAX_ROWS
from ml.modelling.performance_table import TABLE as PERFORMANCE_TABLE
from ml.modelling.performance_table import MonitoringPass
from ml.modelling.registry import load_champion
from ml.models.churn import pipeline as churn
from ml.models.churn.monitoring import monitor_performance
from ml.models.lead_scoring import monitoring as lead_monitoring
from ml.models.lead_scoring import pipeline as leads
from ml.models.lead_scoring.model import LeadConfig
from orchestration.lib import keys
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


def _figure(value: float | None) -> float | dg.MetadataValue:
    return dg.MetadataValue.null() if value is None else value


@dg.asset(
    key=keys.CHURN_PERFORMANCE,
    group_name="monitoring",
    kinds={"duckdb"},
    deps=[keys.serving("customer_scores"), keys.serving("customer_segments")],
)
def churn_performance(crm: CrmSettings) -> dg.MaterializeResult:
    """The churn champion's ROC AUC, precision at capacity and calibration, estimated from the
    newest scores (CBPE) for all customers and per segment; realized next to the estimates of
    every earlier run whose 90-day labels have landed. Rows in monitoring.model_performance."""
    settings = crm.get()
    if (skip := skip_without_inputs(settings, churn.NEEDS)) is not None:
        return skip
    with connect(settings.warehouse_path, threads=settings.threads) as con:
        run = monitor_performance(
            con, settings.capacity_top_k, datetime.now(UTC).replace(tzinfo=None)
        )
    return dg.MaterializeResult(metadata=_performance_metadata(run, settings.capacity_top_k))


def _performance_metadata(run: MonitoringPass, capacity: int) -> dict[str, dg.RawMetadataValue]:
    return {
        "model_version": run.version or "none",
        "as_of_date": str(run.as_of_date),
        "estimated_roc_auc": _figure(run.figure("roc_auc")),
        "estimated_roc_auc_low": _figure(run.figure("roc_auc", column="interval_low")),
        "estimated_roc_auc_high": _figure(run.figure("roc_auc", column="interval_high")),
        "estimated_precision_at_capacity": _figure(run.figure("precision_at_capacity")),
        "estimated_positive_rate": _figure(run.figure("positive_rate")),
        "capacity": capacity,
        "segments": int(run.estimates["segment"].nunique()) if len(run.estimates) else 0,
        "realized_runs": ", ".join(f"v{v} {d}" for v, d in run.realized_runs) or "none",
        "table": PERFORMANCE_TABLE,
    }


@dg.asset(
    key=keys.LEAD_PERFORMANCE,
    group_name="monitoring",
    kinds={"duckdb"},
    deps=[keys.serving("lead_scores"), keys.raw("leads")],
)
def lead_scoring_performance(crm: CrmSettings) -> dg.MaterializeResult:
    """The lead model's ROC AUC, precision among the top leads (CRM_CAPACITY_TOP_K) and
    calibration, estimated from the open leads' scores (CBPE), overall and per source, country
    and company size; realized once every conversion window of a run has closed. Each run's
    scores are kept in monitoring.lead_score_snapshots (serving.lead_scores holds the newest)."""
    settings = crm.get()
    if (skip := skip_without_inputs(settings, leads.NEEDS)) is not None:
        return skip
    with connect(settings.warehouse_path, threads=settings.threads) as con:
        run = lead_monitoring.monitor_performance(
            con,
            settings.capacity_top_k,
            LeadConfig().conversion_window_days,
            datetime.now(UTC).replace(tzinfo=None),
        )
    return dg.MaterializeResult(metadata=_performance_metadata(run, settings.capacity_top_k))
