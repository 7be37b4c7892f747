import dagster as dg

from ml.core.settings import Settings
from orchestration.defs.churn.assets import (
    churn_model,
    churn_score_buckets,
    customer_scores,
    customer_scores_parquet,
)
from orchestration.defs.churn.jobs import (
    churn_bucket_scoring_job,
    churn_retraining_job,
    churn_scoring_job,
)
from orchestration.defs.churn.schedules import build_schedules
from orchestration.defs.churn.sensors import drift_retraining_sensor


def build_defs(settings: Settings) -> dg.Definitions:
    return dg.Definitions(
        assets=[churn_model, churn_score_buckets, customer_scores, customer_scores_parquet],
        jobs=[churn_scoring_job, churn_retraining_job, churn_bucket_scoring_job],
        schedules=build_schedules(settings),
        sensors=[drift_retraining_sensor],
    )
