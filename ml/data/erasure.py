"""Erasure (right to be forgotten): remove a person from every store and keep them out.

A request names one customer record; the person is every record that identity resolution put
with it (``marts.customer_identity_map``). Erasing them:

1. appends a tombstone per record to ``<CRM_HOME>/erasure/tombstones.parquet``: the salted hash of
   the record id (``ml.core.privacy``), never the id itself. It is written first, so a crash later in
   the step still keeps the person out of the next load, and it lives outside the warehouse, so
   rebuilding the warehouse does not forget an erasure;
2. deletes, in one DuckDB transaction, every row of every table that carries the person's
   ``customer_record_id`` or ``customer_id``: raw, quarantine, every dbt layer (features and
   training snapshots are marts), serving tables and their history;
3. rewrites each Parquet file (exports, quarantine, and with the Spark engine every table and
   export under ``<CRM_HOME>/spark``: the marts training and scoring read there) that holds one
   of their rows;
4. appends one row per request to ``<CRM_HOME>/erasure/audit.parquet``: request id, dates and
   counts, no identifier of the person.

Ingest drops every row whose record-id hash has a tombstone (:func:`drop_erased_rows`), so a
re-imported export never brings the person back into training or scoring. MLflow holds models,
metrics and plots, never rows (the pipeline tests search it for identifiers).
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import psycopg2
from psycopg2 import sql

from ml.core.postgres import PostgresError, PostgresTarget, connect_postgres
from ml.core.privacy import keyed_hash_sql, set_salt_variable
from ml.core.warehouse import fetch_row, qualified, table_exists, transaction
from ml.data.tombstones import (
    RECORD_COLUMN,
    TOMBSTONES_FILE,
    read_parquet_or_empty,
)

AUDIT_FILE = "audit.parquet"
PERSON_COLUMN = "customer_id"
IDENTITY_MAP = "marts.customer_identity_map"
REQUESTS_TABLE = "raw.erasure_requests"
SNAPSHOT_TABLE = "customer_snapshot"

_AUDIT_COLUMNS = {
    "request_id": "VARCHAR",
    "requested_at": "TIMESTAMP",
    "erased_at": "TIMESTAMP",
    "records_erased": "BIGINT",
    "rows_removed": "BIGINT",
    "stores": "VARCHAR",
}


@dataclass(frozen=True)
class ErasureOutcome:
    """What one erasure step did.

    Attributes:
        requests: New requests carried out (requests already in the audit log are skipped).
        records_erased: Customer records erased (all records of the requested persons).
        rows_removed: Rows removed per store, e.g. ``{"duckdb:marts.orders": 12,
            "file:exports/serving.customer_scores.parquet": 3}``; stores without rows are left out.
    """

    requests: int
    records_erased: int
    rows_removed: dict[str, int] = field(default_factory=dict)

    @property
    def total_rows_removed(self) -> int:
        return sum(self.rows_removed.values())


def _append_parquet(con: duckdb.DuckDBPyConnection, path: Path, rows: pd.DataFrame) -> None:
    """Append ``rows`` to a small Parquet log, atomically (temporary file, then ``os.replace``)."""
    combined = (
        pd.concat([pd.read_parquet(path), rows], ignore_index=True) if path.is_file() else rows
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    os.chmod(path.parent, 0o700)
    tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
    try:
        con.register("_erasure_log_rows", combined)
        con.execute("copy (select * from _erasure_log_rows) to ? (format parquet)", [str(tmp)])
        con.unregister("_erasure_log_rows")
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def read_audit_log(erasure_dir: Path) -> pd.DataFrame:
    """The erasure audit log: one row per request carried out."""
    return read_parquet_or_empty(Path(erasure_dir) / AUDIT_FILE, _AUDIT_COLUMNS)


def pending_requests(con: duckdb.DuckDBPyConnection, erasure_dir: Path) -> pd.DataFrame:
    """Requests in ``raw.erasure_requests`` that the audit log does not record as carried out."""
    done = read_audit_log(erasure_dir)["request_id"].astype(str).tolist()
    return con.execute(
        f"select request_id, trim(customer_record_id) as customer_record_id, requested_at "
        f"from {REQUESTS_TABLE} where request_id not in (select unnest(?::varchar[])) "
        "order by requested_at, request_id",
        [done],
    ).df()


def erased_customer_ids(
    con: duckdb.DuckDBPyConnection, erasure_dir: Path, salt: str, customer_ids: Sequence[str]
) -> frozenset[str]:
    """Which of ``customer_ids`` must never be scored: a pending erasure request resolves to
    them, or their id (a flat snapshot's record id) hashes to a tombstone.

    A carried-out request has removed the person from the warehouse already; this catches the
    requests that arrived since the last run, for readers (the scoring service) that must not
    wait for it. ``con`` may be read-only.
    """
    erased: set[str] = set()
    if table_exists(con, "raw", "erasure_requests"):
        pending = pending_requests(con, erasure_dir)
        if not pending.empty:
            subjects = erasure_subjects(con, pending)
            erased |= set(subjects["customer_id"].dropna().astype(str))
            erased |= set(subjects["customer_record_id"].dropna().astype(str))
    tombstones = read_parquet_or_empty(
        Path(erasure_dir) / TOMBSTONES_FILE, {"record_key_hash": "VARCHAR"}
    )
    if len(tombstones) and len(customer_ids):
        set_salt_variable(con, salt)
        con.register("_served_ids", pd.DataFrame({"customer_id": list(customer_ids)}, dtype=object))
        con.register("_tombstones", tombstones[["record_key_hash"]].astype(str))
        try:
            rows = con.execute(
                f"select customer_id from _served_ids where {keyed_hash_sql('customer_id')} "
                "in (select record_key_hash from _tombstones)"
            ).fetchall()
        finally:
            con.unregister("_served_ids")
            con.unregister("_tombstones")
        erased |= {str(r[0]) for r in rows}
    return frozenset(erased)


def erasure_subjects(con: duckdb.DuckDBPyConnection, requests: pd.DataFrame) -> pd.DataFrame:
    """Every record of each requested person: ``request_id, customer_record_id, customer_id``.

    A requested record that identity resolution does not know (rejected, or not loaded) is still
    erased on its own, with a null ``customer_id``; when it is a customer of a flat customer
    snapshot (``raw.customer_snapshot``, keyed by the CRM's record id), that id is its
    ``customer_id``, so the snapshot row and its scores go too.
    """
    has_snapshot = table_exists(con, "raw", SNAPSHOT_TABLE)
    snapshot_id = (
        f"(select any_value(s.customer_id) from raw.{SNAPSHOT_TABLE} s "
        "where s.customer_id = r.customer_record_id)"
        if has_snapshot
        else "null"
    )
    con.register("_erasure_requests", requests[["request_id", "customer_record_id"]])
    try:
        return con.execute(
            f"""
            with persons as (
                select distinct r.request_id, m.customer_id
                from _erasure_requests r
                join {IDENTITY_MAP} m on m.customer_record_id = r.customer_record_id
            )
            select p.request_id, m.customer_record_id, m.customer_id
            from persons p join {IDENTITY_MAP} m on m.customer_id = p.customer_id
            union
            select r.request_id, r.customer_record_id, {snapshot_id}
            from _erasure_requests r
            where r.customer_record_id not in (select customer_record_id from {IDENTITY_MAP})
            order by 1, 2
            """
        ).df()
    finally:
        con.unregister("_erasure_requests")


def _person_tables(con: duckdb.DuckDBPyConnection) -> list[tuple[str, str, list[str]]]:
    """Base tables of the warehouse with a record or person column: (schema, table, columns)."""
    rows = con.execute(
        "select t.table_schema, t.table_name, list(c.column_name order by c.column_name) "
        "from information_schema.tables t join information_schema.columns c "
        "on c.table_schema = t.table_schema and c.table_name = t.table_name "
        "where t.table_type = 'BASE TABLE' and t.table_catalog = current_database() "
        f"and c.column_name in ('{RECORD_COLUMN}', '{PERSON_COLUMN}', 'raw_line') "
        "group by all order by 1, 2"
    ).fetchall()
    return [
        (str(s), str(t), [str(c) for c in cols])
        for s, t, cols in rows
        if RECORD_COLUMN in cols or PERSON_COLUMN in cols
    ]


def _person_predicate(columns: list[str]) -> str:
    parts = []
    if RECORD_COLUMN in columns:
        parts.append(f"trim({RECORD_COLUMN}) in (select r from _erase_records)")
    if PERSON_COLUMN in columns:
        parts.append(f"{PERSON_COLUMN} in (select p from _erase_persons)")
    if "raw_line" in columns:
        # A malformed line of a quarantined file that names one of the records as a field.
        parts.append(
            "(raw_line is not null and list_has_any("
            "list_transform(string_split(replace(raw_line, '\"', ''), ','), lambda x: trim(x)), "
            "(select list(r) from _erase_records)))"
        )
    # Null-safe, so "where not (...)" keeps a row whose key columns are empty.
    return f"coalesce({' or '.join(parts)}, false)"


def _register_subjects(con: duckdb.DuckDBPyConnection, subjects: pd.DataFrame) -> None:
    records = subjects["customer_record_id"].dropna().astype(str).unique()
    persons = subjects["customer_id"].dropna().astype(str).unique()
    con.register("_erase_records", pd.DataFrame({"r": records}, dtype="object"))
    con.register("_erase_persons", pd.DataFrame({"p": persons}, dtype="object"))


def _unregister_subjects(con: duckdb.DuckDBPyConnection) -> None:
    con.unregister("_erase_records")
    con.unregister("_erase_persons")


def _take_erased_events_out_of_day_fingerprints(con: duckdb.DuckDBPyConnection) -> None:
    """Take the subjects' raw events out of the event-day fingerprints of the last dbt build.

    ``state.event_days`` holds, per day, the row count and the XOR of the row checksums of
    ``raw.events`` at the last complete build (``dbt_project/macros/incremental.sql``). Deleting a
    person's events changes the fingerprint of every day they were active, and the next build
    would recompute every as-of date after the oldest of them (at 1M customers a day's run took
    250 s instead of 140 s). Their rows in every dbt table go in the same transaction, so there
    is nothing to recompute: the fingerprints lose the rows too, hashed with the checksum SQL the
    build stored (``state.event_checksum``). A day where an erased event id has a copy of someone
    else stays changed: which copy the build keeps can change there. Without a stored checksum
    (state of an older build) the fingerprints are left and the next build recomputes.
    """
    if not all(
        table_exists(con, schema, table)
        for schema, table in (
            ("state", "event_days"),
            ("state", "event_checksum"),
            ("raw", "events"),
        )
    ):
        return
    (checksum_sql,) = fetch_row(con, "select row_checksum_sql from state.event_checksum")
    erased = _person_predicate([RECORD_COLUMN])
    con.execute(
        f"""
        update state.event_days
        set row_count = state.event_days.row_count - erased_days.row_count,
            checksum = xor(state.event_days.checksum, erased_days.checksum)
        from (
            with erased as (
                select cast(occurred_at as date) as activity_date,
                    trim(event_id) as event_key, {checksum_sql} as row_checksum
                from raw.events where {erased}
            ),
            kept_keys as (
                select trim(event_id) as event_key from raw.events where not ({erased})
            ),
            days_with_a_kept_copy as (
                select distinct erased.activity_date
                from erased inner join kept_keys on erased.event_key = kept_keys.event_key
            )
            select activity_date, count(*) as row_count, bit_xor(row_checksum) as checksum
            from erased
            where activity_date not in (select activity_date from days_with_a_kept_copy)
            group by activity_date
        ) as erased_days
        where state.event_days.activity_date = erased_days.activity_date
        """
    )
    con.execute("delete from state.event_days where row_count = 0")


def erase_from_warehouse(con: duckdb.DuckDBPyConnection, subjects: pd.DataFrame) -> dict[str, int]:
    """Delete the subjects' rows from every table that has a record or person column, atomically.

    Views are left alone: they read the tables. The fingerprints of the incremental dbt build
    lose the deleted events too (:func:`_take_erased_events_out_of_day_fingerprints`). Returns
    rows removed per ``duckdb:schema.table``.
    """
    removed: dict[str, int] = {}
    _register_subjects(con, subjects)
    try:
        with transaction(con):
            _take_erased_events_out_of_day_fingerprints(con)
            for schema, table, columns in _person_tables(con):
                (count,) = fetch_row(
                    con,
                    f"delete from {qualified(schema, table)} where {_person_predicate(columns)}",
                )
                if count:
                    removed[f"duckdb:{schema}.{table}"] = int(count)
    finally:
        _unregister_subjects(con)
    return removed


def erase_from_parquet_files(
    con: duckdb.DuckDBPyConnection, folders: dict[str, Path], subjects: pd.DataFrame
) -> dict[str, int]:
    """Rewrite each Parquet file in ``folders`` that holds rows of the subjects, without them.

    Args:
        con: Any DuckDB connection (used to read and write the files).
        folders: Label and folder, e.g. ``{"exports": <CRM_HOME>/exports}``.
        subjects: Output of :func:`erasure_subjects`.

    Returns:
        Rows removed per ``file:<label>/<name>``.
    """
    removed: dict[str, int] = {}
    _register_subjects(con, subjects)
    try:
        for label, folder in folders.items():
            for path in sorted(Path(folder).glob("*.parquet")):
                source, file = "read_parquet(?)", [str(path)]
                columns = [
                    str(r[0])
                    for r in con.execute(f"describe select * from {source}", file).fetchall()
                ]
                if RECORD_COLUMN not in columns and PERSON_COLUMN not in columns:
                    continue
                predicate = _person_predicate(columns)
                (count,) = fetch_row(con, f"select count(*) from {source} where {predicate}", file)
                if not count:
                    continue
                tmp = path.parent / f".{path.name}.{uuid.uuid4().hex}.tmp"
                try:
                    con.execute(
                        f"copy (select * from {source} where not ({predicate})) to ? "
                        "(format parquet, compression zstd)",
                        [*file, str(tmp)],
                    )
                    os.replace(tmp, path)
                    # Hadoop's checksum of the old file (Spark's folders): a reader that finds
                    # one checks it and fails; without one it reads the file unchecked.
                    (path.parent / f".{path.name}.crc").unlink(missing_ok=True)
                finally:
                    tmp.unlink(missing_ok=True)
                removed[f"file:{label}/{path.name}"] = int(count)
    finally:
        _unregister_subjects(con)
    return removed


def write_tombstones(
    con: duckdb.DuckDBPyConnection,
    erasure_dir: Path,
    subjects: pd.DataFrame,
    salt: str,
    erased_at: datetime,
) -> int:
    """Append the salted hash of each subject record id to the tombstones; return how many."""
    set_salt_variable(con, salt)
    con.register("_tombstone_subjects", subjects[["request_id", "customer_record_id"]])
    try:
        rows = con.execute(
            f"select distinct {keyed_hash_sql('customer_record_id')} as record_key_hash, "
            "request_id, cast(? as timestamp) as erased_at from _tombstone_subjects",
            [erased_at],
        ).df()
    finally:
        con.unregister("_tombstone_subjects")
    _append_parquet(con, Path(erasure_dir) / TOMBSTONES_FILE, rows)
    return len(rows)


def erase_requested_persons(
    con: duckdb.DuckDBPyConnection,
    erasure_dir: Path,
    salt: str,
    parquet_folders: dict[str, Path],
    erased_at: datetime,
    postgres: PostgresTarget | None = None,
) -> ErasureOutcome:
    """Carry out every pending erasure request (see the module docstring for the steps).

    Args:
        con: Writable warehouse connection, not inside a transaction, after the dbt build (the
            identity map resolves each request to its person).
        erasure_dir: Folder of the tombstones and the audit log (``Settings.erasure_dir``).
        salt: The PII salt (``Settings.salt()``).
        parquet_folders: Folders of Parquet files to clean, by label (exports, quarantine).
        erased_at: The time recorded in the tombstones and the audit log.
        postgres: The published PostgreSQL schema, whose history keeps past runs' rows. When it
            cannot be reached the step fails before the audit row is written, so the request
            stays pending and the next run carries it out again (every step is idempotent).

    Returns:
        Counts of what was removed; nothing at all when no request is pending.
    """
    requests = pending_requests(con, erasure_dir)
    if requests.empty:
        return ErasureOutcome(requests=0, records_erased=0)
    subjects = erasure_subjects(con, requests)
    write_tombstones(con, erasure_dir, subjects, salt, erased_at)
    removed = erase_from_warehouse(con, subjects)
    removed |= erase_from_parquet_files(con, parquet_folders, subjects)
    if postgres is not None:
        removed |= erase_from_postgres(postgres, subjects["customer_id"].dropna().unique().tolist())
    outcome = ErasureOutcome(
        requests=len(requests),
        records_erased=int(subjects["customer_record_id"].nunique()),
        rows_removed=removed,
    )
    per_request = subjects.groupby("request_id")["customer_record_id"].nunique()
    audit = pd.DataFrame(
        {
            "request_id": requests["request_id"].astype(str),
            "requested_at": pd.to_datetime(requests["requested_at"]),
            "erased_at": pd.Timestamp(erased_at),
            "records_erased": requests["request_id"].map(per_request).fillna(0).astype("int64"),
            # Rows are removed for all requests of a step together; each row of the log carries
            # the step's total and the stores touched.
            "rows_removed": outcome.total_rows_removed,
            "stores": ", ".join(sorted(removed)),
        }
    )
    _append_parquet(con, Path(erasure_dir) / AUDIT_FILE, audit)
    return outcome


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
            raise PostgresError(
                f"erasing from PostgreSQL at {target.redacted} failed and was rolled back: "
                f"{str(error).strip()}"
            ) from error
    return removed
