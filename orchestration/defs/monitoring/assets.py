"""Monitoring: Evidently drift of the scoring features and of the scores."""

import dagster as dg

from ml.core.warehouse import connect
from ml.data.features import read_reference_features, read_scoring_features
from ml.modelling.drift import MAX_ROWS
from ml.modelling.registry import load_champion
from ml.models.churn import pipeline as churn
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
