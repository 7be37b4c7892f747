"""Churn: train and register the model, score the newest snapshot (whole or by bucket)."""

from dataclasses import replace
from datetime import UTC, datetime

import dagster as dg
import pandas as pd
from pydantic import Field

from ml.core.settings import Settings
from ml.core.warehouse import connect
from ml.data.contract import CUSTOMER_SNAPSHOT_TABLE
from ml.data.features import CustomerBucket, read_scoring_features
from ml.data.flat_tables import read_flat_table
from ml.modelling.fairness import FairnessConfig
from ml.modelling.promotion import PromotionRule
from ml.modelling.reasons import reason_rules
from ml.modelling.registry import champion_version, load_champion, register
from ml.models.churn import pipeline as churn
from ml.models.churn import snapshot
from ml.models.churn.data import read_training_inputs, read_typical_values
from ml.models.churn.model import CHURN_BOOSTING, TrainingConfig
from ml.models.churn.scoring import RiskBands, validate_scores
from ml.serving.partitioning import bucket_keys, collect_bucket_scores, write_bucket_scores
from ml.serving.tables import Published, publish, read_published, serving_table
from orchestration.lib import keys
from orchestration.lib.metadata import (
    TRAINING_TAG,
    published_metadata,
    skipped,
    training_metadata,
)
from orchestration.lib.sources import missing_inputs, skip_without_inputs
from orchestration.resources import CrmSettings, registry

_TRAINING = TrainingConfig()
_PROMOTION = PromotionRule()
CUSTOMER_SCORES = serving_table("customer_scores")
# A bucket step that starts while a writer holds the DuckDB file cannot open it read-only.
BUCKET_RETRY = dg.RetryPolicy(max_retries=3, delay=30, backoff=dg.Backoff.EXPONENTIAL)


class ChurnTrainingSettings(dg.Config):
    iterations: int = Field(_TRAINING.boosting.iterations, description="Boosting iterations.")
    depth: int = Field(_TRAINING.boosting.depth, description="CatBoost tree depth.")
    learning_rate: float = Field(_TRAINING.boosting.learning_rate, description="Learning rate.")
    l2_leaf_reg: float | None = Field(
        _TRAINING.boosting.l2_leaf_reg,
        description="CatBoost L2 regularisation of leaves (none: CatBoost's default).",
    )
    training_as_of_dates: int = Field(
        _TRAINING.training_as_of_dates, description="How many past as-of dates to train on."
    )
    calibration: str = Field(
        "auto", description="auto (keep Platt scaling if it lowers Brier), none, sigmoid."
    )
    promotion_auc_margin: float = Field(
        _PROMOTION.auc_margin,
        description="Promotion: how much lower than the champion's ROC AUC (same out-of-time "
        "rows) the new AUC may be.",
    )
    promotion_brier_margin: float = Field(
        _PROMOTION.brier_margin, description="Promotion: how much higher the Brier score may be."
    )
    promotion_ece_margin: float = Field(
        _PROMOTION.ece_margin,
        description="Promotion: how much higher the expected calibration error may be.",
    )
    promotion_lift_margin: float = Field(
        _PROMOTION.lift_margin,
        description="Promotion: how much lower the lift at capacity (settings) may be.",
    )

    def training(self, threads: int) -> TrainingConfig:
        boosting = replace(
            _TRAINING.boosting,
            iterations=self.iterations,
            depth=self.depth,
            learning_rate=self.learning_rate,
            l2_leaf_reg=self.l2_leaf_reg,
            thread_count=threads,
        )
        return TrainingConfig(boosting, self.training_as_of_dates, self.calibration)  # type: ignore[arg-type]

    def governance(self, capacity: int, min_selection_rate_ratio: float) -> churn.ChurnGovernance:
        return churn.ChurnGovernance(
            action_threshold=RiskBands().high,
            capacity=capacity,
            fairness=FairnessConfig(
                min_selection_rate_ratio=min_selection_rate_ratio, capacity_k=capacity
            ),
            promotion=PromotionRule(
                auc_margin=self.promotion_auc_margin,
                brier_margin=self.promotion_brier_margin,
                ece_margin=self.promotion_ece_margin,
                lift_margin=self.promotion_lift_margin,
            ),
        )


