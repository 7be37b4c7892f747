"""Faults: a run killed mid-scoring, a rerun of the same day, MLflow or PostgreSQL down.

Each test works on a copy of the small-CRM run's state folder, so the run's own tables stay as
the other tests expect them.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator

import dagster as dg
import duckdb
import mlflow
import pandas as pd
import psycopg2
import pytest

from ml.core.settings import Settings
from orchestration.defs.churn.assets import customer_scores
from orchestration.defs.publish.assets import postgres_tables
from orchestration.resources import CrmSettings
from tests.orchestration.small_crm import materialize_in_subprocess, set_small_crm

SCORES = "select * from serving.customer_scores order by as_of_date, customer_id"


@pytest.fixture(autouse=True)
def _restore_mlflow_uris() -> Iterator[None]:
    # Loading a model sets MLflow's process-wide URIs; a test pointing them at a dead server
    # must not leave them there for the tests that follow.
    tracking, registry = mlflow.get_tracking_uri(), mlflow.get_registry_uri()
    yield
    mlflow.set_tracking_uri(tracking)
    mlflow.set_registry_uri(registry)


def _table(settings: Settings, sql: str = SCORES) -> pd.DataFrame:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        return con.execute(sql).df()


def _failures(result: dg.ExecuteInProcessResult) -> dict[str, str]:
    return {
        str(e.step_key): str(e.event_specific_data.error)  # type: ignore[union-attr]
        for e in result.all_events
        if e.event_type_value == "STEP_FAILURE"
    }


def test_a_run_killed_mid_scoring_leaves_the_previous_scores_and_a_rerun_completes(
    home: Settings,
) -> None:
    before = _table(home)
    export = home.exports_dir / "serving.customer_scores.parquet"
    export_before = export.read_bytes()
    process = materialize_in_subprocess(home.home, "serving/customer_scores")
    log = []
    assert process.stdout is not None
    deadline = time.monotonic() + 300
    for line in process.stdout:
        log.append(line)
        if "STEP_START" in line and "serving__customer_scores" in line:
            time.sleep(0.5)  # inside the step: loading the champion, scoring, explaining
            os.killpg(process.pid, signal.SIGKILL)
            break
        assert time.monotonic() < deadline, "".join(log[-20:])
    process.wait(timeout=60)
    assert process.returncode == -signal.SIGKILL, "".join(log[-20:])
    assert not any("STEP_SUCCESS" in line and "serving__customer_scores" in line for line in log)

    # The killed write never committed: the previous scores, whole, and the previous export.
    pd.testing.assert_frame_equal(_table(home), before)
    assert export.read_bytes() == export_before

    # Rerunning the same day replaces that day's rows: nothing doubled, one scoring time.
    result = dg.materialize([customer_scores], resources={"crm": CrmSettings()})
    assert result.success
    after = _table(home)
    assert len(after) == len(before)
    newest = after[after["as_of_date"] == after["as_of_date"].max()]
    assert newest["scored_at"].nunique() == 1
    assert not after.duplicated(["customer_id", "as_of_date"]).any()


def test_mlflow_down_fails_scoring_clearly_and_publishes_nothing(
    home: Settings, monkeypatch, pipeline_run
) -> None:
    before = _table(home)
    monkeypatch.setenv("CRM_MLFLOW_URI", "http://mlflow-user:mlflow-Secret-77@127.0.0.1:9")
    monkeypatch.setenv("MLFLOW_HTTP_REQUEST_MAX_RETRIES", "0")
    if pipeline_run.postgres_skip_reason is None:
        monkeypatch.setenv(
            "CRM_POSTGRES_URL", pipeline_run.settings.postgres_url.get_secret_value()
        )
    result = dg.materialize(
        [customer_scores, postgres_tables],
        resources={"crm": CrmSettings()},
        raise_on_error=False,
    )
    assert not result.success
    failures = _failures(result)
    assert list(failures) == ["serving__customer_scores"]
    message = failures["serving__customer_scores"]
    assert "MLflow registry at http://mlflow-user:***@127.0.0.1:9 is unavailable" in message
    assert "mlflow-Secret-77" not in message
    # Nothing was written: no export, no PostgreSQL publish, and the table is untouched.
    started = {str(e.step_key) for e in result.all_events if e.event_type_value == "STEP_START"}
    assert started == {"serving__customer_scores"}
    pd.testing.assert_frame_equal(_table(home), before)


def test_postgres_down_still_publishes_duckdb_and_parquet_and_reports_it(
    home: Settings, monkeypatch
) -> None:
    monkeypatch.setenv("CRM_POSTGRES_URL", "postgresql://crm:pg-Down-Secret@127.0.0.1:1/crm")
    started = time.monotonic()
    result = dg.materialize(
        [customer_scores, postgres_tables],
        resources={"crm": CrmSettings()},
        raise_on_error=False,
    )
    failures = _failures(result)
    assert list(failures) == ["publish__postgres"]
    assert (
        "cannot connect to PostgreSQL at postgresql://crm:***@127.0.0.1:1/crm"
        in (failures["publish__postgres"])
    )
    assert "pg-Down-Secret" not in failures["publish__postgres"]
    retries = [e for e in result.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]
    assert len(retries) == 2 and time.monotonic() - started < 120
    # DuckDB and the Parquet export were published before the PostgreSQL step.
    materialized = {
        e.asset_key.to_user_string()
        for e in result.all_events
        if e.event_type_value == "ASSET_MATERIALIZATION"
    }
    assert "serving/customer_scores" in materialized
    newest = _table(home, "select max(scored_at) from serving.customer_scores").iloc[0, 0]
    exported = duckdb.sql(
        f"select max(scored_at) from read_parquet('{home.exports_dir}/serving.customer_scores.parquet')"
    ).fetchall()[0][0]
    assert exported == newest.to_pydatetime()


def test_rerunning_the_publish_of_the_same_day_adds_no_history_rows(pipeline_run) -> None:
    if pipeline_run.postgres_skip_reason:
        pytest.skip(pipeline_run.postgres_skip_reason)
    target = pipeline_run.settings.postgres_target()

    def history() -> list[tuple]:
        con = psycopg2.connect(target.url)
        try:
            with con.cursor() as cur:
                cur.execute(
                    f"select score_name, as_of_date, model_version, count(*) "
                    f"from {target.schema}.score_history group by 1, 2, 3 order by 1, 2, 3"
                )
                return cur.fetchall()
        finally:
            con.close()

    before = history()
    assert before
    with pytest.MonkeyPatch.context() as env:
        set_small_crm(env, pipeline_run.settings.home)
        env.setenv("CRM_POSTGRES_URL", target.url)
        result = dg.materialize([postgres_tables], resources={"crm": CrmSettings()})
    assert result.success
    assert history() == before


def _materialized_metadata(result: dg.ExecuteInProcessResult) -> dict[str, object]:
    (event,) = result.get_asset_materialization_events()
    return {
        k: getattr(v, "value", v)
        for k, v in event.materialization.metadata.items()  # type: ignore[union-attr]
    }


def test_a_daily_rerun_rescores_only_the_customers_whose_features_changed(
    home: Settings, monkeypatch
) -> None:
    # A scoring of the unchanged features first: tests before this one may have made another
    # version champion, whose first scoring re-scores everyone.
    assert dg.materialize([customer_scores], resources={"crm": CrmSettings()}).success
    before = _table(home)
    newest = before["as_of_date"].max()
    with duckdb.connect(str(home.warehouse_path)) as con:
        # Three customers of the scored (newest) snapshot; older snapshots are not scored.
        changed = [
            row[0]
            for row in con.execute(
                "update marts.customer_features set logins_30d = logins_30d + 7 "
                "where as_of_date = $newest and customer_id in (select customer_id "
                "from marts.customer_features where as_of_date = $newest "
                "order by customer_id limit 3) returning customer_id",
                {"newest": newest},
            ).fetchall()
        ]
    assert len(changed) == 3
    result = dg.materialize([customer_scores], resources={"crm": CrmSettings()})
    assert result.success
    metadata = _materialized_metadata(result)
    assert metadata["rescored_rows"] == 3
    after = _table(home)
    today = after[after["as_of_date"] == newest].set_index("customer_id")
    old = before[before["as_of_date"] == newest].set_index("customer_id")
    moved = today["scored_at"] != old.loc[today.index, "scored_at"]
    assert sorted(today.index[moved]) == sorted(changed)
    assert metadata["kept_rows"] == len(today) - 3

    # A full refresh scores everyone, and gives the probabilities the kept rows hold.
    monkeypatch.setenv("CRM_FULL_REFRESH", "true")
    result = dg.materialize([customer_scores], resources={"crm": CrmSettings()})
    assert _materialized_metadata(result)["rescored_rows"] == len(today)
    full = _table(home)
    full = full[full["as_of_date"] == newest].set_index("customer_id")
    pd.testing.assert_series_equal(
        full["churn_probability"], today.loc[full.index, "churn_probability"]
    )
