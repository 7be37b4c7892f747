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