@dg.asset(
    key=keys.model(churn.MODEL_NAME),
    group_name="churn",
    kinds={"catboost", "mlflow"},
    deps=[keys.CUSTOMER_FEATURES, keys.mart("churn_labels"), keys.ERASURE],
    tags=TRAINING_TAG,
)
def churn_model(
    context: dg.AssetExecutionContext, config: ChurnTrainingSettings, crm: CrmSettings
) -> dg.MaterializeResult:
    """CatBoost churn model, validated out of time, judged against the champion, registered."""
    settings = crm.get()
    if (skip := skip_without_inputs(settings, churn.NEEDS)) is not None:
        return skip
    with connect(settings.warehouse_path, read_only=True) as con:
        inputs = read_training_inputs(
            con, config.training_as_of_dates, settings.training_max_rows or None
        )
    training = churn.train(
        inputs,
        config.training(settings.threads),
        config.governance(settings.capacity_top_k, settings.fairness_min_selection_rate_ratio),
        plots_dir=settings.reports_dir / churn.MODEL_NAME / context.run_id,
        truth_dir=settings.truth_dir if settings.is_synthetic else None,
    )
    registration = register(registry(settings), training.candidate)
    return dg.MaterializeResult(metadata=training_metadata(training, registration))


@dg.asset(
    key=keys.model(snapshot.MODEL_NAME),
    group_name="churn",
    kinds={"catboost", "mlflow"},
    deps=[keys.raw("customer_snapshot")],
    tags=TRAINING_TAG,
)
def churn_snapshot_model(
    context: dg.AssetExecutionContext, crm: CrmSettings
) -> dg.MaterializeResult:
    """Churn model of a flat customer table (snapshot mode, docs/bring-your-own-data.md).

    Settings chosen by inner cross-validation, judged on 20% held-out customers against the
    champion (AUC, calibration, lift at capacity) and the fairness gate over the protected
    columns, registered as churn_snapshot.
    """
    settings = crm.get()
    if (skip := skip_without_inputs(settings, snapshot.NEEDS)) is not None:
        return skip
    with connect(settings.warehouse_path, read_only=True) as con:
        table = read_flat_table(con, CUSTOMER_SNAPSHOT_TABLE)
    training = snapshot.train(
        table,
        snapshot.SnapshotConfig(boosting=CHURN_BOOSTING.with_threads(settings.threads)),
        snapshot.SnapshotGovernance(
            capacity=settings.capacity_top_k,
            min_selection_rate_ratio=settings.fairness_min_selection_rate_ratio,
        ),
        plots_dir=settings.reports_dir / snapshot.MODEL_NAME / context.run_id,
    )
    registration = register(registry(settings), training.candidate)
    return dg.MaterializeResult(metadata=training_metadata(training, registration))


@dg.asset(
    key=["scoring", "churn_buckets"],
    group_name="churn",
    kinds={"parquet"},
    partitions_def=dg.StaticPartitionsDefinition(bucket_keys()),
    deps=[keys.model(churn.MODEL_NAME), keys.CUSTOMER_FEATURES, keys.ERASURE],
    retry_policy=BUCKET_RETRY,
)
def churn_buckets(context: dg.AssetExecutionContext, crm: CrmSettings) -> dg.MaterializeResult:
    """Churn scores of one customer bucket (a stable hash of the id), for scaled-out scoring.

    A backfill of all buckets fans out: each run reads the warehouse read-only and writes one
    Parquet file, so many workers can run at once. serving/customer_scores with
    ``from_buckets: true`` then checks the files form one complete scoring and publishes them.
    """
    settings = crm.get()
    if (skip := skip_without_inputs(settings, churn.NEEDS)) is not None:
        return skip
    return dg.MaterializeResult(
        metadata=score_bucket(settings, CustomerBucket(int(context.partition_key)))
    )


def score_bucket(settings: Settings, bucket: CustomerBucket) -> "dict[str, dg.RawMetadataValue]":
    """Score one bucket with the champion into its Parquet file; the metadata to show.

    Shared by the partitioned asset (a run per bucket) and the Celery job (a step per bucket).
    """
    with connect(settings.warehouse_path, read_only=True, threads=settings.threads) as con:
        features = read_scoring_features(con, bucket=bucket)
        typical = read_typical_values(con)
    model, version = load_champion(registry(settings), churn.MODEL_NAME)
    scores = churn.score(
        model,
        version,
        features,
        datetime.now(UTC),
        typical=typical,
        shap_mode=settings.shap_mode,
        rules=reason_rules(settings),
    )
    path = write_bucket_scores(scores, settings.bucket_scores_dir, bucket.index)
    return {
        "dagster/row_count": len(scores),
        "path": dg.MetadataValue.path(str(path)),
        "as_of_date": str(scores["as_of_date"].iloc[0]),
        "model_version": version,
        "shap_mode": settings.shap_mode,
    }


