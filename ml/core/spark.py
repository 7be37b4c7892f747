"""The Spark engine's Parquet hand-offs (docs/spark.md).

Spark reads the raw tables as Parquet that DuckDB writes here (one folder per table, the layout a
Spark table's location needs), and readers without Spark read what it built as Parquet that dbt
exports (macro export_parquet). Spark itself is only ever started by dbt on the ``spark`` target
(dbt_project/profiles.yml holds its settings), through ``dbt run-operation`` and ``dbt build``:
its embedded catalog admits one process at a time, and one place keeps the settings.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import duckdb

from ml.core.warehouse import qualified, sql_literal

DBT_PROJECT_DIR = Path(__file__).resolve().parents[2] / "dbt_project"


class SparkDbtError(RuntimeError):
    """A dbt command on the spark target failed; the message ends with dbt's output."""


def export_schema_parquet(
    con: duckdb.DuckDBPyConnection, schema: str, folder: Path
) -> dict[str, int]:
    """Write every base table of a DuckDB schema to ``folder/<table>/data.parquet``.

    Each table's folder is replaced whole, so a table that lost rows loses them in Parquet too.

    Returns:
        Rows written per table.
    """
    tables = [
        name
        for (name,) in con.execute(
            "select table_name from information_schema.tables "
            "where table_schema = ? and table_type = 'BASE TABLE' order by table_name",
            [schema],
        ).fetchall()
    ]
    if not tables:
        raise ValueError(f"DuckDB schema {schema!r} has no tables to export to {folder}")
    counts = {}
    for table in tables:
        target = folder / table
        staging = folder / f".{table}.writing"
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        con.execute(
            f"copy {qualified(schema, table)} to "
            f"{sql_literal(str(staging / 'data.parquet'))} (format parquet)"
        )
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
        (counts[table],) = con.execute(  # type: ignore[misc]
            f"select count(*) from {qualified(schema, table)}"
        ).fetchone()
    return counts


def run_dbt_on_spark(
    arguments: Sequence[str],
    env: Mapping[str, str],
    work_dir: Path,
    dbt_vars: Mapping[str, object] | None = None,
) -> str:
    """Run one dbt command on the spark target; its target and log folders go to ``work_dir``.

    Args:
        arguments: The dbt command and its arguments, e.g. ``["build"]``.
        env: The whole environment of the dbt process (CRM_SPARK_HOME, CRM_PII_SALT, ...).
        work_dir: Folder for dbt's target/ and logs/.
        dbt_vars: ``--vars`` for the project.

    Returns:
        dbt's output.

    Raises:
        SparkDbtError: dbt exited with an error.
    """
    dbt = Path(sys.executable).parent / "dbt"
    command = [
        str(dbt),
        *arguments,
        "--project-dir",
        str(DBT_PROJECT_DIR),
        "--profiles-dir",
        str(DBT_PROJECT_DIR),
        "--target",
        "spark",
        "--target-path",
        str(work_dir / "target"),
        "--log-path",
        str(work_dir / "logs"),
    ]
    if dbt_vars:
        command += ["--vars", json.dumps(dict(dbt_vars))]
    process = subprocess.run(command, capture_output=True, text=True, env=dict(env), check=False)
    output = process.stdout + process.stderr
    if process.returncode != 0:
        raise SparkDbtError(
            f"dbt {' '.join(arguments)} on the spark target failed ({process.returncode}):\n"
            + output[-5000:]
        )
    return output


def register_raw_parquet(folder: Path, env: Mapping[str, str], work_dir: Path) -> None:
    """Make Spark's raw.<table> tables read the Parquet folders under ``folder``."""
    run_dbt_on_spark(
        ["run-operation", "register_raw_parquet", "--args", json.dumps({"folder": str(folder)})],
        env,
        work_dir,
    )


def export_spark_parquet(
    schemas: Sequence[str], folder: Path, env: Mapping[str, str], work_dir: Path
) -> None:
    """Write every table and view Spark holds in ``schemas`` to ``folder/<schema>.<name>/``."""
    run_dbt_on_spark(
        [
            "run-operation",
            "export_parquet",
            "--args",
            json.dumps({"schemas": list(schemas), "folder": str(folder)}),
        ],
        env,
        work_dir,
    )


def spark_environment(spark_home: Path, salt: str, threads: int = 2) -> dict[str, str]:
    """The environment of a dbt process on the spark target: this process's, plus where Spark
    keeps its warehouse and catalog, the PII salt (read by Spark, macro pii_salt) and threads."""
    return {
        **os.environ,
        **build_environment(spark_home, salt, threads),
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DO_NOT_TRACK": "1",
    }


def attach_spark_marts(con: duckdb.DuckDBPyConnection, export_dir: Path) -> list[str]:
    """Make the warehouse's marts.<name> views of the marts Spark built (``export_dir/marts.<name>``,
    macro export_parquet), replacing DuckDB's own tables or views of that name, in one transaction.

    Training, scoring and every other reader of the marts then read what Spark built, unchanged.

    Returns:
        The marts attached.

    Raises:
        ValueError: ``export_dir`` holds no marts.
    """
    folders = sorted(f for f in export_dir.glob("marts.*") if f.is_dir())
    if not folders:
        raise ValueError(f"no Spark marts exported to {export_dir} (expected marts.<name>/)")
    names = []
    con.execute("begin transaction")
    try:
        con.execute("create schema if not exists marts")
        for folder in folders:
            name = folder.name.removeprefix("marts.")
            relation = qualified("marts", name)
            kind = con.execute(
                "select table_type from information_schema.tables "
                "where table_schema = 'marts' and table_name = ?",
                [name],
            ).fetchone()
            if kind is not None:
                con.execute(f"drop {'view' if kind[0] == 'VIEW' else 'table'} {relation}")
            files = sql_literal(str(folder / "*.parquet"))
            con.execute(f"create view {relation} as select * from read_parquet({files})")
            names.append(name)
        con.execute("commit")
    except Exception:
        con.execute("rollback")
        raise
    return names


def spark_parquet_folders(spark_home: Path) -> dict[str, Path]:
    """Every folder under ``spark_home`` that holds Parquet files, by its path below it.

    The raw tables written for Spark, Spark's own tables (every dbt layer) and the marts it
    exported: the stores of a person's rows that the Spark engine adds, for erasure
    (``ml.data.erasure.erase_from_parquet_files``). None when Spark never ran here.
    """
    if not spark_home.is_dir():
        return {}
    folders = sorted({path.parent for path in spark_home.rglob("*.parquet")})
    return {f"spark/{folder.relative_to(spark_home)}": folder for folder in folders}


def build_environment(spark_home: Path, salt: str, threads: int) -> dict[str, str]:
    """Only the variables a dbt process on the spark target needs beyond its parent's."""
    return {
        "CRM_SPARK_HOME": str(spark_home.resolve()),
        "CRM_PII_SALT": salt,
        "CRM_THREADS": str(threads),
    }
