"""The whole pipeline on the Spark engine (CRM_ENGINE=spark), against the DuckDB engine.

The retraining job runs twice on the same small synthetic CRM (tests/orchestration/small_crm.py),
each in its own CRM_HOME: once with ``CRM_ENGINE=spark`` (raw tables to Spark as Parquet, the dbt
build on a local PySpark, the marts back as Parquet views of the warehouse), publishing to a fresh
PostgreSQL database, and once with the default DuckDB engine. Both train churn on a sample
(``CRM_TRAINING_MAX_ROWS`` below the labelled rows), so the sample is exercised on both engines.

What must hold: the Spark run materializes every asset the DuckDB run does and its checks agree;
the warehouse's marts are views over the Parquet Spark wrote (so training and scoring read Spark's
output) and hold the DuckDB build's rows; the churn sample is the same; and every published
serving table, in DuckDB, in its Parquet export and (Spark run) in PostgreSQL, equals the DuckDB
run's row for row, probabilities to 1e-9; and the people erased in the run are in no Parquet file
under CRM_HOME/spark. Needs Java 17 (`make java`); about 6-7 minutes on 2
shared cores, most of it the Spark build.
"""

from __future__ import annotations

import contextlib
import json
import math
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import mlflow
import pandas as pd
import psycopg2
import pytest

from ml.core.settings import Settings
from ml.models.churn.data import SAMPLE_RULE
from ml.serving.publishing import newest_snapshot_sql, published_tables
from orchestration.definitions import defs as load_defs
from tests.orchestration.small_crm import set_small_crm
from tests.orchestration.test_pipeline import _erased_people, _tables_holding
from tests.postgres_server import fresh_database, unreachable_reason

# Below the small CRM's 12,250 labelled rows of the churn split (1,623 customers): a sample.
TRAINING_MAX_ROWS = 8000
# Columns that say when or in which run a row was written, not what it holds.
RUN_COLUMNS = {"scored_at", "published_at", "publish_id"}
TOLERANCE = 1e-9


@dataclass(frozen=True)
class EngineRun:
    settings: Settings
    instance: dg.DagsterInstance
    result: dg.ExecuteInProcessResult


@dataclass(frozen=True)
class Runs:
    spark: EngineRun
    duckdb: EngineRun
    postgres_skip_reason: str | None


def _run(
    stack: contextlib.ExitStack, home: Path, engine: str, postgres_url: str | None
) -> EngineRun:
    instance = stack.enter_context(dg.instance_for_test())
    with pytest.MonkeyPatch.context() as env:
        set_small_crm(env, home)
        env.setenv("CRM_ENGINE", engine)
        env.setenv("CRM_TRAINING_MAX_ROWS", str(TRAINING_MAX_ROWS))
        if postgres_url is not None:
            env.setenv("CRM_POSTGRES_URL", postgres_url)
        job = load_defs().resolve_job_def("retraining_job")
        result = job.execute_in_process(instance=instance, raise_on_error=False)
        settings = Settings()
    return EngineRun(settings, instance, result)


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runs]:
    if shutil.which("java") is None:
        pytest.fail("Java is not installed: run `make java` (openjdk-17-jre-headless)")
    skip_reason = unreachable_reason()
    with contextlib.ExitStack() as stack:
        url = None
        if skip_reason is None:
            url = stack.enter_context(fresh_database("crm_spark_pipeline"))
        spark = _run(stack, tmp_path_factory.mktemp("crm_spark"), "spark", url)
        duck = _run(stack, tmp_path_factory.mktemp("crm_duckdb"), "duckdb", None)
        yield Runs(spark, duck, skip_reason)


def _warehouse(run: EngineRun) -> duckdb.DuckDBPyConnection:
    return duckdb.connect(str(run.settings.warehouse_path), read_only=True)


def _materialized(run: EngineRun) -> set[dg.AssetKey]:
    return {m.asset_key for m in run.result.get_asset_materialization_events()}