class CustomerScoresSettings(dg.Config):
    from_buckets: bool = Field(
        default=False,
        description="Publish the scores of a backfill of scoring/churn_buckets instead of "
        "scoring here (they must cover every bucket, the newest snapshot and the champion).",
    )


@dg.asset(
    key=keys.serving(CUSTOMER_SCORES.name),
    group_name="churn",
    kinds={"duckdb", "parquet"},
    # Not a dependency on scoring/churn_buckets, though from_buckets reads its files: an asset
    # selection "customer_scores and everything upstream" would then pull a partitioned asset
    # into an unpartitioned run, which Dagster refuses.
    deps=[
        keys.model(churn.MODEL_NAME),
        keys.model(snapshot.MODEL_NAME),
        keys.CUSTOMER_FEATURES,
        keys.ERASURE,
    ],
)
def customer_scores(config: CustomerScoresSettings, crm: CrmSettings) -> dg.MaterializeResult:
    """Churn risk per customer for the newest snapshot, with top drivers and a reason.

    Scored by models:/churn@champion when the source has the CRM's event tables, here or
    (``from_buckets``) by a backfill of scoring/churn_buckets; else, from a flat customer
    table, by models:/churn_snapshot@champion. The rows of the as-of date are replaced only
    after the scores pass the serving contract: a failed run leaves the last good scores.
    """
    settings = crm.get()
    event_missing = missing_inputs(settings, churn.NEEDS)
    if event_missing is not None:
        snapshot_missing = missing_inputs(settings, snapshot.NEEDS)
        if snapshot_missing is not None:
            return skipped(f"{event_missing}; {snapshot_missing}")
        return _snapshot_scores(settings)
    if config.from_buckets:
        return dg.MaterializeResult(metadata=publish_buckets(settings))
    with connect(settings.warehouse_path, threads=settings.threads) as con:
        features = read_scoring_features(con)
        model, version = load_champion(registry(settings), churn.MODEL_NAME)
        # Customers whose features (and the reason rules) did not change since their last score
        # keep it.
        as_of = features["as_of_date"].iloc[0].date() if len(features) else None
        previous = (
            read_published(con, CUSTOMER_SCORES, as_of)
            if as_of is not None and not settings.full_refresh
            else None
        )
        changed = churn.score_changed(
            model,
            version,
            features,
            previous,
            datetime.now(UTC),
            shap_mode=settings.shap_mode,
            rules=reason_rules(settings),
        )
        scores, rescored = changed.scores, changed.rescored
        published = publish(con, CUSTOMER_SCORES, scores, settings.exports_dir)
    return dg.MaterializeResult(metadata=_scores_metadata(settings, published, scores, rescored))


def publish_buckets(settings: Settings) -> "dict[str, dg.RawMetadataValue]":
    """Publish the bucket files as serving.customer_scores once they form one complete scoring
    (every bucket, the newest snapshot, the champion); the metadata to show.

    Shared by ``from_buckets`` here and the publish step of the Celery job.
    """
    with connect(settings.warehouse_path, threads=settings.threads) as con:
        features = read_scoring_features(con)
        scores = collect_bucket_scores(
            settings.bucket_scores_dir,
            as_of_date=features["as_of_date"].iloc[0].date(),
            model_version=champion_version(registry(settings), churn.MODEL_NAME) or "none",
            expected_rows=len(features),
        )
        validate_scores(scores)
        published = publish(con, CUSTOMER_SCORES, scores, settings.exports_dir)
    return _scores_metadata(settings, published, scores, rescored=len(scores))


def _scores_metadata(
    settings: Settings, published: Published, scores: pd.DataFrame, rescored: int
) -> "dict[str, dg.RawMetadataValue]":
    # Which SHAP computation made the drivers (a backfill's buckets ran with the same settings).
    return {
        **published_metadata(published, scores, shap_mode=settings.shap_mode),
        "rescored_rows": rescored,
        "kept_rows": len(scores) - rescored,
    }


def _snapshot_scores(settings: Settings) -> dg.MaterializeResult:
    model, version = load_champion(registry(settings), snapshot.MODEL_NAME)
    with connect(settings.warehouse_path, threads=settings.threads) as con:
        rows = read_flat_table(con, CUSTOMER_SNAPSHOT_TABLE).rows
        scores = snapshot.score(
            model,
            version,
            rows,
            datetime.now(UTC).replace(tzinfo=None),
            rules=reason_rules(settings),
        )
        published = publish(con, CUSTOMER_SCORES, scores, settings.exports_dir)
    return dg.MaterializeResult(
        metadata=published_metadata(published, scores, model=snapshot.MODEL_NAME)
    )
