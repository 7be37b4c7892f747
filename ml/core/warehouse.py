"""DuckDB warehouse helpers: connections, atomic publishing of serving tables, Parquet export.

Readers of the serving tables (BI tools, CRM sync jobs) must see the old rows or the new rows,
never half of a publish, and a failed run must never replace the last good scores. Every write
here therefore happens inside one DuckDB transaction (``BEGIN`` ... ``COMMIT``, ``ROLLBACK`` on any
error), and files are written to a temporary name and moved into place with ``os.replace``.
"""

from __future__ import annotations

import contextlib
import os
import threading
import uuid
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import duckdb
import pandas as pd

# DuckDB infers these from pandas; a serving table should carry the plain SQL type instead.
_TYPE_NORMALISATION = {
    "TIMESTAMP_NS": "TIMESTAMP",
    "TIMESTAMP_MS": "TIMESTAMP",
    "TIMESTAMP_S": "TIMESTAMP",
    '"NULL"': "VARCHAR",
    "NULL": "VARCHAR",
}


_SCRATCH = threading.local()


@contextlib.contextmanager
def frame_query(name: str, frame: pd.DataFrame) -> Iterator[duckdb.DuckDBPyConnection]:
    """A private in-memory DuckDB connection of the calling thread with ``frame`` registered as
    ``name``, for SQL over a data frame (e.g. building JSON per row).

    The connection is opened once per thread and kept: opening one costs about 100 ms on a
    loaded 2-core machine (measured), which a request of the scoring service cannot pay.
    """
    con = getattr(_SCRATCH, "con", None)
    if con is None:
        con = duckdb.connect()
        con.execute("SET TimeZone = 'UTC'")
        _SCRATCH.con = con
    con.register(name, frame)
    try:
        yield con
    finally:
        con.unregister(name)


def quote_ident(name: str) -> str:
    """Quote a SQL identifier for DuckDB (double quotes, embedded quotes doubled)."""
    return '"' + name.replace('"', '""') + '"'


def sql_literal(value: str) -> str:
    """A SQL string literal (single quotes doubled), for the few places DuckDB cannot bind a
    parameter (inside ``COPY (...)``, ``read_csv`` options); data values go in as parameters."""
    return "'" + value.replace("'", "''") + "'"


