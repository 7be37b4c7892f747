"""Publish the serving tables to PostgreSQL, where CRMs and BI tools read them.

DuckDB is the laptop warehouse and allows one writing process; a CRM sync job or a dashboard
wants a server. When ``CRM_POSTGRES_URL`` is set, every run copies the serving tables into one
PostgreSQL schema (``CRM_POSTGRES_SCHEMA``, default ``crm_signals``):

* ``<schema>.<table>``: the newest snapshot of each DuckDB ``serving`` table (the rows of its
  newest ``as_of_date``; a table without one, such as ``lead_scores``, whole; the change feed
  ``score_changes`` whole, every publish). One row per customer is what a CRM field sync needs;
  the DuckDB tables keep every as-of date.
* ``<schema>.score_history``: every score of every run, in long form (entity, score name, score,
  as-of date, model version, run id). A rerun of the same as-of date and model version replaces
  its rows, so history never holds duplicates.

Everything happens in ONE PostgreSQL transaction: each table is loaded into a fresh table with
``COPY``, indexed, and swapped in by ``DROP`` + ``RENAME`` just before ``COMMIT``. A reader on
another connection sees the old tables until the commit and the new ones after it (PostgreSQL
re-resolves the name once the swap's lock is released), never an empty or half table; a failure
or a killed process rolls everything back.

Data moves as CSV written by DuckDB and read by ``COPY FROM STDIN`` (both treat an unquoted empty
field as NULL and ``""`` as the empty string), so no Python loop touches a row.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from ml.core.postgres import PostgresError, PostgresTarget, connect_postgres
from ml.core.warehouse import qualified, quote_ident, sql_literal
from ml.serving.tables import SERVING_SCHEMA, SERVING_TABLES, ServingTable

SCORE_HISTORY = "score_history"

# DuckDB type -> PostgreSQL type. Anything else (lists, structs) travels as text.
_PG_TYPES = {
    "VARCHAR": "text",
    "DOUBLE": "double precision",
    "FLOAT": "real",
    "BIGINT": "bigint",
    "INTEGER": "integer",
    "SMALLINT": "smallint",
    "HUGEINT": "numeric",
    "UBIGINT": "numeric",
    "BOOLEAN": "boolean",
    "DATE": "date",
    "TIMESTAMP": "timestamp",
    "TIMESTAMP WITH TIME ZONE": "timestamptz",
}


_HISTORY_COLUMNS = (
    ("entity_id", "text not null"),
    ("score_name", "text not null"),
    ("model_name", "text not null"),
    ("model_version", "text not null"),
    ("as_of_date", "date not null"),
    ("score", "double precision"),
    ("run_id", "text not null"),
    ("published_at", "timestamp not null"),
)


@dataclass(frozen=True)
class PublishResult:
    """What one publish wrote.

    Attributes:
        rows: Rows per published table.
        history_rows: Rows of this run in ``score_history`` (after replacing a rerun's rows).
        seconds: Wall time of the publish.
    """

    rows: dict[str, int]
    history_rows: int
    seconds: float


def base_tables(con: duckdb.DuckDBPyConnection, schema: str = SERVING_SCHEMA) -> list[str]:
    """The base tables of a DuckDB schema (views are left out), sorted."""
    rows = con.execute(
        "select table_name from information_schema.tables "
        "where table_schema = ? and table_type = 'BASE TABLE' order by 1",
        [schema],
    ).fetchall()
    return [str(r[0]) for r in rows]


def published_tables(con: duckdb.DuckDBPyConnection) -> list[ServingTable]:
    """The serving tables (``ml.serving.tables``) the warehouse holds, in their listed order."""
    present = set(base_tables(con, SERVING_SCHEMA))
    return [table for table in SERVING_TABLES if table.name in present]


def _columns(
    con: duckdb.DuckDBPyConnection, table: str, schema: str = SERVING_SCHEMA
) -> list[tuple[str, str]]:
    rows = con.execute(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = ? and table_name = ? order by ordinal_position",
        [schema, table],
    ).fetchall()
    return [(str(name), str(type_)) for name, type_ in rows]


def _create_table(
    cur: psycopg2.extensions.cursor, schema: str, table: str, columns: Sequence[tuple[str, str]]
) -> None:
    cur.execute(
        sql.SQL("create table {} ({})").format(
            sql.Identifier(schema, table),
            sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(_pg_type(type_)))
                for name, type_ in columns
            ),
        )
    )


def _pg_type(duckdb_type: str) -> str:
    if duckdb_type.startswith("DECIMAL"):
        return "numeric"
    return _PG_TYPES.get(duckdb_type, "text")


def newest_snapshot_sql(table: ServingTable) -> str:
    """SQL selecting the rows a reader of ``table`` wants now: its newest as-of date (a table
    replaced whole: all of it; the change feed: every publish, so a sync that missed some can
    catch up)."""
    source = qualified(SERVING_SCHEMA, table.name)
    if table.replaces in ("whole", "publish_id"):
        return f"select * from {source}"
    return f"select * from {source} where as_of_date = (select max(as_of_date) from {source})"


def _history_sql(tables: Sequence[ServingTable]) -> str | None:
    parts = []
    for table in tables:
        score = table.history
        if score is None or table.model is None:
            continue
        model_name = (
            "cast(model_name as varchar)"
            if "model_name" in table.column_names
            else sql_literal(table.model)
        )
        parts.append(
            f"select cast({quote_ident(score.entity_column)} as varchar) as entity_id, "
            f"{sql_literal(score.score_column)} as score_name, "
            # A table written by more than one model (customer_scores: churn or churn_snapshot)
            # says which on every row.
            f"{model_name} as model_name, "
            "cast(model_version as varchar) as model_version, "
            f"cast({quote_ident(score.as_of_column)} as date) as as_of_date, "
            f"cast({quote_ident(score.score_column)} as double) as score "
            f"from ({newest_snapshot_sql(table)}) "
            # A score the run could not make (customer value without order amounts) is no
            # history: an empty score would read as a change in a trend chart.
            f"where {quote_ident(score.score_column)} is not null"
        )
    return " union all ".join(parts) if parts else None


def _copy_into(
    duck: duckdb.DuckDBPyConnection,
    cur: psycopg2.extensions.cursor,
    select_sql: str,
    target: sql.Composable,
    columns: Sequence[str],
    scratch: Path,
) -> None:
    csv_path = scratch / "rows.csv"
    duck.execute(f"copy ({select_sql}) to ? (format csv, header false)", [str(csv_path)])
    column_list = sql.SQL(", ").join(sql.Identifier(c) for c in columns)
    with csv_path.open("rb") as rows:
        cur.copy_expert(
            sql.SQL("copy {} ({}) from stdin with (format csv)")
            .format(target, column_list)
            .as_string(cur),
            rows,
        )


def _index_name(table: str, column: str) -> str:
    return f"{table}_{column}_idx"


def _create_indexes(
    cur: psycopg2.extensions.cursor,
    schema: str,
    table: ServingTable,
    staging: str,
    columns: Sequence[str],
) -> list[str]:
    """Index the table's keys on the staging table under temporary names; returns the columns."""
    keys = [c for c in table.keys if c in columns]
    for column in keys:
        cur.execute(
            sql.SQL("create index {} on {} ({})").format(
                sql.Identifier(_index_name(staging, column)),
                sql.Identifier(schema, staging),
                sql.Identifier(column),
            )
        )
    return keys


def _publish_table(
    duck: duckdb.DuckDBPyConnection,
    cur: psycopg2.extensions.cursor,
    schema: str,
    table: ServingTable,
    scratch: Path,
) -> int:
    columns = _columns(duck, table.name)
    staging = f"{table.name}__publishing"
    cur.execute(sql.SQL("drop table if exists {}").format(sql.Identifier(schema, staging)))
    _create_table(cur, schema, staging, columns)
    names = [name for name, _ in columns]
    _copy_into(
        duck, cur, newest_snapshot_sql(table), sql.Identifier(schema, staging), names, scratch
    )
    # Indexes are built on the full staging table (faster than maintaining them row by row),
    # then the swap: the only moment readers wait is this drop + renames, right before commit.
    keys = _create_indexes(cur, schema, table, staging, names)
    cur.execute(
        sql.SQL("drop table if exists {} cascade").format(sql.Identifier(schema, table.name))
    )
    cur.execute(
        sql.SQL("alter table {} rename to {}").format(
            sql.Identifier(schema, staging), sql.Identifier(table.name)
        )
    )
    for column in keys:
        cur.execute(
            sql.SQL("alter index {} rename to {}").format(
                sql.Identifier(schema, _index_name(staging, column)),
                sql.Identifier(_index_name(table.name, column)),
            )
        )
    cur.execute(sql.SQL("select count(*) from {}").format(sql.Identifier(schema, table.name)))
    (count,) = cur.fetchone()
    return int(count)


def _append_history(
    duck: duckdb.DuckDBPyConnection,
    cur: psycopg2.extensions.cursor,
    schema: str,
    tables: Sequence[ServingTable],
    run_id: str,
    published_at: datetime,
    scratch: Path,
) -> int:
    history = sql.Identifier(schema, SCORE_HISTORY)
    cur.execute(
        sql.SQL("create table if not exists {} ({}, primary key ({}))").format(
            history,
            sql.SQL(", ").join(
                sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(type_))
                for name, type_ in _HISTORY_COLUMNS
            ),
            sql.SQL(", ").join(
                sql.Identifier(c)
                for c in ("model_name", "model_version", "as_of_date", "score_name", "entity_id")
            ),
        )
    )
    cur.execute(
        sql.SQL("create index if not exists {} on {} (entity_id, as_of_date)").format(
            sql.Identifier(f"{SCORE_HISTORY}_entity_idx"), history
        )
    )
    select_sql = _history_sql(tables)
    if select_sql is None:
        return 0
    load = f"{SCORE_HISTORY}__run"
    cur.execute(
        sql.SQL("create temporary table {} (like {}) on commit drop").format(
            sql.Identifier(load), history
        )
    )
    names = [name for name, _ in _HISTORY_COLUMNS]
    # DuckDB cannot bind parameters inside COPY's query; the values are ours, quoted as literals.
    stamped = (
        f"select *, {sql_literal(run_id)} as run_id, "
        f"cast({sql_literal(published_at.isoformat(sep=' '))} as timestamp) as published_at "
        f"from ({select_sql})"
    )
    _copy_into(duck, cur, stamped, sql.Identifier(load), names, scratch)
    # A rerun of the same as-of date and model version replaces that run's rows: no duplicates.
    cur.execute(
        sql.SQL(
            "delete from {h} using (select distinct model_name, model_version, as_of_date, "
            "score_name from {l}) r where {h}.model_name = r.model_name "
            "and {h}.model_version = r.model_version and {h}.as_of_date = r.as_of_date "
            "and {h}.score_name = r.score_name"
        ).format(h=history, l=sql.Identifier(load))
    )
    cur.execute(sql.SQL("insert into {} select * from {}").format(history, sql.Identifier(load)))
    return int(cur.rowcount)


