"""Customer lifetime value: BG/NBD + Gamma-Gamma against CatBoost, the better one served."""

from dataclasses import replace

import dagster as dg
import pandas as pd

from ml.core.warehouse import connect, export_parquet, fetch_row, publish_table
from ml.data.datasets import read_reference_features, read_transactions
from ml.modelling.registry import log_and_register_model
from ml.models.customer_value.model import (
    ClvConfig,
    compare_on_holdout,
    fit_clv,
    plot_clv_holdout,
    predict_clv,
)
from orchestration.defs.governance.assets import erasure
from orchestration.defs.models import (
    TRAINING_TAG,
    model_card_metadata,
    model_mlflow_config,
    registration_metadata,
)
from orchestration.defs.transform.checks import CUSTOMER_FEATURES
from orchestration.resources import CrmSettings

ORDERS = dg.AssetKey(["marts", "orders"])
MODEL_NAME = "customer_value"
COMPARISON_MONTHS = 6


def _features(con, as_of: pd.Timestamp) -> pd.DataFrame:
    frame = read_reference_features(con, [as_of.date()])
    return frame.drop(columns=["as_of_date"])


@dg.asset(
    key=["serving", "customer_value"],
    group_name="serving",
    kinds={"catboost", "mlflow", "duckdb", "parquet"},
    deps=[ORDERS, CUSTOMER_FEATURES, erasure],
    tags=TRAINING_TAG,
)
def customer_value(context: dg.AssetExecutionContext, crm: CrmSettings) -> dg.MaterializeResult:
    """Expected purchases and order value over the next 12 months, and probability alive.

    Both models are compared out of time on the last six months (fitted at the as-of date six
    months back, CatBoost trained on the six months before that); the one with the lower
    per-customer value MAE is refitted at the newest as-of date with a 12-month horizon and
    served. The comparison, its plot and the model go to MLflow as `customer_value`.
    """
    settings = crm.get()
    with connect(settings.warehouse_path, read_only=True) as con:
        transactions = read_transactions(con)
        (newest,) = fetch_row(con, "select max(as_of_date) from marts.customer_features")
        as_of = pd.Timestamp(newest)
        cutoff = as_of - pd.DateOffset(months=COMPARISON_MONTHS)
        train_cutoff = cutoff - pd.DateOffset(months=COMPARISON_MONTHS)
        features_now = _features(con, as_of)
        features_cutoff = _features(con, cutoff)
        features_train = _features(con, train_cutoff)
        features_year_ago = _features(con, as_of - pd.DateOffset(months=12))
    # Features at an as-of date describe the days before it: the last calibration day is the
    # day before.
    day = pd.Timedelta(days=1)
    compare_config = ClvConfig(
        horizon_days=(as_of - cutoff).days,
        catboost_protocol="out_of_time",
        threads=settings.threads,
    )
    comparison = compare_on_holdout(
        transactions, cutoff - day, compare_config, features_cutoff, features_train
    )
    served_config = replace(compare_config, horizon_days=365, catboost_protocol="auto")
    model = fit_clv(transactions, as_of - day, comparison.winner, served_config, features_year_ago)
    values = predict_clv(model, transactions, as_of - day, features_now)
    values.insert(1, "as_of_date", as_of.date())
    values["method"] = comparison.winner
    plot = plot_clv_holdout(
        comparison, settings.reports_dir / MODEL_NAME / context.run_id / "clv_holdout.png"
    )
    metrics = comparison.as_metrics()
    winner_mae = getattr(comparison, comparison.winner).value_mae
    mlflow_config = model_mlflow_config(settings, MODEL_NAME)
    registration = log_and_register_model(
        mlflow_config,
        model,
        metric="neg_value_mae",
        new_score=-winner_mae,
        champion_score=None,
        params={**served_config.as_params(), "method": comparison.winner},
        metrics={**metrics, "neg_value_mae": -winner_mae},
        plot_paths=[plot],
    )
    card = model_card_metadata(
        mlflow_config,
        registration,
        plot.parent / "model_card",
        intended_use="Expected order value and purchases over the next 12 months per customer, "
        "to weigh retention and cross-sell actions by what is at stake.",
        not_intended_for=("Credit limits or any decision about what a person may buy.",),
        data_window={
            "comparison_cutoff": str(cutoff.date()),
            "comparison_days": str(compare_config.horizon_days),
            "method": comparison.winner,
        },
        metrics=metrics,
        plots={"Predicted vs actual value by decile": plot},
        known_limits=(
            "Order value only: subscription fees are not in it.",
            "BG/NBD's probability alive is 1 for customers without a repeat purchase.",
        ),
    )
    values["model_version"] = registration.model_version
    with connect(settings.warehouse_path, threads=settings.threads) as con:
        publish_table(
            con,
            values,
            "serving",
            "customer_value",
            replace_where="as_of_date = ?",
            replace_params=[as_of.date()],
        )
        path = export_parquet(con, "serving", "customer_value", settings.exports_dir)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(values),
            "as_of_date": str(as_of.date()),
            "method": comparison.winner,
            "bgnbd_value_mae": comparison.bgnbd.value_mae,
            "catboost_value_mae": comparison.catboost.value_mae,
            "bgnbd_purchases_mae": comparison.bgnbd.purchases_mae,
            "catboost_purchases_mae": comparison.catboost.purchases_mae,
            "comparison_window": f"{cutoff.date()} + {compare_config.horizon_days} days",
            "mean_expected_value_12m": float(values["expected_value_12m"].mean()),
            "clv_holdout": dg.MetadataValue.path(str(plot)),
            "path": dg.MetadataValue.path(str(path)),
            **registration_metadata(registration),
            **card,
        }
    )
