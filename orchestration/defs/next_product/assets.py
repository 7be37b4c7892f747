"""Next product: the category each customer is most likely to buy next among those not bought."""

from datetime import date

import dagster as dg
from sklearn.metrics import roc_auc_score

from ml.core.warehouse import connect, export_parquet, publish_table
from ml.data.datasets import read_product_candidates
from ml.modelling.evaluation import plot_calibration_curve, plot_lift_chart, plot_shap_summary
from ml.modelling.registry import load_champion_model, log_and_register_model
from ml.models.next_product.model import NextProductConfig, recommend, train_next_product_model
from orchestration.defs.governance.assets import erasure
from orchestration.defs.models import (
    TRAINING_TAG,
    model_card_metadata,
    model_mlflow_config,
    registration_metadata,
)
from orchestration.defs.transform.checks import CUSTOMER_FEATURES
from orchestration.resources import CrmSettings

PRODUCT_LABELS = dg.AssetKey(["marts", "product_purchase_labels"])
MODEL_NAME = "next_product"


@dg.asset(
    group_name="next_product",
    kinds={"catboost", "mlflow"},
    deps=[PRODUCT_LABELS, CUSTOMER_FEATURES, erasure],
    tags=TRAINING_TAG,
)
def next_product_model(context: dg.AssetExecutionContext, crm: CrmSettings) -> dg.MaterializeResult:
    """CatBoost propensity to buy a category within 90 days, out-of-time on the newest date.

    Registered in MLflow as `next_product` (champion when its holdout ROC AUC is at least the
    champion's on the same rows).
    """
    settings = crm.get()
    config = NextProductConfig(thread_count=settings.threads)
    with connect(settings.warehouse_path, read_only=True) as con:
        labelled = read_product_candidates(
            con, labelled=True, last_as_of_dates=config.training_as_of_dates
        )
    training = train_next_product_model(labelled, config)
    plots_dir = settings.reports_dir / MODEL_NAME / context.run_id
    plots = [
        plot_calibration_curve(
            training.holdout_labels,
            training.holdout_probability,
            plots_dir / "calibration_curve.png",
        ),
        plot_lift_chart(
            training.holdout_labels, training.holdout_probability, plots_dir / "lift_chart.png"
        ),
    ]
    holdout = labelled.loc[labelled["as_of_date"] == labelled["as_of_date"].max()]
    labels = training.holdout_labels
    shap_plot, importance = plot_shap_summary(
        training.model.shap_values(holdout),
        training.model.features(holdout),
        plots_dir / "shap_summary.png",
    )
    plots.append(shap_plot)

    mlflow_config = model_mlflow_config(settings, MODEL_NAME)
    registration = log_and_register_model(
        mlflow_config,
        training.model,
        metric="roc_auc",
        new_score=training.holdout.roc_auc,
        champion_score=lambda champion: float(roc_auc_score(labels, champion.predict(holdout))),
        params=config.as_params(),
        metrics=training.holdout.as_metrics(),
        plot_paths=plots,
        json_artifacts={
            "split_summary.json": training.summary,
            "feature_importance.json": importance,
        },
    )
    m = training.holdout
    card = model_card_metadata(
        mlflow_config,
        registration,
        plots_dir / "model_card",
        intended_use="Rank, per customer, the product categories not bought yet by the chance of "
        "a purchase within 90 days, to choose what a cross-sell offer shows.",
        not_intended_for=("Pricing or credit decisions.",),
        data_window={k: str(v) for k, v in training.summary.items()},
        metrics={k: v for k, v in m.as_metrics().items() if k not in ("n", "top_fraction")},
        plots={p.stem.replace("_", " ").capitalize(): p for p in plots},
        calibration={"brier": m.brier, "ece": m.ece},
        known_limits=(
            "Predicts purchases, not purchases caused by an offer: the next best action scales "
            "it by an assumed incrementality.",
            "Only categories the customer has never bought are candidates.",
        ),
    )
    return dg.MaterializeResult(
        metadata={
            "roc_auc": m.roc_auc,
            "pr_auc": m.pr_auc,
            "lift_top_decile": m.lift_at_k,
            "purchase_rate": m.base_rate,
            "holdout_rows": m.n,
            "holdout_as_of": str(training.summary["holdout_as_of_date"]),
            **{p.stem: dg.MetadataValue.path(str(p)) for p in plots},
            **registration_metadata(registration),
            **card,
        }
    )


@dg.asset(
    key=["serving", "next_product_offers"],
    group_name="serving",
    kinds={"duckdb", "parquet"},
    deps=[next_product_model, PRODUCT_LABELS, CUSTOMER_FEATURES, erasure],
)
def next_product_offers(
    context: dg.AssetExecutionContext, crm: CrmSettings
) -> dg.MaterializeResult:
    """Per customer, the category not bought yet with the highest purchase probability."""
    settings = crm.get()
    model, version = load_champion_model(model_mlflow_config(settings, MODEL_NAME))
    with connect(settings.warehouse_path, threads=settings.threads) as con:
        candidates = read_product_candidates(con, labelled=False)
        offers = recommend(model, candidates)
        offers["model_version"] = version
        if offers.empty:
            context.log.warning("no candidate categories at the newest as-of date")
            return dg.MaterializeResult(metadata={"dagster/row_count": 0})
        as_of: date = offers["as_of_date"].iloc[0]
        publish_table(
            con,
            offers,
            "serving",
            "next_product_offers",
            replace_where="as_of_date = ?",
            replace_params=[as_of],
        )
        path = export_parquet(con, "serving", "next_product_offers", settings.exports_dir)
    by_category = offers["product_category"].value_counts().to_dict()
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(offers),
            "as_of_date": str(as_of),
            "model_version": version,
            "offers_by_category": dg.MetadataValue.json(
                {str(k): int(v) for k, v in by_category.items()}
            ),
            "mean_probability": float(offers["probability"].mean()),
            "path": dg.MetadataValue.path(str(path)),
        }
    )
