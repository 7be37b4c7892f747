"""Retention uplift: learn from the CRM's randomised offer tests whom an offer keeps."""

from datetime import date

import dagster as dg

from ml.core.warehouse import connect, export_parquet, publish_table
from ml.data.datasets import read_campaign_sends, read_scoring_features
from ml.modelling.registry import load_champion_model, log_and_register_model
from ml.modelling.uplift import qini_coefficient
from ml.models.retention_uplift.model import (
    CampaignUpliftConfig,
    plot_qini,
    predict_retention_uplift,
    train_campaign_uplift,
)
from orchestration.defs.governance.assets import erasure
from orchestration.defs.markdown import markdown_table
from orchestration.defs.models import (
    TRAINING_TAG,
    model_card_metadata,
    model_mlflow_config,
    registration_metadata,
)
from orchestration.defs.transform.checks import CUSTOMER_FEATURES
from orchestration.resources import CrmSettings

CAMPAIGN_SENDS = dg.AssetKey(["marts", "campaign_sends"])
MODEL_NAME = "retention_uplift"


@dg.asset(
    group_name="uplift",
    kinds={"catboost", "mlflow"},
    deps=[CAMPAIGN_SENDS, CUSTOMER_FEATURES, erasure],
    tags=TRAINING_TAG,
)
def retention_uplift_model(
    context: dg.AssetExecutionContext, crm: CrmSettings
) -> dg.MaterializeResult:
    """T-learner uplift of the retention offer, evaluated on the newest held-out campaigns.

    Registered in MLflow as `retention_uplift`; the new version becomes champion when its Qini
    coefficient on the same held-out campaigns is at least the champion's. Without campaign
    tests (campaigns is an optional table) nothing is trained and downstream actions use no
    uplift.
    """
    settings = crm.get()
    with connect(settings.warehouse_path, read_only=True) as con:
        sends = read_campaign_sends(con)
    config = CampaignUpliftConfig()
    if sends.empty:
        context.log.warning("no campaign sends with a known outcome: uplift not trained")
        return dg.MaterializeResult(metadata={"trained": False, "reason": "no campaign tests"})
    training = train_campaign_uplift(sends, config)
    plot = plot_qini(
        training.holdout_outcome,
        training.holdout_uplift,
        training.holdout_treatment,
        settings.reports_dir / MODEL_NAME / context.run_id / "qini_curve.png",
    )
    held_out = training.summary["holdout_campaigns"]
    assert isinstance(held_out, list)
    holdout = sends.loc[sends["campaign_id"].isin(held_out)]
    y = holdout["outcome"].astype(int).to_numpy()
    t = holdout["is_treated"].astype(int).to_numpy()
    mlflow_config = model_mlflow_config(settings, MODEL_NAME)
    registration = log_and_register_model(
        mlflow_config,
        training.model,
        metric="qini",
        new_score=training.metrics["qini"],
        champion_score=lambda champion: qini_coefficient(y, champion.predict(holdout), t),
        params=config.as_params(),
        metrics=training.metrics,
        plot_paths=[plot],
        json_artifacts={"split_summary.json": training.summary},
    )
    i = training.interval
    card = model_card_metadata(
        mlflow_config,
        registration,
        plot.parent / "model_card",
        intended_use="Estimate, per customer, how much a retention offer raises the chance to "
        "stay, from the CRM's randomised offer tests, to offer it where it changes the outcome.",
        not_intended_for=("Other treatments than the tested retention offer.",),
        data_window={k: str(v) for k, v in training.summary.items()},
        metrics=training.metrics,
        plots={"Qini curve": plot},
        known_limits=(
            "Learns only from randomised tests: a campaign without a random control arm "
            "must not be added to the campaigns table.",
            "Uplift is a small difference of two probabilities; single-customer values are "
            "noisy, segments and rankings are what to use.",
        ),
    )
    return dg.MaterializeResult(
        metadata={
            "trained": True,
            "uplift_at_30": i.estimate,
            "uplift_at_30_interval": f"[{i.low:.3f}, {i.high:.3f}] (bootstrap 95%)",
            "qini": training.metrics["qini"],
            "auuc": training.metrics["auuc"],
            "average_effect": training.metrics["average_effect"],
            "holdout_campaigns": ", ".join(held_out),
            "holdout_rows": int(training.metrics["holdout_rows"]),
            "qini_curve": dg.MetadataValue.path(str(plot)),
            **registration_metadata(registration),
            **card,
        }
    )


@dg.asset(
    key=["serving", "customer_uplift"],
    group_name="serving",
    kinds={"duckdb", "parquet"},
    deps=[retention_uplift_model, CUSTOMER_FEATURES, erasure],
)
def customer_uplift(context: dg.AssetExecutionContext, crm: CrmSettings) -> dg.MaterializeResult:
    """Predicted retention uplift and response segment per customer, newest as-of date.

    Scored by models:/retention_uplift@champion; the rows of the as-of date are replaced in one
    transaction and exported as Parquet.
    """
    settings = crm.get()
    try:
        model, version = load_champion_model(model_mlflow_config(settings, MODEL_NAME))
    except LookupError as missing:
        context.log.warning(f"{missing}; serving.customer_uplift not updated")
        return dg.MaterializeResult(metadata={"published": False, "reason": str(missing)})
    with connect(settings.warehouse_path, threads=settings.threads) as con:
        features = read_scoring_features(con)
        uplift = predict_retention_uplift(model, features)
        uplift["model_version"] = version
        as_of: date = uplift["as_of_date"].iloc[0]
        publish_table(
            con,
            uplift,
            "serving",
            "customer_uplift",
            replace_where="as_of_date = ?",
            replace_params=[as_of],
        )
        path = export_parquet(con, "serving", "customer_uplift", settings.exports_dir)
    segments = uplift["uplift_segment"].value_counts().to_dict()
    return dg.MaterializeResult(
        metadata={
            "published": True,
            "dagster/row_count": len(uplift),
            "as_of_date": str(as_of),
            "model_version": version,
            "segments": dg.MetadataValue.json({str(k): int(v) for k, v in segments.items()}),
            "most_persuadable": dg.MetadataValue.md(
                markdown_table(
                    uplift.nlargest(5, "retention_uplift")[
                        ["customer_id", "retention_uplift", "uplift_segment"]
                    ]
                )
            ),
            "path": dg.MetadataValue.path(str(path)),
        }
    )