def table_exists(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    """Whether ``schema.table`` (a table or a view) exists in the connection's own database,
    not in one it attached."""
    rows = con.execute(
        "select 1 from information_schema.tables where table_catalog = current_database() "
        "and table_schema = ? and table_name = ?",
        [schema, table],
    ).fetchall()
    return bool(rows)


def fetch_row(con: duckdb.DuckDBPyConnection, sql: str, params: list | dict | None = None) -> tuple:
    """The single row of a query such as an aggregate.

    DuckDB 2.0 keeps a result open after ``fetchone()`` and refuses further work on the connection
    until it is drained; ``fetchall()`` drains it.
    """
    rows = con.execute(sql, params).fetchall()
    if len(rows) != 1:
        raise ValueError(f"expected one row, got {len(rows)} from: {sql}")
    return rows[0]


def qualified(schema: str, table: str) -> str:
    """Return the quoted ``schema.table`` name."""
    return f"{quote_ident(schema)}.{quote_ident(table)}"


def connect(
    path: Path,
    *,
    read_only: bool = False,
    threads: int = 2,
    memory_limit: str = "4GB",
) -> duckdb.DuckDBPyConnection:
    """Open the DuckDB warehouse file with the project's resource limits.

    Args:
        path: The ``.duckdb`` file. Its parent folder is created when opening for writing.
        read_only: Open read-only (many readers may share a file; only one process may write).
        threads: DuckDB worker threads.
        memory_limit: DuckDB ``memory_limit`` (e.g. ``"4GB"``); larger work spills to disk.

    Returns:
        An open connection whose session time zone is UTC.
    """
    path = Path(path)
    if not read_only:
        path.parent.mkdir(parents=True, exist_ok=True)
    config: dict[str, str | bool | int | float | list[str]] = {
        "threads": threads,
        "memory_limit": memory_limit,
        # Spill files go next to the database so they land in $CRM_HOME, not in /tmp or the cwd.
        "temp_directory": str(path.parent / f"{path.name}.tmp"),
    }
    con = duckdb.connect(str(path), read_only=read_only, config=config)
    # Raw timestamps are stored as naive UTC, so converting offsets must not depend on the host.
    # (Set after connecting: the ICU extension that owns this setting loads with the database.)
    con.execute("SET TimeZone = 'UTC'")
    return con


@contextlib.contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[duckdb.DuckDBPyConnection]:
    """Run the body in one transaction: commit on success, roll back on any error."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield con
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


@contextlib.contextmanager
def _source_sql(
    con: duckdb.DuckDBPyConnection, frame_or_relation_sql: pd.DataFrame | str
) -> Iterator[str]:
    """Yield a SQL ``select`` for a data frame (registered under a unique name) or a SQL text."""
    if isinstance(frame_or_relation_sql, pd.DataFrame):
        name = f"_publish_{uuid.uuid4().hex}"
        con.register(name, frame_or_relation_sql)
        try:
            yield f"select * from {quote_ident(name)}"
        finally:
            con.unregister(name)
    else:
        yield str(frame_or_relation_sql)


def _column_types(con: duckdb.DuckDBPyConnection, select_sql: str) -> list[tuple[str, str]]:
    rows = con.execute(f"describe {select_sql}").fetchall()
    return [(str(r[0]), _TYPE_NORMALISATION.get(str(r[1]), str(r[1]))) for r in rows]


def _table_columns(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> list[str] | None:
    rows = con.execute(
        "select column_name from information_schema.columns "
        "where table_schema = ? and table_name = ? order by ordinal_position",
        [schema, table],
    ).fetchall()
    return [str(r[0]) for r in rows] or None


def publish_table(
    con: duckdb.DuckDBPyConnection,
    frame_or_relation_sql: pd.DataFrame | str,
    schema: str,
    table: str,
    *,
    replace_where: str | None = None,
    replace_params: Sequence[object] = (),
    column_types: Mapping[str, str] | None = None,
) -> int:
    """Publish rows into ``schema.table`` atomically.

    Two modes, both in one transaction so a reader sees the old or the new rows, never half:

    * ``replace_where=None``: the table is replaced whole (``create or replace table``) with
      explicit column types taken from the input.
    * ``replace_where="as_of_date = ?"`` with ``replace_params=[date(2026, 9, 1)]`` (a SQL
      predicate; values go in as parameters, never into the SQL text): rows matching it are
      deleted and the new rows inserted. On first publish the table is created with explicit
      column types; later publishes keep the table's types (a value that does not cast fails the
      publish and the previous rows stay). Columns new in the input are added (additive schema
      evolution, so later issues can add score columns); columns missing from the input are
      filled with null.

    Args:
        con: Writable connection, not inside an open transaction.
        frame_or_relation_sql: A data frame, or a SQL ``select`` over tables in ``con``.
        schema: Target schema (created if missing).
        table: Target table.
        replace_where: Predicate selecting the rows this publish replaces, or None for all.
        replace_params: Values of the ``?`` placeholders in ``replace_where``.
        column_types: Column -> SQL type to create and cast to (every column of the input);
            None takes the types DuckDB infers from the input.

    Returns:
        The number of rows inserted.
    """
    target = qualified(schema, table)
    with _source_sql(con, frame_or_relation_sql) as select_sql:
        columns = _column_types(con, select_sql)
        if column_types is not None:
            columns = [(name, column_types[name]) for name, _ in columns]
        column_defs = ", ".join(f"{quote_ident(n)} {t}" for n, t in columns)
        column_list = ", ".join(quote_ident(n) for n, _ in columns)
        casts = (
            ", ".join(f"cast({quote_ident(n)} as {t})" for n, t in columns)
            if column_types is not None
            else column_list
        )
        with transaction(con):
            con.execute(f"create schema if not exists {quote_ident(schema)}")
            existing = _table_columns(con, schema, table)
            if replace_where is None or existing is None:
                con.execute(f"create or replace table {target} ({column_defs})")
            else:
                for name, type_ in columns:
                    if name not in existing:
                        con.execute(f"alter table {target} add column {quote_ident(name)} {type_}")
                con.execute(f"delete from {target} where {replace_where}", list(replace_params))
            inserted = fetch_row(
                con,
                f"insert into {target} ({column_list}) select {casts} from ({select_sql})",
            )
    return int(inserted[0]) if inserted else 0


def create_latest_view(
    con: duckdb.DuckDBPyConnection,
    schema: str,
    table: str,
    view: str,
    key: str,
    order_col: str,
) -> None:
    """Create or replace ``schema.view`` with the newest row per ``key`` of ``schema.table``.

    Args:
        con: Writable connection.
        schema: Schema of the table; the view is created in it too.
        table: Source table (e.g. ``customer_scores``).
        view: View name (e.g. ``customer_scores_latest``).
        key: Column identifying an entity (e.g. ``customer_id``).
        order_col: Column whose largest value marks the newest row (e.g. ``as_of_date``).
    """
    con.execute(
        f"create or replace view {qualified(schema, view)} as "
        f"select * from {qualified(schema, table)} "
        f"qualify row_number() over ("
        f"partition by {quote_ident(key)} order by {quote_ident(order_col)} desc) = 1"
    )


def export_parquet(
    con: duckdb.DuckDBPyConnection, schema: str, table: str, exports_dir: Path
) -> Path:
    """Write ``schema.table`` to ``exports_dir/<schema>.<table>.parquet`` atomically.

    The file is written under a temporary name in the same folder and moved into place with
    ``os.replace``, so a reader opens either the previous complete file or the new one.

    Args:
        con: Connection that can read the table.
        schema: Schema of the table.
        table: Table or view to export.
        exports_dir: Folder of the exports (created if missing).

    Returns:
        The path of the Parquet file.
    """
    exports_dir = Path(exports_dir)
    exports_dir.mkdir(parents=True, exist_ok=True)
    final = exports_dir / f"{schema}.{table}.parquet"
    tmp = exports_dir / f".{final.name}.{uuid.uuid4().hex}.tmp"
    try:
        con.execute(
            f"copy (select * from {qualified(schema, table)}) to ? "
            "(format parquet, compression zstd)",
            [str(tmp)],
        )
        os.replace(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return final
