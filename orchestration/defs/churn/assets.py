"""Churn: train and register the model, score the newest as-of date, publish for BI tools."""

from datetime import UTC, datetime

import dagster as dg
from pydantic import Field

from ml.core.settings import Settings
from ml.core.warehouse import (
    connect,
    create_latest_view,
    export_parquet,
    fetch_row,
    publish_table,
)
from ml.data.datasets import (
    read_labelled_as_of_dates,
    read_labelled_features,
    read_scoring_features,
    read_typical_values,
)
from ml.modelling.fairness import FairnessConfig
from ml.modelling.promotion import PromotionRule
from ml.modelling.registry import MlflowConfig, load_champion
from ml.models.churn.model import TrainingConfig, out_of_time_dates
from ml.models.churn.pipeline import ChurnGovernance, score_latest, train_and_register
from ml.models.churn.scoring import RiskBands, validate_scores
from ml.serving.partitioning import bucket_keys, collect_bucket_scores, write_bucket_scores
from orchestration.defs.governance.assets import erasure
from orchestration.defs.markdown import markdown_table
from orchestration.defs.models import TRAINING_TAG
from orchestration.defs.transform.checks import CUSTOMER_FEATURES
from orchestration.resources import CrmSettings

CHURN_LABELS = dg.AssetKey(["marts", "churn_labels"])
IDENTITY_MAP = dg.AssetKey(["marts", "customer_identity_map"])


def mlflow_config(settings: Settings) -> MlflowConfig:
    return MlflowConfig(
        tracking_uri=settings.mlflow_tracking_uri, artifacts_dir=settings.mlflow_artifacts_dir
    )


class ChurnTrainingSettings(dg.Config):
    iterations: int = Field(
        default=TrainingConfig.iterations, description="CatBoost boosting iterations."
    )
    depth: int = Field(default=TrainingConfig.depth, description="CatBoost tree depth.")
    learning_rate: float = Field(
        default=TrainingConfig.learning_rate, description="CatBoost learning rate."
    )
    l2_leaf_reg: float = Field(
        default=TrainingConfig.l2_leaf_reg, description="CatBoost L2 regularisation of leaves."
    )
    training_as_of_dates: int = Field(
        default=TrainingConfig.training_as_of_dates,
        description="How many past as-of dates (months) to train on.",
    )
    calibration: str = Field(
        default="auto", description="auto (keep Platt scaling if it lowers Brier), none, sigmoid."
    )
    promotion_auc_margin: float = Field(
        default=PromotionRule.auc_margin,
        description="Promotion: how much lower than the champion's ROC AUC (same out-of-time "
        "rows) the new AUC may be.",
    )
    promotion_brier_margin: float = Field(
        default=PromotionRule.brier_margin,
        description="Promotion: how much higher the new Brier score may be.",
    )
    promotion_ece_margin: float = Field(
        default=PromotionRule.ece_margin,
        description="Promotion: how much higher the new expected calibration error may be.",
    )
    promotion_lift_margin: float = Field(
        default=PromotionRule.lift_margin,
        description="Promotion: how much lower the new lift at capacity (settings) may be.",
    )