def publish_to_postgres(
    duck: duckdb.DuckDBPyConnection,
    target: PostgresTarget,
    run_id: str,
    published_at: datetime,
    scratch_dir: Path,
    lock_timeout_s: int = 120,
) -> PublishResult:
    """Publish every DuckDB serving table and this run's scores, in one PostgreSQL transaction.

    Args:
        duck: Connection to the warehouse (read-only is enough).
        target: Server and schema.
        run_id: Identifies the run in ``score_history`` (e.g. the Dagster run id).
        published_at: When (naive = UTC), written to ``score_history``.
        scratch_dir: Folder for the CSV in transit (inside ``CRM_HOME``; deleted afterwards).
        lock_timeout_s: Longest wait for readers of the old tables at the swap.

    Returns:
        Rows per table and of the history.

    Raises:
        PostgresError: The server cannot be reached or a statement failed; the transaction is
            rolled back, so readers keep the previous tables.
    """
    started = datetime.now()
    tables = published_tables(duck)
    if not tables:
        raise PostgresError("the warehouse has no serving table to publish yet")
    scratch_dir.mkdir(parents=True, exist_ok=True)
    with (
        tempfile.TemporaryDirectory(dir=scratch_dir) as scratch,
        connect_postgres(target) as con,
    ):
        try:
            with con, con.cursor() as cur:  # commits on success, rolls back on any error
                # A long report holding the old table must not stall the run for ever: give up
                # (and let the step's retry policy try again) after this long at the swap.
                cur.execute("set local lock_timeout = %s", [f"{lock_timeout_s}s"])
                cur.execute(
                    sql.SQL("create schema if not exists {}").format(sql.Identifier(target.schema))
                )
                rows = {
                    table.name: _publish_table(duck, cur, target.schema, table, Path(scratch))
                    for table in tables
                }
                history_rows = _append_history(
                    duck, cur, target.schema, tables, run_id, published_at, Path(scratch)
                )
        except psycopg2.Error as error:
            raise PostgresError(
                f"publishing to PostgreSQL at {target.redacted} failed and was rolled back: "
                f"{str(error).strip()}"
            ) from error
    return PublishResult(rows, history_rows, (datetime.now() - started).total_seconds())


