"""Next product: the category each customer is most likely to buy next among those not bought."""

import dagster as dg

from ml.core.warehouse import connect
from ml.data.features import read_audit_customers
from ml.modelling.fairness import FairnessConfig
from ml.modelling.reasons import reason_rules
from ml.modelling.registry import load_champion, register
from ml.models.next_product import pipeline as next_product
from ml.models.next_product.data import read_product_candidates
from ml.models.next_product.model import NEXT_PRODUCT_BOOSTING, NextProductConfig
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

OFFERS = serving_table("next_product_offers")
PRODUCT_LABELS = keys.mart("product_purchase_labels")


@dg.asset(
    key=keys.model(next_product.MODEL_NAME),
    group_name="next_product",
    kinds={"catboost", "mlflow"},
    deps=[PRODUCT_LABELS, keys.CUSTOMER_FEATURES, keys.ERASURE],
    tags=TRAINING_TAG,
)
def next_product_model(context: dg.AssetExecutionContext, crm: CrmSettings) -> dg.MaterializeResult:
    """CatBoost propensity to buy a category within 90 days, out of time on the newest date;
    champion when its holdout ROC AUC is at least the champion's on the same rows and the
    fairness gate on who is offered at capacity passes."""
    settings = crm.get()
    if (skip := skip_without_inputs(settings, next_product.NEEDS)) is not None:
        return skip
    config = NextProductConfig(boosting=NEXT_PRODUCT_BOOSTING.with_threads(settings.threads))
    with connect(settings.warehouse_path, read_only=True) as con:
        labelled = read_product_candidates(
            con, labelled=True, last_as_of_dates=config.training_as_of_dates
        )
        customers = read_audit_customers(con)
    training = next_product.train(
        labelled,
        config,
        plots_dir=settings.reports_dir / next_product.MODEL_NAME / context.run_id,
        customers=customers,
        fairness=FairnessConfig(
            min_selection_rate_ratio=settings.fairness_min_selection_rate_ratio,
            capacity_k=settings.capacity_top_k,
        ),
    )
    registration = register(registry(settings), training.candidate)
    return dg.MaterializeResult(metadata=training_metadata(training, registration))


@dg.asset(
    key=keys.serving(OFFERS.name),
    group_name="next_product",
    kinds={"duckdb", "parquet"},
    deps=[
        keys.model(next_product.MODEL_NAME),
        PRODUCT_LABELS,
        keys.CUSTOMER_FEATURES,
        keys.ERASURE,
    ],
)
def next_product_offers(crm: CrmSettings) -> dg.MaterializeResult:
    """Per customer, the category not bought yet with the highest purchase probability."""
    settings = crm.get()
    if (skip := skip_without_inputs(settings, next_product.NEEDS)) is not None:
        return skip
    model, version = load_champion(registry(settings), next_product.MODEL_NAME)
    with connect(settings.warehouse_path, threads=settings.threads) as con:
        offers = next_product.score(
            model, version, read_product_candidates(con, labelled=False), reason_rules(settings)
        )
        if offers.empty:
            return skipped("no candidate categories at the newest as-of date")
        published = publish(con, OFFERS, offers, settings.exports_dir)
    return dg.MaterializeResult(metadata=published_metadata(published, offers))
