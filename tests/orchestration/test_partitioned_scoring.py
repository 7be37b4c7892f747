"""Scoring by customer bucket (a partitioned backfill) gives the table unpartitioned scoring gives."""

from __future__ import annotations

import shutil

import dagster as dg
import duckdb
import pandas as pd

from ml.core.settings import Settings
from ml.data.features import SCORING_BUCKETS
from ml.serving.partitioning import bucket_file, bucket_keys
from orchestration.defs.churn.assets import customer_scores
from orchestration.resources import CrmSettings
from tests.orchestration.small_crm import materialize_in_subprocess, set_small_crm

NEWEST_SCORES = (
    "select * exclude (scored_at) from serving.customer_scores "
    "where as_of_date = (select max(as_of_date) from serving.customer_scores) order by customer_id"
)
FROM_BUCKETS = {"ops": {"serving__customer_scores": {"config": {"from_buckets": True}}}}


def _newest(settings: Settings) -> pd.DataFrame:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        return con.execute(NEWEST_SCORES).df()


def test_bucketed_scoring_publishes_the_same_table_as_unpartitioned_scoring(
    pipeline_run, tmp_path, monkeypatch
) -> None:
    # A copy of the run's state folder: the other tests keep the run's own tables.
    home = tmp_path / "crm_home"
    shutil.copytree(pipeline_run.settings.home, home)
    set_small_crm(monkeypatch, home)
    settings = Settings()
    unpartitioned = _newest(settings)
    assert len(unpartitioned) > 500

    # The backfill: one run per bucket, as the run queue launches them. The first two run at
    # the same time in two processes (both read the warehouse read-only); the rest in-process.
    parallel = [
        materialize_in_subprocess(
            home, "scoring/churn_buckets", "--partition", key, instance=f"dagster-{key}"
        )
        for key in bucket_keys()[:2]
    ]
    for process in parallel:
        output = process.communicate(timeout=300)[0]
        assert process.returncode == 0, output[-3000:]
    job = pipeline_run.defs.resolve_job_def("churn_bucket_scoring_job")
    rows = {}
    for key in bucket_keys()[2:]:
        result = job.execute_in_process(partition_key=key, instance=pipeline_run.instance)
        assert result.success
        (materialization,) = result.asset_materializations_for_node("scoring__churn_buckets")
        rows[key] = materialization.metadata["dagster/row_count"].value
        assert materialization.metadata["shap_mode"].value == settings.shap_mode == "regular"
    for bucket in (0, 1):
        rows[f"{bucket:02d}"] = len(
            pd.read_parquet(bucket_file(settings.bucket_scores_dir, bucket))
        )
    assert sum(rows.values()) == len(unpartitioned)
    assert min(rows.values()) > 0.5 * len(unpartitioned) / SCORING_BUCKETS  # the hash spreads

    # One bucket missing: publishing refuses and the table stays as it was.
    missing = bucket_file(settings.bucket_scores_dir, 3)
    held = missing.with_suffix(".held")
    missing.rename(held)
    failed = dg.materialize(
        [customer_scores],
        run_config=FROM_BUCKETS,
        resources={"crm": CrmSettings()},
        instance=pipeline_run.instance,
        raise_on_error=False,
    )
    assert not failed.success
    (failure,) = [e for e in failed.all_events if e.event_type_value == "STEP_FAILURE"]
    assert "bucket scores missing for buckets [3]" in str(failure.event_specific_data.error)
    held.rename(missing)
    pd.testing.assert_frame_equal(_newest(settings), unpartitioned)

    published = dg.materialize(
        [customer_scores],
        run_config=FROM_BUCKETS,
        resources={"crm": CrmSettings()},
        instance=pipeline_run.instance,
    )
    assert published.success
    (materialization,) = published.asset_materializations_for_node("serving__customer_scores")
    assert materialization.metadata["shap_mode"].value == "regular"  # which SHAP made the drivers
    bucketed = _newest(settings)
    # The same table, drivers and reasons included: SHAP values no longer depend on the other rows
    # a bucket explains with them (ml.modelling.explanations.batch_independent; before, with
    # catboost/catboost#1956, 8% of rows had other drivers or another order).
    pd.testing.assert_frame_equal(bucketed, unpartitioned)
