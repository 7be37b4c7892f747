"""Daily scoring and weekly retraining; the cron strings come from settings."""

import dagster as dg

from ml.core.settings import Settings
from orchestration.defs.churn.jobs import churn_retraining_job, churn_scoring_job


def build_schedules(settings: Settings) -> list[dg.ScheduleDefinition]:
    return [
        dg.ScheduleDefinition(
            name="daily_churn_scoring",
            job=churn_scoring_job,
            cron_schedule=settings.scoring_cron,
            description="Score every customer with the champion (CRM_SCORING_CRON).",
        ),
        dg.ScheduleDefinition(
            name="weekly_churn_retraining",
            job=churn_retraining_job,
            cron_schedule=settings.retraining_cron,
            description="Retrain, evaluate and promote by rule (CRM_RETRAINING_CRON).",
        ),
    ]