def copy_schema(
    duck: duckdb.DuckDBPyConnection,
    target: psycopg2.extensions.connection,
    schema: str,
    scratch_dir: Path,
) -> dict[str, int]:
    """Copy every base table of a DuckDB schema into the same schema of PostgreSQL, exactly.

    The PostgreSQL schema is dropped and created again in one transaction (column names, order
    and mapped types kept; NULL and the empty string stay apart). Used to run the dbt project on
    PostgreSQL from the raw tables ingest wrote (docs/postgres.md).

    Returns:
        Rows copied per table.
    """
    scratch_dir.mkdir(parents=True, exist_ok=True)
    counts: dict[str, int] = {}
    with tempfile.TemporaryDirectory(dir=scratch_dir) as scratch, target, target.cursor() as cur:
        cur.execute(sql.SQL("drop schema if exists {} cascade").format(sql.Identifier(schema)))
        cur.execute(sql.SQL("create schema {}").format(sql.Identifier(schema)))
        for table in base_tables(duck, schema):
            columns = _columns(duck, table, schema)
            _create_table(cur, schema, table, columns)
            _copy_into(
                duck,
                cur,
                f"select * from {qualified(schema, table)}",
                sql.Identifier(schema, table),
                [name for name, _ in columns],
                Path(scratch),
            )
            counts[table] = int(cur.rowcount)
    return counts
