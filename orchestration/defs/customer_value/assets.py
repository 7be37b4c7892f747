"""Customer lifetime value: BG/NBD + Gamma-Gamma against CatBoost, the better one served."""

import dagster as dg

from ml.core.warehouse import connect
from ml.modelling.registry import load_champion, register
from ml.models.customer_value import pipeline as value
from ml.models.customer_value.data import read_scoring_inputs, read_training_inputs
from ml.models.customer_value.model import CLV_BOOSTING, ClvConfig
from ml.serving.tables import publish, serving_table
from orchestration.lib import keys
from orchestration.lib.metadata import TRAINING_TAG, published_metadata, training_metadata
from orchestration.lib.sources import skip_without_inputs
from orchestration.resources import CrmSettings, registry

CUSTOMER_VALUE = serving_table("customer_value")


@dg.asset(
    key=keys.model(value.MODEL_NAME),
    group_name="customer_value",
    kinds={"catboost", "mlflow"},
    deps=[keys.mart("orders"), keys.CUSTOMER_FEATURES, keys.ERASURE],
    tags=TRAINING_TAG,
)
def customer_value_model(
    context: dg.AssetExecutionContext, crm: CrmSettings
) -> dg.MaterializeResult:
    """Both CLV models compared out of time on the last six months; the one with the lower
    per-customer value MAE (purchases MAE without usable amounts) refitted at the newest
    snapshot (12-month horizon) and registered. The metadata states the backtest protocol."""
    settings = crm.get()
    if (skip := skip_without_inputs(settings, value.NEEDS)) is not None:
        return skip
    with connect(settings.warehouse_path, read_only=True) as con:
        inputs = read_training_inputs(con)
    training = value.train(
        inputs,
        ClvConfig(boosting=CLV_BOOSTING.with_threads(settings.threads)),
        plots_dir=settings.reports_dir / value.MODEL_NAME / context.run_id,
    )
    registration = register(registry(settings), training.candidate)
    return dg.MaterializeResult(metadata=training_metadata(training, registration))


@dg.asset(
    key=keys.serving(CUSTOMER_VALUE.name),
    group_name="customer_value",
    kinds={"duckdb", "parquet"},
    deps=[keys.model(value.MODEL_NAME), keys.mart("orders"), keys.CUSTOMER_FEATURES, keys.ERASURE],
)
def customer_value(crm: CrmSettings) -> dg.MaterializeResult:
    """Expected purchases and order value over the next 12 months, and probability alive; the
    value is null (and the metadata says why) when the orders carry no usable amounts."""
    settings = crm.get()
    if (skip := skip_without_inputs(settings, value.NEEDS)) is not None:
        return skip
    model, version = load_champion(registry(settings), value.MODEL_NAME)
    with connect(settings.warehouse_path, threads=settings.threads) as con:
        values = value.score(model, version, read_scoring_inputs(con))
        published = publish(con, CUSTOMER_VALUE, values, settings.exports_dir)
    reason = model.value_reason
    return dg.MaterializeResult(
        metadata=published_metadata(
            published,
            values,
            ranked_by=None if reason is None else "expected_purchases_12m",
            value_columns=reason or "published",
        )
    )