def _check_results(run: EngineRun) -> set[tuple[dg.AssetKey, str, bool]]:
    return {(c.asset_key, c.check_name, c.passed) for c in run.result.get_asset_check_evaluations()}


def _rows(frame: pd.DataFrame, keys: list[str]) -> list[tuple[object, ...]]:
    """Rows sorted by every column but the floats (whose last bits may differ), as tuples."""
    return list(frame.sort_values(keys, kind="stable").itertuples(index=False, name=None))


def _same(left: object, right: object) -> bool:
    if isinstance(left, float) and isinstance(right, float):
        return (math.isnan(left) and math.isnan(right)) or math.isclose(
            left, right, rel_tol=0, abs_tol=TOLERANCE
        )
    if pd.isna(left) and pd.isna(right):  # type: ignore[call-overload]
        return True
    return left == right


def assert_frames_equal(spark: pd.DataFrame, duck: pd.DataFrame, what: str) -> None:
    assert list(spark.columns) == list(duck.columns), what
    assert len(spark) == len(duck) > 0, what
    keys = [c for c in duck.columns if duck[c].dtype != "float64"]
    for left, right in zip(_rows(spark, keys), _rows(duck, keys), strict=True):
        differs = [
            (column, a, b)
            for column, a, b in zip(duck.columns, left, right, strict=True)
            if not _same(a, b)
        ]
        assert not differs, f"{what}: a row differs: {differs}"


def _serving(con: duckdb.DuckDBPyConnection, sql: str) -> pd.DataFrame:
    frame = con.sql(sql).df()
    return frame.drop(columns=[c for c in frame.columns if c in RUN_COLUMNS])


def test_both_runs_materialize_every_asset_and_agree_on_every_check(runs: Runs) -> None:
    assert runs.spark.result.success and runs.duckdb.result.success
    skipped = [
        e.step_key
        for run in (runs.spark, runs.duckdb)
        for e in run.result.all_events
        if e.event_type == dg.DagsterEventType.STEP_SKIPPED
    ]
    assert skipped == []
    materialized = _materialized(runs.spark)
    assert materialized == _materialized(runs.duckdb)
    for key in (
        ["marts", "customer_features"],
        ["models", "churn"],
        ["serving", "customer_scores"],
        ["publish", "postgres"],
    ):
        assert dg.AssetKey(key) in materialized
    checks = _check_results(runs.spark)
    assert len(checks) > 100 and checks == _check_results(runs.duckdb)
    dbt_tests = [c for c in checks if c[0].path[0] in ("staging", "intermediate", "marts")]
    assert len(dbt_tests) > 100 and all(passed for _, _, passed in dbt_tests)


def test_the_warehouse_marts_are_views_over_the_parquet_spark_wrote(runs: Runs) -> None:
    spark_marts = runs.spark.settings.spark_home / "marts"
    count = "select count(*) from marts.{}"
    with _warehouse(runs.duckdb) as con:
        names = [
            name
            for (name,) in con.execute(
                "select table_name from information_schema.tables where table_schema = 'marts'"
            ).fetchall()
        ]
        duckdb_marts = {name: con.execute(count.format(name)).fetchall()[0][0] for name in names}
    with _warehouse(runs.spark) as con:
        relations = con.execute(
            "select table_name, table_type from information_schema.tables "
            "where table_schema = 'marts'"
        ).fetchall()
        views = dict(
            con.execute(
                "select view_name, sql from duckdb_views() where schema_name = 'marts'"
            ).fetchall()
        )
        counts = {name: con.execute(count.format(name)).fetchall()[0][0] for name in views}
    assert set(views) == set(duckdb_marts) and len(views) >= 10
    assert {kind for _, kind in relations} == {"VIEW"}
    for name, sql in views.items():
        folder = spark_marts / f"marts.{name}"
        assert f"read_parquet('{folder}/*.parquet')" in sql, sql
        assert any(folder.glob("*.parquet")), folder
    # Spark's marts hold the DuckDB build's rows (the dbt parity test compares every value).
    assert counts == duckdb_marts


