"""Retrain when the churn champion's performance falls (estimated without labels, or realized
once they land) or its scoring features drift; at most once per cool-down period."""

from datetime import UTC, datetime, timedelta

import dagster as dg

from ml.core.settings import Settings
from ml.modelling.retraining import (
    TRIGGERS,
    PerformanceEvidence,
    RetrainDecision,
    should_retrain,
    should_retrain_on_performance,
)
from orchestration.defs.automation.jobs import retraining_job
from orchestration.lib import keys
from orchestration.resources import CrmSettings

TRIGGER_TAG = "crm/trigger"
REASON_TAG = "crm/reason"


def _last_triggered_retraining(instance: dg.DagsterInstance) -> datetime | None:
    """When the sensor last launched a retraining, whatever triggered it."""
    newest = [
        runs[0].create_timestamp.astimezone(UTC)
        for trigger in TRIGGERS
        if (
            runs := instance.get_run_records(
                filters=dg.RunsFilter(job_name=retraining_job.name, tags={TRIGGER_TAG: trigger}),
                limit=1,
            )
        )
    ]
    return max(newest, default=None)


def _number(metadata: dict, name: str) -> float | None:  # type: ignore[type-arg]
    value = getattr(metadata.get(name), "value", None)
    return None if value is None else float(value)


def _newest(instance: dg.DagsterInstance, key: dg.AssetKey) -> tuple[int, dict] | None:  # type: ignore[type-arg]
    records = instance.fetch_materializations(key, limit=1).records
    if not records or records[0].asset_materialization is None:
        return None
    return records[0].storage_id, dict(records[0].asset_materialization.metadata)


def _decide(
    instance: dg.DagsterInstance,
    settings: Settings,
    drift: dict | None,
    performance: dict | None,  # type: ignore[type-arg]
) -> RetrainDecision:
    """Performance first (a realized loss, then an estimated one), then drift."""
    last, now = _last_triggered_retraining(instance), datetime.now(UTC)
    cooldown = timedelta(hours=settings.retrain_cooldown_hours)
    decisions = []
    if performance is not None:
        evidence = PerformanceEvidence(
            reference_auc=_number(performance, "reference_roc_auc"),
            estimated_auc=_number(performance, "estimated_roc_auc"),
            realized_auc=_number(performance, "realized_roc_auc"),
        )
        decisions.append(
            should_retrain_on_performance(
                evidence,
                settings.retrain_estimated_auc_margin,
                settings.retrain_realized_auc_margin,
                last,
                now,
                cooldown,
            )
        )
    if drift is not None:
        decisions.append(
            should_retrain(
                drift_share=_number(drift, "drift_share"),
                threshold=settings.drift_share_threshold,
                last_triggered_at=last,
                now=now,
                cooldown=cooldown,
            )
        )
    return next(
        (d for d in decisions if d.retrain),
        RetrainDecision(False, "; ".join(d.reason for d in decisions), "none"),
    )


@dg.sensor(job=retraining_job, minimum_interval_seconds=300)
def drift_retraining_sensor(
    context: dg.SensorEvaluationContext, crm: CrmSettings
) -> dg.RunRequest | dg.SkipReason:
    """Reads the newest drift report and performance estimate once each; launches retraining
    when the realized or estimated ROC AUC falls more than its margin below the champion's
    held-out AUC (CRM_RETRAIN_REALIZED_AUC_MARGIN, CRM_RETRAIN_ESTIMATED_AUC_MARGIN) or the drift
    share passes CRM_DRIFT_SHARE_THRESHOLD, and no triggered retraining ran within the
    cool-down. The run's ``crm/trigger`` tag names what triggered it: ``realized_performance``,
    ``estimated_performance`` or ``drift``."""
    settings = crm.get()
    drift = _newest(context.instance, keys.CHURN_DRIFT)
    performance = _newest(context.instance, keys.CHURN_PERFORMANCE)
    if drift is None and performance is None:
        return dg.SkipReason("no drift report and no performance estimate yet")
    seen = set((context.cursor or "").split(","))
    new_drift = drift if drift is not None and str(drift[0]) not in seen else None
    new_performance = (
        performance if performance is not None and f"p{performance[0]}" not in seen else None
    )
    if new_drift is None and new_performance is None:
        return dg.SkipReason(
            "no new drift report or performance estimate since the last evaluation"
        )
    context.update_cursor(
        ",".join(
            [*([str(drift[0])] if drift else []), *([f"p{performance[0]}"] if performance else [])]
        )
    )
    decision = _decide(
        context.instance,
        settings,
        new_drift[1] if new_drift else None,
        new_performance[1] if new_performance else None,
    )
    if not decision.retrain:
        return dg.SkipReason(decision.reason)
    source = new_performance if decision.trigger != "drift" else new_drift
    assert source is not None
    return dg.RunRequest(
        run_key=f"{decision.trigger}-{source[0]}",
        tags={TRIGGER_TAG: decision.trigger, REASON_TAG: decision.reason},
    )
