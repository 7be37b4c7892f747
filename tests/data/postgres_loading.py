"""Copy DuckDB tables into PostgreSQL, for the dbt build on the `postgres` target.

The dbt project reads the raw tables that ingest wrote into DuckDB (schema ``raw``). To run the
same project on PostgreSQL, the test copies those tables as they are: one ``create table`` with
the mapped column types, then one ``COPY ... FROM STDIN`` per table of the CSV that DuckDB writes
(set-based on both sides, no Python loop over rows). Also the libpq options that hand the PII
salt to every dbt session without writing it into SQL.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Any

import duckdb

# DuckDB type -> PostgreSQL type, for the types of the raw contract (ml/contract.py DuckType).
POSTGRES_TYPES: dict[str, str] = {
    "VARCHAR": "varchar",
    "INTEGER": "integer",
    "BIGINT": "bigint",
    "DOUBLE": "double precision",
    "BOOLEAN": "boolean",
    "DATE": "date",
    "TIMESTAMP": "timestamp",
}

# The PostgreSQL setting the dbt macro `pii_salt` reads (dbt_project/macros/dialect.sql).
SALT_SETTING = "crm.pii_salt"


def postgres_type(duckdb_type: str) -> str:
    """The PostgreSQL type that holds every value of ``duckdb_type`` unchanged.

    Raises:
        ValueError: A type outside the raw contract (nested, decimal, ...), which this copy
            does not translate.
    """
    try:
        return POSTGRES_TYPES[duckdb_type.upper()]
    except KeyError:
        raise ValueError(f"no PostgreSQL type for DuckDB type {duckdb_type!r}") from None


def salt_options(salt: str) -> str:
    """The ``PGOPTIONS`` value that sets the PII salt in every PostgreSQL session of a process.

    libpq splits PGOPTIONS on white space; a backslash escapes a space or a backslash.
    """
    escaped = salt.replace("\\", "\\\\").replace(" ", "\\ ")
    return f"-c {SALT_SETTING}={escaped}"


def copy_schema(
    source: duckdb.DuckDBPyConnection, target: Any, schema: str = "raw"
) -> dict[str, int]:
    """Copy every table of ``schema`` in DuckDB into the same schema of a PostgreSQL database.

    The PostgreSQL schema is dropped and created again, so the copy is exact. Column order,
    names and (mapped) types are kept; NULL and the empty string stay apart (CSV: an unquoted
    empty field is NULL, ``""`` is the empty string, in DuckDB's writer and PostgreSQL's reader).

    Args:
        source: A DuckDB connection that can read ``schema`` (read-only is enough).
        target: An open psycopg2 connection; committed at the end.
        schema: The schema to copy.

    Returns:
        Rows copied per table.
    """
    tables = [
        row[0]
        for row in source.execute(
            "select table_name from information_schema.tables "
            "where table_schema = ? and table_type = 'BASE TABLE' order by table_name",
            [schema],
        ).fetchall()
    ]
    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory(prefix="pg_copy_") as folder, target.cursor() as cursor:
        cursor.execute(f'drop schema if exists "{schema}" cascade')
        cursor.execute(f'create schema "{schema}"')
        for table in tables:
            columns = source.execute(
                "select column_name, data_type from information_schema.columns "
                "where table_schema = ? and table_name = ? order by ordinal_position",
                [schema, table],
            ).fetchall()
            column_sql = ", ".join(f'"{name}" {postgres_type(kind)}' for name, kind in columns)
            cursor.execute(f'create table "{schema}"."{table}" ({column_sql})')
            csv_path = Path(folder) / f"{table}.csv"
            source.execute(
                f'copy (select * from "{schema}"."{table}") to \'{csv_path}\' '
                "(format csv, header true)"
            )
            with csv_path.open("rb") as data:
                cursor.copy_expert(
                    f'copy "{schema}"."{table}" from stdin with (format csv, header true)', data
                )
            counts[table] = cursor.rowcount
    target.commit()
    return counts
