"""dbt (dbt-duckdb): staging, identity resolution, marts and point-in-time features.

Every dbt model is an asset and every dbt test an asset check; ``dbt build`` skips the models
below a failing test, so bad data does not flow down. With ``CRM_ENGINE=spark`` the same project
builds on Spark (docs/spark.md) and the warehouse's marts become views of what Spark built.
"""

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from ml.core.settings import Settings
from ml.core.spark import (
    attach_spark_marts,
    build_environment,
    export_schema_parquet,
    export_spark_parquet,
    register_raw_parquet,
    spark_environment,
)
from ml.core.warehouse import connect
from orchestration.resources import CrmSettings, dbt_project


@contextlib.contextmanager
def _environment(variables: Mapping[str, str]) -> Iterator[None]:
    # DbtCliResource.cli starts dbt with a copy of os.environ and takes no env of its own.
    saved = {name: os.environ.get(name) for name in variables}
    os.environ.update(variables)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value


def _build_on_spark(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, settings: Settings, refresh: list[str]
) -> Iterator[Any]:
    """Raw tables to Spark as Parquet, dbt build on the spark target, its marts back as Parquet
    views of the warehouse. A failed build raises before the views change: the marts of the
    last good build stay."""
    spark_home = settings.spark_home
    env = spark_environment(spark_home, settings.salt(), settings.threads)
    with connect(settings.warehouse_path, read_only=True) as con:
        rows = export_schema_parquet(con, "raw", spark_home / "raw")
    context.log.info(f"raw tables written as Parquet for Spark: {rows}")
    register_raw_parquet(spark_home / "raw", env, spark_home / "operations")
    with _environment(build_environment(spark_home, settings.salt(), settings.threads)):
        invocation = dbt.cli(
            ["build", "--target", "spark", *refresh],
            context=context,
            target_path=spark_home / "dbt" / "target",
        )
    yield from invocation.stream()
    export_spark_parquet(["marts"], spark_home / "marts", env, spark_home / "operations")
    with connect(settings.warehouse_path) as con:
        attached = attach_spark_marts(con, spark_home / "marts")
    context.log.info(f"marts built by Spark, read from {spark_home / 'marts'}: {attached}")


@dbt_assets(manifest=dbt_project.manifest_path, project=dbt_project, name="crm_dbt_models")
def crm_dbt_models(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, crm: CrmSettings
) -> Iterator[Any]:
    settings = crm.get()
    # dbt hashes --vars and the rendered profile and re-parses the whole project when either
    # changes, so both hold only what is fixed for a state folder: never a date or a run id.
    dbt_vars = {"warehouse_path": str(settings.warehouse_path)}
    # One target folder per state folder instead of dagster-dbt's new one per invocation: dbt
    # keeps partial_parse.msgpack there, so the next run re-parses only the files that changed
    # (docs/operations.md, "Parsing"). Runs that write the warehouse are queued one at a time,
    # so two builds do not share it at once.
    # The models keyed by time are incremental (docs/operations.md, "Incremental runs"); a full
    # refresh (crm-signals run --full-refresh, CRM_FULL_REFRESH) rebuilds them from scratch.
    refresh = ["--full-refresh"] if settings.full_refresh else []
    if settings.engine == "spark":
        yield from _build_on_spark(context, dbt, settings, refresh)
        return
    invocation = dbt.cli(
        ["build", "--vars", json.dumps(dbt_vars), *refresh],
        context=context,
        target_path=settings.dbt_target_dir,
    )
    yield from invocation.stream()
