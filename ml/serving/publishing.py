"""Publish the serving tables to PostgreSQL, where CRMs and BI tools read them.

DuckDB is the laptop warehouse and allows one writing process; a CRM sync job or a dashboard
wants a server. When ``CRM_POSTGRES_URL`` is set, every run copies the serving tables into one
PostgreSQL schema (``CRM_POSTGRES_SCHEMA``, default ``crm_signals``):

* ``<schema>.<table>``: the newest snapshot of each DuckDB ``serving`` table (the rows of its
  newest ``as_of_date``; a table without one, such as ``lead_scores``, whole). One row per
  customer is what a CRM field sync needs; the DuckDB tables keep every as-of date.
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

import contextlib
import re
import tempfile
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import duckdb
import psycopg2
import psycopg2.extensions
from psycopg2 import sql

from ml.core.warehouse import qualified, quote_ident, sql_literal

SERVING_SCHEMA = "serving"
SCORE_HISTORY = "score_history"
# The key columns a reader filters or joins on; each one present in a table gets an index.
KEY_COLUMNS = ("customer_id", "lead_id", "as_of_date", "segment_id")
_IDENTIFIER = re.compile(r"^[a-z_][a-z0-9_]{0,62}$")

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


@dataclass(frozen=True)
class HistoryScore:
    """One score column of a serving table that ``score_history`` keeps.

    Attributes:
        table: Serving table.
        entity_column: Column naming what is scored (customer or lead).
        score_column: The score.
        model_name: Registered model that produced it.
        as_of_sql: SQL giving the as-of date of a row (a column, or derived).
    """

    table: str
    entity_column: str
    score_column: str
    model_name: str
    as_of_sql: str = "as_of_date"


HISTORY_SCORES: tuple[HistoryScore, ...] = (
    HistoryScore("customer_scores", "customer_id", "churn_probability", "churn"),
    HistoryScore("customer_uplift", "customer_id", "retention_uplift", "retention_uplift"),
    HistoryScore("next_product_offers", "customer_id", "probability", "next_product"),
    HistoryScore("customer_value", "customer_id", "expected_value_12m", "customer_value"),
    HistoryScore("lead_scores", "lead_id", "conversion_probability", "lead_scoring", "scored_at"),
)

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


class PublishError(RuntimeError):
    """Publishing to PostgreSQL failed; nothing of this publish is visible to readers."""


@dataclass(frozen=True)
class PostgresTarget:
    """Where to publish: a libpq URL and a schema.

    Attributes:
        url: ``postgresql://user:password@host:port/dbname`` (a secret: see :meth:`redacted`).
        schema: Schema the tables are published into (lower-case identifier).
    """

    url: str = field(repr=False)
    schema: str = "crm_signals"

    def __post_init__(self) -> None:
        if not _IDENTIFIER.match(self.schema):
            raise ValueError(
                f"PostgreSQL schema {self.schema!r} is not a plain lower-case identifier "
                "(letters, digits, underscore)"
            )

    @property
    def redacted(self) -> str:
        """The URL without its password, for messages and logs."""
        return redact_url(self.url)


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


def redact_url(url: str) -> str:
    """``url`` with the password replaced by ``***`` (user, host, port and database kept)."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.hostname or ""
    netloc = f"{parts.username}:***@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


@contextlib.contextmanager
def connect_postgres(
    target: PostgresTarget, timeout_s: int = 10
) -> Iterator[psycopg2.extensions.connection]:
    """A connection to the target server, closed afterwards.

    Raises:
        PublishError: The server cannot be reached; the message names the redacted URL.
    """
    try:
        con = psycopg2.connect(
            target.url, connect_timeout=timeout_s, application_name="crm_signals"
        )
    except psycopg2.OperationalError as error:
        # libpq's message names host and port but never the password.
        raise PublishError(
            f"cannot connect to PostgreSQL at {target.redacted}: {str(error).strip()}"
        ) from error
    try:
        yield con
    finally:
        con.close()


def base_tables(con: duckdb.DuckDBPyConnection, schema: str = SERVING_SCHEMA) -> list[str]:
    """The base tables of a DuckDB schema (views are left out), sorted."""
    rows = con.execute(
        "select table_name from information_schema.tables "
        "where table_schema = ? and table_type = 'BASE TABLE' order by 1",
        [schema],
    ).fetchall()
    return [str(r[0]) for r in rows]


