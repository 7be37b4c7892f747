"""A source folder as a whole: its tables, how each is loaded, and what each model can use.

A source may hold every contract table (a full CRM), or only some: a lead export, a transaction
log, one flat customer table. Every table is loaded (``load_table``): a contract table by
``ml.data.ingest``, a flat export by ``ml.data.flat_tables``, a table without a file empty (or,
when it was loaded before, as it was). Every model declares the tables it needs (``Needs``); a
run trains and scores the models whose tables hold rows and says, for every other model, which
file would enable it (``model_status``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import duckdb

from ml.core.warehouse import fetch_row, quote_ident
from ml.data.contract import SOURCE_TABLES
from ml.data.flat_tables import load_empty_flat_table, load_flat_table
from ml.data.ingest import RAW_SCHEMA, ingest_table
from ml.data.mapping import MappingError, TableMapping, candidate_files, source_mappings
from ml.data.tombstones import Tombstones


@dataclass(frozen=True)
class TableLoad:
    """What loading one table did.

    Attributes:
        table: The table.
        source_file: The file read, or where it was expected.
        rows_read: Data rows in the file(s).
        rows_loaded: Rows in ``raw.<table>`` after the load.
        rows_quarantined: Rows quarantined.
        rows_erased: Rows of erased persons dropped.
        problems: What a person should know (file, column, rows, examples).
        has_file: The source has a file for the table.
        mode: ``full``, ``append`` or ``unchanged`` (``ml.data.ingest.IngestResult``); flat
            exports are always loaded ``full``.
        files_skipped: Files loaded before and unchanged, not read.
    """

    table: str
    source_file: Path
    rows_read: int
    rows_loaded: int
    rows_quarantined: int
    rows_erased: int
    problems: tuple[str, ...]
    has_file: bool
    mode: str = "full"
    files_skipped: int = 0


def load_mappings(path: Path | None) -> dict[str, TableMapping]:
    """Every source table's mapping from the folder's mapping file (``Settings.mapping_path``).

    Raises:
        MappingError: The file is unreadable or a section is invalid.
    """
    return source_mappings(path, SOURCE_TABLES)


def load_table(
    con: duckdb.DuckDBPyConnection,
    mapping: TableMapping,
    source_dir: Path,
    quarantine_dir: Path,
    tombstones: Tombstones | None = None,
    *,
    full_refresh: bool = False,
) -> TableLoad:
    """Load one table of the source, whatever its kind (see the module docstring).

    A contract table is loaded incrementally (only new files are read, ``ml.data.manifest``)
    unless ``full_refresh``; a flat export is small and always read whole.

    Raises:
        ContractError: The file cannot be used; the last good table stays.
        MappingError: The mapping does not fit the file; nothing is written.
    """
    table = mapping.table
    has_file = bool(candidate_files(mapping, source_dir))
    if not table.flat:
        result = ingest_table(
            con, table, source_dir, quarantine_dir, tombstones, mapping, full_refresh=full_refresh
        )
        return TableLoad(
            table.name,
            result.source_file,
            result.rows_read,
            result.rows_loaded,
            result.rows_quarantined,
            result.rows_erased,
            result.problems,
            has_file,
            result.mode,
            result.files_skipped,
        )
    if not has_file:
        load_empty_flat_table(con, table)
        expected = source_dir / (mapping.file or f"{table.name}.csv")
        return TableLoad(
            table.name, expected, 0, 0, 0, 0, (f"{table.name}: no export; loaded empty",), False
        )
    if mapping.is_default:
        raise MappingError(
            f"{table.name}: an export is in {source_dir} but the mapping has no "
            f"'{table.name}' section: a flat export needs one to say which column is the id and "
            "which the outcome (docs/bring-your-own-data.md)"
        )
    flat = load_flat_table(con, mapping, source_dir, quarantine_dir, tombstones=tombstones)
    return TableLoad(
        table.name,
        flat.source_file,
        flat.rows_read,
        flat.rows_loaded,
        flat.rows_quarantined,
        flat.rows_erased,
        flat.problems,
        True,
    )


def table_rows(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Rows of every source table in ``raw`` (0 for a table never loaded)."""
    present = {
        str(name)
        for (name,) in con.execute(
            "select table_name from information_schema.tables where table_schema = ?",
            [RAW_SCHEMA],
        ).fetchall()
    }
    rows = {}
    for name in SOURCE_TABLES:
        if name in present:
            (count,) = fetch_row(con, f"select count(*) from {RAW_SCHEMA}.{quote_ident(name)}")
            rows[name] = int(count)
        else:
            rows[name] = 0
    return rows


@dataclass(frozen=True)
class Needs:
    """The source tables a model needs rows in, and the ones it uses when they are there.

    Attributes:
        model: The model (its registered name, or its package for models without one).
        tables: Tables that must hold rows for the model to train or score.
        uses: Tables that improve it when present (their absence does not skip it).
    """

    model: str
    tables: tuple[str, ...]
    uses: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        unknown = [t for t in (*self.tables, *self.uses) if t not in SOURCE_TABLES]
        if unknown:
            raise ValueError(f"{self.model} needs unknown table(s) {unknown}")

    def missing(self, rows: Mapping[str, int]) -> tuple[str, ...]:
        """The needed tables without rows."""
        return tuple(t for t in self.tables if not rows.get(t))

    def skip_reason(self, rows: Mapping[str, int]) -> str | None:
        """Why the model cannot run on these tables, with the files that would enable it; or
        None when it can."""
        missing = self.missing(rows)
        if not missing:
            return None
        files = [f"{t}.csv" for t in missing if not SOURCE_TABLES[t].flat]
        flat = [t for t in missing if SOURCE_TABLES[t].flat]
        hints = []
        if files:
            hints.append(
                f"add {' and '.join(files)} (or map your "
                f"export{'s' if len(files) > 1 else ''} in mapping.yaml)"
            )
        hints += [f"add an export with a '{t}' section in mapping.yaml" for t in flat]
        return f"{self.model} skipped: it needs {', '.join(missing)}; {'; '.join(hints)}"


def model_status(needs: Sequence[Needs], rows: Mapping[str, int]) -> list[tuple[str, str]]:
    """``(model, "runs" or why it is skipped)`` per model, for run summaries and the UI."""
    return [(n.model, n.skip_reason(rows) or "runs") for n in needs]
