"""Tombstones: the salted hashes of erased record ids, which keep erased persons out of later loads.

Erasure (``ml.data.erasure``) writes them; ingest (``ml.data.ingest``) reads them and drops every
incoming row whose record id hashes to one (:func:`drop_erased_rows`), so a re-imported export never
brings an erased person back. The file lives outside the warehouse (``<CRM_HOME>/erasure``), so a
rebuilt warehouse does not forget an erasure.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pandas as pd

from ml.core.privacy import keyed_hash_sql, set_salt_variable
from ml.core.warehouse import fetch_row, quote_ident

TOMBSTONES_FILE = "tombstones.parquet"
RECORD_COLUMN = "customer_record_id"
TOMBSTONE_COLUMNS = {
    "record_key_hash": "VARCHAR",
    "request_id": "VARCHAR",
    "erased_at": "TIMESTAMP",
}


@dataclass(frozen=True)
class Tombstones:
    """The salted hashes of erased record ids, and the salt to hash incoming ids with."""

    salt: str
    record_key_hashes: frozenset[str] = frozenset()


def read_parquet_or_empty(path: Path, columns: dict[str, str]) -> pd.DataFrame:
    if path.is_file():
        return pd.read_parquet(path)
    return pd.DataFrame({name: pd.Series(dtype="object") for name in columns})


def read_tombstones(erasure_dir: Path, salt: str) -> Tombstones:
    """The tombstones written so far (none before the first erasure)."""
    frame = read_parquet_or_empty(Path(erasure_dir) / TOMBSTONES_FILE, TOMBSTONE_COLUMNS)
    return Tombstones(salt, frozenset(frame["record_key_hash"].astype(str)))


def _register_hashes(con: duckdb.DuckDBPyConnection, tombstones: Tombstones) -> str:
    name = f"_erased_{uuid.uuid4().hex[:12]}"
    con.register(name, pd.DataFrame({"h": sorted(tombstones.record_key_hashes)}, dtype="object"))
    return name


def drop_erased_rows(
    con: duckdb.DuckDBPyConnection,
    table_sql: str,
    tombstones: Tombstones,
    *,
    record_column: str | None = None,
    raw_line_column: str | None = None,
) -> int:
    """Delete the rows of erased records from a (temporary) table; return how many went.

    Args:
        con: Connection holding the table.
        table_sql: Quoted name of the table (e.g. a temp table of a file being loaded).
        tombstones: The erased records.
        record_column: The column with the customer record id (compared trimmed).
        raw_line_column: A column with whole malformed CSV lines: a line with a field equal to
            an erased record id goes.
    """
    if not tombstones.record_key_hashes or (record_column is None and raw_line_column is None):
        return 0
    set_salt_variable(con, tombstones.salt)
    hashes = _register_hashes(con, tombstones)
    try:
        predicates = []
        if record_column is not None:
            record = f"trim(cast({quote_ident(record_column)} as varchar))"
            predicates.append(f"{keyed_hash_sql(record)} in (select h from {hashes})")
        if raw_line_column is not None:
            fields = f"string_split(replace({quote_ident(raw_line_column)}, '\"', ''), ',')"
            hashed_fields = f"list_transform({fields}, lambda x: {keyed_hash_sql('trim(x)')})"
            predicates.append(
                f"({quote_ident(raw_line_column)} is not null and "
                f"list_has_any({hashed_fields}, (select list(h) from {hashes})))"
            )
        (deleted,) = fetch_row(con, f"delete from {table_sql} where {' or '.join(predicates)}")
    finally:
        con.unregister(hashes)
    return int(deleted)
