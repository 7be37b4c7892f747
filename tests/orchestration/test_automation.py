"""The drift-triggered retraining sensor and the schedules, against a real Dagster instance."""

from __future__ import annotations

import dagster as dg
import pytest
from dagster._core.test_utils import create_run_for_test

from orchestration.definitions import defs as load_defs
from orchestration.defs.automation.sensors import REASON_TAG, TRIGGER_TAG
from orchestration.lib import keys
from orchestration.resources import CrmSettings


@pytest.fixture
def instance():
    with dg.instance_for_test() as instance:
        yield instance


def _evaluate(instance: dg.DagsterInstance, cursor: str | None = None):
    sensor = load_defs().resolve_sensor_def("drift_retraining_sensor")
    context = dg.build_sensor_context(
        instance=instance, cursor=cursor, resources={"crm": CrmSettings()}
    )
    return sensor(context), context.cursor


def _report_drift(instance: dg.DagsterInstance, share: float) -> None:
    instance.report_runless_asset_event(
        dg.AssetMaterialization(keys.CHURN_DRIFT, metadata={"drift_share": share})
    )


def test_no_drift_report_means_no_run(instance) -> None:
    result, _ = _evaluate(instance)
    assert isinstance(result, dg.SkipReason)


def test_drift_above_threshold_launches_retraining_with_reason(instance) -> None:
    _report_drift(instance, 0.5)
    result, cursor = _evaluate(instance)
    assert isinstance(result, dg.RunRequest)
    assert result.tags[TRIGGER_TAG] == "drift"
    assert "0.50" in result.tags[REASON_TAG]
    # The same report is not acted on twice.
    again, _ = _evaluate(instance, cursor)
    assert isinstance(again, dg.SkipReason)


def test_drift_below_threshold_is_skipped(instance) -> None:
    _report_drift(instance, 0.1)
    result, _ = _evaluate(instance)
    assert isinstance(result, dg.SkipReason)
    assert "0.10" in str(result.skip_message)


def test_cooldown_blocks_a_second_drift_retraining(instance) -> None:
    create_run_for_test(instance, job_name="retraining_job", tags={TRIGGER_TAG: "drift"})
    _report_drift(instance, 0.9)
    result, _ = _evaluate(instance)
    assert isinstance(result, dg.SkipReason)
    assert "cool" in str(result.skip_message).lower()


@pytest.mark.parametrize(
    ("schedule", "job"),
    [
        ("daily_scoring", "scoring_job"),
        ("weekly_retraining", "retraining_job"),
    ],
)
def test_schedules_request_their_job(instance, schedule: str, job: str) -> None:
    defs = load_defs()
    definition = defs.resolve_schedule_def(schedule)
    context = dg.build_schedule_context(instance=instance)
    data = definition.evaluate_tick(context)
    assert data.run_requests and len(data.run_requests) == 1
    assert definition.job_name == job


def _report_performance(
    instance: dg.DagsterInstance,
    estimated: float,
    realized: float | None = None,
    reference: float = 0.80,
) -> None:
    metadata = {"reference_roc_auc": reference, "estimated_roc_auc": estimated}
    if realized is not None:
        metadata["realized_roc_auc"] = realized
    instance.report_runless_asset_event(
        dg.AssetMaterialization(keys.CHURN_PERFORMANCE, metadata=metadata)
    )


def test_estimated_performance_loss_launches_retraining_named_in_the_tags(instance) -> None:
    _report_drift(instance, 0.1)
    _report_performance(instance, estimated=0.74)
    result, cursor = _evaluate(instance)
    assert isinstance(result, dg.RunRequest)
    assert result.tags[TRIGGER_TAG] == "estimated_performance"
    assert "estimated ROC AUC 0.740 < 0.770" in result.tags[REASON_TAG]
    again, _ = _evaluate(instance, cursor)
    assert isinstance(again, dg.SkipReason)


def test_realized_loss_is_named_before_the_estimated_one(instance) -> None:
    _report_performance(instance, estimated=0.74, realized=0.70)
    result, _ = _evaluate(instance)
    assert isinstance(result, dg.RunRequest)
    assert result.tags[TRIGGER_TAG] == "realized_performance"


def test_performance_within_margin_and_no_drift_is_skipped(instance) -> None:
    _report_drift(instance, 0.1)
    _report_performance(instance, estimated=0.79, realized=0.78)
    result, _ = _evaluate(instance)
    assert isinstance(result, dg.SkipReason)
    assert "within margins" in str(result.skip_message)


def test_drift_still_triggers_when_performance_holds(instance) -> None:
    _report_performance(instance, estimated=0.80)
    _report_drift(instance, 0.6)
    result, _ = _evaluate(instance)
    assert isinstance(result, dg.RunRequest)
    assert result.tags[TRIGGER_TAG] == "drift"


def test_cooldown_counts_any_trigger(instance) -> None:
    create_run_for_test(
        instance, job_name="retraining_job", tags={TRIGGER_TAG: "estimated_performance"}
    )
    _report_drift(instance, 0.9)
    result, _ = _evaluate(instance)
    assert isinstance(result, dg.SkipReason)
    assert "cool" in str(result.skip_message).lower()
