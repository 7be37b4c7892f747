"""Daily scoring and weekly retraining; the cron strings come from settings."""

import dagster as dg

from ml.core.settings import Settings
from orchestration.defs.automation.jobs import retraining_job, scoring_job


@dg.definitions
def schedules() -> dg.Definitions:
    settings = Settings()
    return dg.Definitions(
        schedules=[
            dg.ScheduleDefinition(
                name="daily_scoring",
                job=scoring_job,
                cron_schedule=settings.scoring_cron,
                description="Score every customer with the champions (CRM_SCORING_CRON).",
            ),
            dg.ScheduleDefinition(
                name="weekly_retraining",
                job=retraining_job,
                cron_schedule=settings.retraining_cron,
                description="Retrain, evaluate and promote by rule (CRM_RETRAINING_CRON).",
            ),
        ]
    )
