"""Retrain when the scoring features drift, at most once per cool-down period."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from ml.modelling.retraining import should_retrain
from orchestration.defs.automation.jobs import retraining_job
from orchestration.lib import keys
from orchestration.resources import CrmSettings

TRIGGER_TAG = "crm/trigger"
REASON_TAG = "crm/reason"


def _last_drift_retraining(instance: dg.DagsterInstance) -> datetime | None:
    runs = instance.get_run_records(
        filters=dg.RunsFilter(job_name=retraining_job.name, tags={TRIGGER_TAG: "drift"}),
        limit=1,
    )
    return runs[0].create_timestamp.astimezone(UTC) if runs else None


@dg.sensor(job=retraining_job, minimum_interval_seconds=300)
def drift_retraining_sensor(
    context: dg.SensorEvaluationContext, crm: CrmSettings
) -> dg.RunRequest | dg.SkipReason:
    """Reads the newest drift report once; launches retraining when its drift share passes
    CRM_DRIFT_SHARE_THRESHOLD and no drift-triggered retraining ran within the cool-down."""
    settings = crm.get()
    records = context.instance.fetch_materializations(keys.CHURN_DRIFT, limit=1).records
    materialization = records[0].asset_materialization if records else None
    if materialization is None:
        return dg.SkipReason("no drift report yet")
    record = records[0]
    if context.cursor == str(record.storage_id):
        return dg.SkipReason("no new drift report since the last evaluation")
    context.update_cursor(str(record.storage_id))

    share = materialization.metadata.get("drift_share")
    decision = should_retrain(
        drift_share=float(share.value) if share is not None else None,  # type: ignore[arg-type]
        threshold=settings.drift_share_threshold,
        last_triggered_at=_last_drift_retraining(context.instance),
        now=datetime.now(UTC),
        cooldown=timedelta(hours=settings.retrain_cooldown_hours),
    )
    if not decision.retrain:
        return dg.SkipReason(decision.reason)
    return dg.RunRequest(
        run_key=f"drift-{record.storage_id}",
        tags={TRIGGER_TAG: "drift", REASON_TAG: decision.reason},
    )