@dg.asset(
    group_name="churn",
    kinds={"catboost", "mlflow"},
    deps=[CUSTOMER_FEATURES, CHURN_LABELS, IDENTITY_MAP, erasure],
    tags=TRAINING_TAG,
)
def churn_model(
    context: dg.AssetExecutionContext, config: ChurnTrainingSettings, crm: CrmSettings
) -> dg.MaterializeResult:
    """CatBoost churn model (90 days), validated out of time, registered in MLflow as `churn`."""
    settings = crm.get()
    with connect(settings.warehouse_path, read_only=True) as con:
        # Only the snapshots the split uses: at 1M customers every labelled row is ~12M rows.
        train_dates, calibration_date, validation_date = out_of_time_dates(
            read_labelled_as_of_dates(con), config.training_as_of_dates
        )
        split_dates = [*train_dates, validation_date]
        if calibration_date is not None:
            split_dates.append(calibration_date)
        labelled = read_labelled_features(con, split_dates)
        identity_map = con.sql("select * from marts.customer_identity_map").df()
        # Protected attributes, for the fairness audit only (never features).
        customers = con.sql("select customer_id, birth_year, gender from marts.customers").df()
    training = TrainingConfig(
        iterations=config.iterations,
        depth=config.depth,
        learning_rate=config.learning_rate,
        l2_leaf_reg=config.l2_leaf_reg,
        training_as_of_dates=config.training_as_of_dates,
        calibration=config.calibration,  # type: ignore[arg-type]
        thread_count=settings.threads,
    )
    outcome = train_and_register(
        labelled,
        identity_map,
        training,
        mlflow_config(settings),
        plots_dir=settings.reports_dir / "churn" / context.run_id,
        truth_dir=settings.truth_dir if settings.is_synthetic else None,
        customers=customers,
        governance=ChurnGovernance(
            action_threshold=RiskBands().high,
            capacity=settings.capacity_top_k,
            fairness=FairnessConfig(
                min_selection_rate_ratio=settings.fairness_min_selection_rate_ratio,
                capacity_k=settings.capacity_top_k,
            ),
            promotion=PromotionRule(
                auc_margin=config.promotion_auc_margin,
                brier_margin=config.promotion_brier_margin,
                ece_margin=config.promotion_ece_margin,
                lift_margin=config.promotion_lift_margin,
            ),
        ),
    )
    m, reg = outcome.metrics, outcome.registration
    metadata: dict[str, dg.RawMetadataValue] = {
        "roc_auc": m.roc_auc,
        "pr_auc": m.pr_auc,
        "brier": m.brier,
        "ece": m.ece,
        "precision_top_decile": m.precision_at_k,
        "lift_top_decile": m.lift_at_k,
        "validation_rows": m.n,
        "validation_as_of": str(outcome.split.validation_date),
        "training_as_of_dates": ", ".join(str(d) for d in outcome.split.train_dates),
        "model_version": reg.model_version,
        "alias": reg.alias,
        "promotion": reg.reason,
        "mlflow_run_id": reg.run_id,
    }
    if outcome.oracle_auc is not None:
        metadata["oracle_auc"] = outcome.oracle_auc
        metadata["auc_gap_to_oracle"] = outcome.oracle_auc - m.roc_auc
    for plot in outcome.plots:
        metadata[plot.stem] = dg.MetadataValue.path(str(plot))
    metadata.update(
        {
            "precision_at_capacity": outcome.capacity["precision_at_capacity"],
            "lift_at_capacity": outcome.capacity["lift_at_capacity"],
            "capacity": int(outcome.capacity["capacity"]),
        }
    )
    if outcome.fairness is not None and outcome.proxies is not None:
        flagged = outcome.proxies.loc[outcome.proxies["flagged"]]
        metadata["fairness_gate"] = "passed" if outcome.fairness.gate_passed else "FAILED"
        metadata["fairness"] = dg.MetadataValue.md(outcome.fairness.table_markdown())
        metadata["proxy_features"] = dg.MetadataValue.md(
            markdown_table(flagged[["feature", "protected", "method", "association"]])
            if len(flagged)
            else "none above the threshold"
        )
    if outcome.model_card is not None:
        metadata["model_card"] = dg.MetadataValue.path(str(outcome.model_card[1]))
        metadata["model_card_markdown"] = dg.MetadataValue.path(str(outcome.model_card[0]))
    return dg.MaterializeResult(metadata=metadata)


BUCKETS = dg.StaticPartitionsDefinition(bucket_keys())


@dg.asset(
    key=["scoring", "churn_score_buckets"],
    group_name="serving",
    kinds={"parquet"},
    partitions_def=BUCKETS,
    deps=[churn_model, CUSTOMER_FEATURES, erasure],
    # A bucket run that starts while a writer holds the DuckDB file cannot open it read-only.
    retry_policy=dg.RetryPolicy(max_retries=3, delay=30, backoff=dg.Backoff.EXPONENTIAL),
)
def churn_score_buckets(
    context: dg.AssetExecutionContext, crm: CrmSettings
) -> dg.MaterializeResult:
    """Churn scores of one customer bucket (a stable hash of the id), for scaled-out scoring.

    A backfill of all buckets fans out: each run reads the warehouse read-only and writes one
    Parquet file, so many workers can run at once. serving/customer_scores with
    ``from_buckets: true`` then checks the files form one complete scoring and publishes them.
    """
    settings = crm.get()
    bucket = int(context.partition_key)
    with connect(settings.warehouse_path, read_only=True, threads=settings.threads) as con:
        features = read_scoring_features(con, bucket=bucket)
        typical = read_typical_values(con)
    scores = score_latest(
        features,
        mlflow_config(settings),
        datetime.now(UTC).replace(tzinfo=None),
        RiskBands(),
        typical=typical,
    )
    path = write_bucket_scores(scores, settings.bucket_scores_dir, bucket)
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(scores),
            "path": dg.MetadataValue.path(str(path)),
            "as_of_date": str(scores["as_of_date"].iloc[0]),
            "model_version": str(scores["model_version"].iloc[0]),
        }
    )


