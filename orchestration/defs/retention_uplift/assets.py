"""Retention uplift: learn from the CRM's randomised offer tests whom an offer keeps."""

import dagster as dg

from ml.core.warehouse import connect
from ml.data.features import read_audit_customers, read_scoring_features
from ml.modelling.fairness import FairnessConfig
from ml.modelling.reasons import reason_rules
from ml.modelling.registry import load_champion, register
from ml.models.retention_uplift import pipeline as uplift
from ml.models.retention_uplift.data import read_campaign_sends
from ml.models.retention_uplift.model import CampaignUpliftConfig
from ml.serving.tables import publish, serving_table
from orchestration.lib import keys
from orchestration.lib.metadata import (
    TRAINING_TAG,
    published_metadata,
    skipped,
    training_metadata,
)
from orchestration.lib.sources import skip_without_inputs
from orchestration.resources import CrmSettings, registry

CUSTOMER_UPLIFT = serving_table("customer_uplift")


@dg.asset(
    key=keys.model(uplift.MODEL_NAME),
    group_name="retention_uplift",
    kinds={"catboost", "mlflow"},
    deps=[keys.mart("campaign_sends"), keys.CUSTOMER_FEATURES, keys.ERASURE],
    tags=TRAINING_TAG,
)
def retention_uplift_model(
    context: dg.AssetExecutionContext, crm: CrmSettings
) -> dg.MaterializeResult:
    """T-learner uplift of the retention offer, evaluated on the newest held-out campaigns.

    Without campaign tests (campaigns is an optional table) nothing is trained and the next best
    action uses no uplift.
    """
    settings = crm.get()
    if (skip := skip_without_inputs(settings, uplift.NEEDS)) is not None:
        return skip
    with connect(settings.warehouse_path, read_only=True) as con:
        sends = read_campaign_sends(con)
        customers = read_audit_customers(con)
    if sends.empty:
        context.log.warning("no campaign sends with a known outcome: uplift not trained")
        return skipped("no campaign tests")
    training = uplift.train(
        sends,
        CampaignUpliftConfig(),
        plots_dir=settings.reports_dir / uplift.MODEL_NAME / context.run_id,
        customers=customers,
        fairness=FairnessConfig(
            min_selection_rate_ratio=settings.fairness_min_selection_rate_ratio,
            capacity_k=settings.capacity_top_k,
        ),
    )
    registration = register(registry(settings), training.candidate)
    return dg.MaterializeResult(metadata=training_metadata(training, registration))


@dg.asset(
    key=keys.serving(CUSTOMER_UPLIFT.name),
    group_name="retention_uplift",
    kinds={"duckdb", "parquet"},
    deps=[keys.model(uplift.MODEL_NAME), keys.CUSTOMER_FEATURES, keys.ERASURE],
)
def customer_uplift(context: dg.AssetExecutionContext, crm: CrmSettings) -> dg.MaterializeResult:
    """Predicted retention uplift and response segment per customer, newest as-of date."""
    settings = crm.get()
    if (skip := skip_without_inputs(settings, uplift.NEEDS)) is not None:
        return skip
    try:
        model, version = load_champion(registry(settings), uplift.MODEL_NAME)
    except LookupError as missing:
        context.log.warning(f"{missing}; serving.customer_uplift not updated")
        return skipped(str(missing))
    with connect(settings.warehouse_path, threads=settings.threads) as con:
        scores = uplift.score(model, version, read_scoring_features(con), reason_rules(settings))
        published = publish(con, CUSTOMER_UPLIFT, scores, settings.exports_dir)
    return dg.MaterializeResult(metadata=published_metadata(published, scores))