def test_training_read_the_spark_marts_and_the_same_stated_sample(runs: Runs) -> None:
    key = dg.AssetKey(["models", "churn"])
    metadata = {}
    for name, run in (("spark", runs.spark), ("duckdb", runs.duckdb)):
        event = run.instance.get_latest_materialization_event(key)
        assert event is not None and event.asset_materialization is not None
        metadata[name] = {
            k: v.value
            for k, v in event.asset_materialization.metadata.items()
            if k.startswith("training_")
        }
    sample = metadata["spark"]
    assert sample == metadata["duckdb"]
    assert sample["training_sample"] == SAMPLE_RULE
    assert sample["training_max_rows"] == TRAINING_MAX_ROWS
    assert 0 < sample["training_rows_kept"] <= TRAINING_MAX_ROWS < sample["training_rows_available"]
    assert 0 < sample["training_sample_fraction"] < 1
    uri = runs.spark.settings.mlflow_tracking_uri
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    champion = client.get_model_version_by_alias("churn", "champion")
    params = client.get_run(champion.run_id).data.params
    assert params["training_rows_kept"] == str(sample["training_rows_kept"])
    assert params["training_sample"] == SAMPLE_RULE


def test_every_published_table_equals_the_duckdb_runs(runs: Runs) -> None:
    with _warehouse(runs.spark) as spark, _warehouse(runs.duckdb) as duck:
        tables = published_tables(duck)
        assert [t.name for t in published_tables(spark)] == [t.name for t in tables]
        assert len(tables) >= 9
        for table in tables:
            sql = f"select * from serving.{table.name}"
            assert_frames_equal(_serving(spark, sql), _serving(duck, sql), table.name)
            export = runs.spark.settings.exports_dir / f"serving.{table.name}.parquet"
            assert_frames_equal(
                _serving(spark, f"select * from read_parquet('{export}')"),
                _serving(duck, sql),
                f"{export.name} of the Spark run",
            )
        scores = _serving(spark, "select * from serving.customer_scores")
    assert len(scores) > 500 and scores["churn_probability"].between(0, 1).all()
    assert scores["churn_probability"].nunique() > 100
    assert {d["feature"] for row in scores["churn_top_drivers"] for d in json.loads(row)}


def test_the_spark_run_published_its_scores_to_postgres(runs: Runs) -> None:
    if runs.postgres_skip_reason:
        pytest.skip(runs.postgres_skip_reason)
    target = runs.spark.settings.postgres_target()
    assert target is not None
    with _warehouse(runs.spark) as con:
        tables = published_tables(con)
        expected = {t.name: _serving(con, newest_snapshot_sql(t)) for t in tables}
    pg = psycopg2.connect(target.url)
    try:
        for table in tables:
            with pg.cursor() as cur:
                cur.execute(f'select * from {target.schema}."{table.name}"')
                columns = [d[0] for d in cur.description]
                published = pd.DataFrame(cur.fetchall(), columns=columns)
            published = published.drop(columns=[c for c in columns if c in RUN_COLUMNS])
            frame = expected[table.name]
            # psycopg2 gives dates as datetime.date objects, DuckDB as datetime64.
            published = published.astype(frame.dtypes.to_dict())
            assert_frames_equal(published, frame, f"PostgreSQL {table.name}")
    finally:
        pg.close()


def test_erased_people_are_in_no_file_spark_read_or_wrote(runs: Runs) -> None:
    settings = runs.spark.settings
    identifiers, personal = _erased_people(settings)
    assert len(identifiers) >= 6 and personal
    with _warehouse(runs.spark) as con:
        assert _tables_holding(con, identifiers | personal) == []
    # The raw tables written for Spark, Spark's own tables of every layer, the exported marts.
    files = sorted(settings.spark_home.rglob("*.parquet"))
    layers = {p.relative_to(settings.spark_home).parts[0] for p in files}
    assert {"raw", "warehouse", "marts"} <= layers
    with duckdb.connect() as con:
        for path in files:
            con.execute(f"create or replace view f as select * from read_parquet('{path}')")
            assert _tables_holding(con, identifiers | personal) == [], path
