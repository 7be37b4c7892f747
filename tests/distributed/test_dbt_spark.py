"""The dbt project on Apache Spark: the same build on a local PySpark (dbt-spark, session method).

The raw tables of the DuckDB fixture warehouse (tests/data conftest `warehouse`) are written as
Parquet (ml.core.spark.export_schema_parquet) and registered as Spark's raw.* tables, then
`dbt build --target spark` runs every model, data test and unit test there. What Spark built is
exported as Parquet (macro export_parquet) and every table and view must equal the DuckDB build
row for row, with the same column types (up to a float tolerance). The PII salt reaches Spark only
through the environment (CRM_PII_SALT); the e-mail and phone hashes must still equal DuckDB's and
the salt must appear nowhere in dbt's target folder, logs or output. Needs Java 17 (`make java`).
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pytest

from ml.core.privacy import pii_salt
from ml.core.spark import (
    SparkDbtError,
    export_schema_parquet,
    export_spark_parquet,
    register_raw_parquet,
    run_dbt_on_spark,
    spark_environment,
)
from tests.dbt_parity import (
    LAYERS,
    Relations,
    assert_relations_equal,
    assert_same_nodes,
    duckdb_relations,
)

# The column types that must agree between the engines, by family (Spark's as DuckDB reads its
# Parquet: string -> VARCHAR, int -> INTEGER, ...).
TYPE_FAMILIES = {
    "varchar": "text",
    "integer": "integer",
    "bigint": "integer",
    "hugeint": "integer",
    "ubigint": "integer",
    "double": "float",
    "boolean": "boolean",
    "date": "date",
    "timestamp": "timestamp",
}

Build = Any


@dataclass(frozen=True)
class SparkBuild:
    """The dbt build on Spark, where it happened and its Parquet export."""

    work_dir: Path
    export_dir: Path
    salt: str
    build: Build


def _family(data_type: str) -> str:
    base = re.sub(r"\(.*\)", "", data_type.lower()).strip()
    return TYPE_FAMILIES.get(base, base)


@pytest.fixture(scope="module")
def spark_build(
    warehouse: Path, dbt: Callable[..., Build], tmp_path_factory: pytest.TempPathFactory
) -> SparkBuild:
    if shutil.which("java") is None:
        pytest.fail("Java is not installed: run `make java` (openjdk-17-jre-headless)")
    root = tmp_path_factory.mktemp("dbt_spark")
    raw_dir, export_dir, work_dir = root / "raw", root / "export", root / "dbt"
    with duckdb.connect(str(warehouse), read_only=True) as source:
        export_schema_parquet(source, "raw", raw_dir)
    # The DuckDB build hashed with this salt (the plugin reads it from the warehouse's folder).
    salt = pii_salt(warehouse.parent)
    env = spark_environment(root / "spark", salt)
    register_raw_parquet(raw_dir, env, root / "register")
    with pytest.MonkeyPatch.context() as patch:
        for name in ("CRM_SPARK_HOME", "CRM_PII_SALT"):
            patch.setenv(name, env[name])
        build = dbt("build", warehouse, work_dir, extra_args=("--target", "spark"))
    if build.returncode == 0:
        export_spark_parquet(LAYERS, export_dir, env, root / "export_run")
    return SparkBuild(work_dir, export_dir, salt, build)


def _spark_relations(export_dir: Path) -> Relations:
    relations = {}
    with duckdb.connect() as con:
        for folder in sorted(export_dir.iterdir()):
            if not folder.is_dir():
                continue
            files = f"{folder}/*.parquet"
            described = con.execute("describe select * from read_parquet(?)", [files]).fetchall()
            rows = con.execute("select * from read_parquet(?)", [files]).fetchall()
            relations[folder.name] = ([(row[0], row[1]) for row in described], rows)
    return relations


def test_dbt_build_on_spark_runs_every_model_data_test_and_unit_test(
    spark_build: SparkBuild, dbt_build_fixtures: tuple[Path, Build]
) -> None:
    _, duckdb_build = dbt_build_fixtures
    assert_same_nodes(spark_build.build, duckdb_build, twin_suffix="spark")


def test_spark_build_equals_the_duckdb_build_row_for_row(
    spark_build: SparkBuild, warehouse: Path
) -> None:
    assert spark_build.build.returncode == 0, spark_build.build.output[-5000:]
    assert_relations_equal(
        duckdb_relations(warehouse), _spark_relations(spark_build.export_dir), _family
    )


def test_hashes_match_duckdb_and_the_salt_stays_out_of_sql_and_logs(
    spark_build: SparkBuild, warehouse: Path
) -> None:
    assert spark_build.build.returncode == 0, spark_build.build.output[-5000:]
    statement = "select customer_record_id, email_hash, phone_hash from {}"
    with duckdb.connect() as con:
        spark_hashes = con.execute(
            statement.format("read_parquet(?)"),
            [f"{spark_build.export_dir}/staging.base_crm__customers/*.parquet"],
        ).fetchall()
    with duckdb.connect(str(warehouse), read_only=True) as con:
        duckdb_hashes = con.execute(statement.format("staging.base_crm__customers")).fetchall()
    assert sorted(spark_hashes, key=str) == sorted(duckdb_hashes, key=str)
    assert any(email is not None for _, email, _ in spark_hashes)
    # The salt is in no compiled SQL, manifest, run result or log line, nor in dbt's output.
    assert spark_build.salt not in spark_build.build.output
    leaks = [
        str(path)
        for path in spark_build.work_dir.rglob("*")
        if path.is_file() and spark_build.salt.encode() in path.read_bytes()
    ]
    assert leaks == []
    compiled = next(
        spark_build.work_dir.rglob("compiled/*/models/staging/base/base_crm__customers.sql")
    )
    assert "${env:CRM_PII_SALT}" in compiled.read_text()


def test_a_spark_session_without_the_salt_fails_instead_of_hashing_unsalted(
    spark_build: SparkBuild, tmp_path: Path
) -> None:
    assert spark_build.build.returncode == 0, spark_build.build.output[-5000:]
    env = spark_environment(spark_build.work_dir.parent / "spark", spark_build.salt)
    del env["CRM_PII_SALT"]
    with pytest.raises(SparkDbtError, match="the PII salt is not set"):
        run_dbt_on_spark(
            ["show", "--inline", "select {{ keyed_hash(\"'someone@example.com'\") }} as hashed"],
            env,
            tmp_path,
        )