class CustomerScoresSettings(dg.Config):
    from_buckets: bool = Field(
        default=False,
        description="Publish the scores of a backfill of scoring/churn_score_buckets instead of "
        "scoring here (they must cover every bucket, the newest snapshot and the champion).",
    )


@dg.asset(
    key=["serving", "customer_scores"],
    group_name="serving",
    kinds={"duckdb"},
    # Not a dependency on scoring/churn_score_buckets, though from_buckets reads its files: an
    # asset selection "customer_scores and everything upstream" would then pull a partitioned
    # asset into an unpartitioned run, which Dagster refuses.
    deps=[churn_model, CUSTOMER_FEATURES, erasure],
)
def customer_scores(
    context: dg.AssetExecutionContext, config: CustomerScoresSettings, crm: CrmSettings
) -> dg.MaterializeResult:
    """Churn risk per customer for the newest as-of date, with top drivers and a reason.

    Scored by models:/churn@champion, here or (``from_buckets``) by a backfill of
    scoring/churn_score_buckets. The rows of this as-of date are replaced in one transaction,
    and only after the scores pass the serving contract: a failed run leaves the last good
    scores in place. ``serving.customer_scores_latest`` is the newest row per customer.
    """
    settings = crm.get()
    with connect(settings.warehouse_path, threads=settings.threads) as con:
        features = read_scoring_features(con)
        if config.from_buckets:
            _, champion_version = load_champion(mlflow_config(settings))
            scores = collect_bucket_scores(
                settings.bucket_scores_dir,
                as_of_date=features["as_of_date"].iloc[0].date(),
                model_version=champion_version,
                expected_rows=len(features),
            )
            validate_scores(scores)
        else:
            scores = score_latest(
                features,
                mlflow_config(settings),
                datetime.now(UTC).replace(tzinfo=None),
                RiskBands(),
            )
        as_of = scores["as_of_date"].iloc[0]
        publish_table(
            con,
            scores,
            "serving",
            "customer_scores",
            replace_where="as_of_date = ?",
            replace_params=[as_of],
        )
        create_latest_view(
            con,
            "serving",
            "customer_scores",
            "customer_scores_latest",
            key="customer_id",
            order_col="as_of_date",
        )
    bands = scores["churn_risk_band"].value_counts().to_dict()
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(scores),
            "as_of_date": str(as_of),
            "model_version": str(scores["model_version"].iloc[0]),
            "mean_churn_probability": float(scores["churn_probability"].mean()),
            "risk_bands": dg.MetadataValue.json({str(k): int(v) for k, v in bands.items()}),
            "table": "serving.customer_scores",
            "highest_risk": dg.MetadataValue.md(
                markdown_table(
                    scores.nlargest(5, "churn_probability")[
                        ["customer_id", "churn_probability", "churn_risk_band", "churn_reason"]
                    ]
                )
            ),
        }
    )


@dg.asset(
    key=["exports", "customer_scores"],
    group_name="serving",
    kinds={"parquet"},
    deps=[customer_scores],
)
def customer_scores_parquet(crm: CrmSettings) -> dg.MaterializeResult:
    """serving.customer_scores as Parquet for BI tools that cannot open DuckDB (atomic replace)."""
    settings = crm.get()
    with connect(settings.warehouse_path, read_only=True) as con:
        path = export_parquet(con, "serving", "customer_scores", settings.exports_dir)
        (rows,) = fetch_row(con, "select count(*) from read_parquet(?)", [str(path)])
    return dg.MaterializeResult(
        metadata={
            "path": dg.MetadataValue.path(str(path)),
            "dagster/row_count": rows,
        }
    )
