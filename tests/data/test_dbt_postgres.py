"""The dbt project on its second adapter: the same build on the local PostgreSQL server.

The raw tables of the DuckDB fixture warehouse (conftest `warehouse`) are copied into a fresh
PostgreSQL database (ml.serving.publishing.copy_schema), `dbt build --target postgres` runs every
model, data test and unit test there, and every table and view it builds must equal the DuckDB
build row for row, with the same column types (up to a float tolerance). The PII salt reaches
PostgreSQL only through PGOPTIONS; the e-mail and phone hashes must still equal DuckDB's, and the
salt must appear nowhere in dbt's target folder, logs or output. Skipped only when no PostgreSQL
server answers at CRM_PG_HOST:CRM_PG_PORT (default 127.0.0.1:5432).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import psycopg2
import pytest

from ml.core.privacy import pii_salt, postgres_salt_options
from ml.serving.publishing import copy_schema
from tests.dbt_parity import (
    Relations,
    assert_relations_equal,
    assert_same_nodes,
    duckdb_relations,
)

HOST = os.environ.get("CRM_PG_HOST", "127.0.0.1")
PORT = int(os.environ.get("CRM_PG_PORT", "5432"))
USER = os.environ.get("CRM_PG_USER", "postgres")
PASSWORD = os.environ.get("DBT_ENV_SECRET_PG_PASSWORD", "")
# The column types that must agree between the adapters, by family.
TYPE_FAMILIES = {
    "varchar": "text",
    "character varying": "text",
    "text": "text",
    "integer": "integer",
    "bigint": "integer",
    "smallint": "integer",
    "hugeint": "integer",
    "ubigint": "integer",
    "double": "float",
    "double precision": "float",
    "boolean": "boolean",
    "date": "date",
    "timestamp": "timestamp",
    "timestamp without time zone": "timestamp",
}

# The conftest fixtures hand out DbtBuild results and the runner; tests never import conftest.
Build = Any


@dataclass(frozen=True)
class PostgresBuild:
    """The dbt build on PostgreSQL and where it happened."""

    dbname: str
    work_dir: Path
    salt: str
    build: Build


def _connect(dbname: str) -> Any:
    return psycopg2.connect(
        host=HOST, port=PORT, user=USER, password=PASSWORD, dbname=dbname, connect_timeout=5
    )


@pytest.fixture(scope="module")
def postgres_database() -> Iterator[str]:
    """A new, uniquely named database on the local server, dropped afterwards."""
    try:
        admin = _connect("postgres")
    except psycopg2.OperationalError as error:
        pytest.skip(f"no PostgreSQL server reachable at {HOST}:{PORT} as {USER}: {error}")
    admin.autocommit = True
    dbname = f"crm_dbt_test_{uuid.uuid4().hex[:12]}"
    with admin.cursor() as cursor:
        cursor.execute(f"create database \"{dbname}\" encoding 'UTF8' template template0")
    try:
        yield dbname
    finally:
        with admin.cursor() as cursor:
            cursor.execute(f'drop database if exists "{dbname}" with (force)')
        admin.close()


@pytest.fixture(scope="module")
def postgres_build(
    warehouse: Path,
    postgres_database: str,
    dbt: Callable[..., Build],
    tmp_path_factory: pytest.TempPathFactory,
) -> PostgresBuild:
    """The raw tables of the DuckDB fixture warehouse copied to PostgreSQL, then dbt build there."""
    with duckdb.connect(str(warehouse), read_only=True) as source:
        target = _connect(postgres_database)
        try:
            copy_schema(source, target, "raw", tmp_path_factory.mktemp("copy"))
        finally:
            target.close()
    # The DuckDB build hashed with this salt (the plugin reads it from the warehouse's folder).
    salt = pii_salt(warehouse.parent)
    work_dir = tmp_path_factory.mktemp("dbt_postgres")
    with pytest.MonkeyPatch.context() as env:
        env.setenv("CRM_PG_HOST", HOST)
        env.setenv("CRM_PG_PORT", str(PORT))
        env.setenv("CRM_PG_USER", USER)
        env.setenv("CRM_PG_DBNAME", postgres_database)
        env.setenv("PGOPTIONS", postgres_salt_options(salt))
        build = dbt("build", warehouse, work_dir, extra_args=("--target", "postgres"))
    return PostgresBuild(postgres_database, work_dir, salt, build)


def _postgres_relations(dbname: str) -> Relations:
    relations = {}
    con = _connect(dbname)
    try:
        with con.cursor() as cursor:
            cursor.execute(
                "select table_schema, table_name from information_schema.tables "
                "where table_schema in ('staging', 'intermediate', 'marts') order by 1, 2"
            )
            for schema, table in cursor.fetchall():
                cursor.execute(
                    "select column_name, data_type from information_schema.columns "
                    "where table_schema = %s and table_name = %s order by ordinal_position",
                    (schema, table),
                )
                columns = cursor.fetchall()
                cursor.execute(f'select * from "{schema}"."{table}"')
                relations[f"{schema}.{table}"] = (columns, cursor.fetchall())
    finally:
        con.close()
    return relations


def test_dbt_build_on_postgres_runs_every_model_data_test_and_unit_test(
    postgres_build: PostgresBuild, dbt_build_fixtures: tuple[Path, Build]
) -> None:
    _, duckdb_build = dbt_build_fixtures
    assert_same_nodes(postgres_build.build, duckdb_build, twin_suffix="postgres")


def test_postgres_build_equals_the_duckdb_build_row_for_row(
    postgres_build: PostgresBuild, warehouse: Path
) -> None:
    assert postgres_build.build.returncode == 0, postgres_build.build.output[-5000:]
    assert_relations_equal(
        duckdb_relations(warehouse),
        _postgres_relations(postgres_build.dbname),
        lambda data_type: TYPE_FAMILIES.get(data_type, data_type),
    )


def _compiled_base_customers(work_dir: Path) -> Path:
    """The compiled model itself; a unit test that mocks it compiles a fixture of the same name
    under its yml (``_intermediate__models.yml/base_crm__customers.sql``)."""
    return next(work_dir.rglob("compiled/*/models/staging/base/base_crm__customers.sql"))


def test_hashes_match_duckdb_and_the_salt_stays_out_of_sql_and_logs(
    postgres_build: PostgresBuild, query: Callable[[str], list[tuple]]
) -> None:
    assert postgres_build.build.returncode == 0, postgres_build.build.output[-5000:]
    con = _connect(postgres_build.dbname)
    try:
        with con.cursor() as cursor:
            cursor.execute(
                "select customer_record_id, email_hash, phone_hash from staging.base_crm__customers"
            )
            postgres_hashes = sorted(cursor.fetchall(), key=str)
    finally:
        con.close()
    duckdb_hashes = sorted(
        query("select customer_record_id, email_hash, phone_hash from staging.base_crm__customers"),
        key=str,
    )
    assert postgres_hashes == duckdb_hashes
    assert any(email is not None for _, email, _ in postgres_hashes)
    # The salt is in no compiled SQL, manifest, run result or log line, nor in dbt's output.
    assert postgres_build.salt not in postgres_build.build.output
    leaks = [
        str(path)
        for path in postgres_build.work_dir.rglob("*")
        if path.is_file() and postgres_build.salt.encode() in path.read_bytes()
    ]
    assert leaks == []
    compiled = _compiled_base_customers(postgres_build.work_dir)
    assert "current_setting('crm.pii_salt')" in compiled.read_text()


def test_compiled_sql_without_the_salt_fails_instead_of_hashing_unsalted(
    postgres_build: PostgresBuild, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert postgres_build.build.returncode == 0, postgres_build.build.output[-5000:]
    compiled = _compiled_base_customers(postgres_build.work_dir)
    monkeypatch.delenv("PGOPTIONS", raising=False)
    con = _connect(postgres_build.dbname)  # a session without the salt
    try:
        with con.cursor() as cursor, pytest.raises(psycopg2.Error, match=r"crm\.pii_salt"):
            cursor.execute(compiled.read_text())
    finally:
        con.close()