def serving_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The base tables of the DuckDB ``serving`` schema, sorted."""
    return base_tables(con, SERVING_SCHEMA)


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


def newest_snapshot_sql(con: duckdb.DuckDBPyConnection, table: str) -> str:
    """SQL selecting the rows a reader of ``table`` wants now: its newest as-of date."""
    source = qualified(SERVING_SCHEMA, table)
    if "as_of_date" not in {name for name, _ in _columns(con, table)}:
        return f"select * from {source}"
    return f"select * from {source} where as_of_date = (select max(as_of_date) from {source})"


def _history_sql(con: duckdb.DuckDBPyConnection, tables: Sequence[str]) -> str | None:
    parts = []
    for spec in HISTORY_SCORES:
        if spec.table not in tables:
            continue
        snapshot = newest_snapshot_sql(con, spec.table)
        parts.append(
            f"select cast({quote_ident(spec.entity_column)} as varchar) as entity_id, "
            f"'{spec.score_column}' as score_name, '{spec.model_name}' as model_name, "
            "cast(model_version as varchar) as model_version, "
            f"cast({spec.as_of_sql} as date) as as_of_date, "
            f"cast({quote_ident(spec.score_column)} as double) as score "
            f"from ({snapshot})"
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
    cur: psycopg2.extensions.cursor, schema: str, table: str, staging: str, columns: Sequence[str]
) -> list[str]:
    """Index the key columns of the staging table under temporary names; returns the columns."""
    keys = [c for c in columns if c in KEY_COLUMNS]
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
    table: str,
    scratch: Path,
) -> int:
    columns = _columns(duck, table)
    staging = f"{table}__publishing"
    cur.execute(sql.SQL("drop table if exists {}").format(sql.Identifier(schema, staging)))
    _create_table(cur, schema, staging, columns)
    names = [name for name, _ in columns]
    _copy_into(
        duck, cur, newest_snapshot_sql(duck, table), sql.Identifier(schema, staging), names, scratch
    )
    # Indexes are built on the full staging table (faster than maintaining them row by row),
    # then the swap: the only moment readers wait is this drop + renames, right before commit.
    keys = _create_indexes(cur, schema, table, staging, names)
    cur.execute(sql.SQL("drop table if exists {} cascade").format(sql.Identifier(schema, table)))
    cur.execute(
        sql.SQL("alter table {} rename to {}").format(
            sql.Identifier(schema, staging), sql.Identifier(table)
        )
    )
    for column in keys:
        cur.execute(
            sql.SQL("alter index {} rename to {}").format(
                sql.Identifier(schema, _index_name(staging, column)),
                sql.Identifier(_index_name(table, column)),
            )
        )
    cur.execute(sql.SQL("select count(*) from {}").format(sql.Identifier(schema, table)))
    (count,) = cur.fetchone()
    return int(count)


def _append_history(
    duck: duckdb.DuckDBPyConnection,
    cur: psycopg2.extensions.cursor,
    schema: str,
    tables: Sequence[str],
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
    select_sql = _history_sql(duck, tables)
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
        PublishError: The server cannot be reached or a statement failed; the transaction is
            rolled back, so readers keep the previous tables.
    """
    started = datetime.now()
    tables = serving_tables(duck)
    if not tables:
        raise PublishError("the warehouse has no serving table to publish yet")
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
                    table: _publish_table(duck, cur, target.schema, table, Path(scratch))
                    for table in tables
                }
                history_rows = _append_history(
                    duck, cur, target.schema, tables, run_id, published_at, Path(scratch)
                )
        except psycopg2.Error as error:
            raise PublishError(
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


def erase_from_postgres(target: PostgresTarget, customer_ids: Sequence[str]) -> dict[str, int]:
    """Delete the customers' rows from every table of the published schema, atomically.

    ``score_history`` keeps past runs, so an erased person would stay in it without this; the
    snapshot tables are replaced whole by the next publish, but are cleaned now too.

    Returns:
        Rows removed per ``postgres:schema.table``; empty when the schema does not exist yet.
    """
    if not customer_ids:
        return {}
    removed: dict[str, int] = {}
    with connect_postgres(target) as con:
        try:
            with con, con.cursor() as cur:
                cur.execute(
                    "select table_name, column_name from information_schema.columns "
                    "where table_schema = %s and column_name in ('customer_id', 'entity_id') "
                    "order by 1",
                    [target.schema],
                )
                for table, column in cur.fetchall():
                    cur.execute(
                        sql.SQL("delete from {} where {} = any(%s)").format(
                            sql.Identifier(target.schema, table), sql.Identifier(column)
                        ),
                        [list(customer_ids)],
                    )
                    if cur.rowcount:
                        removed[f"postgres:{target.schema}.{table}"] = int(cur.rowcount)
        except psycopg2.Error as error:
            raise PublishError(
                f"erasing from PostgreSQL at {target.redacted} failed and was rolled back: "
                f"{str(error).strip()}"
            ) from error
    return removed
