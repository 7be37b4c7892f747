"""What a source folder gives the models: ``crm-signals check-source <folder>``.

The folder is loaded through its mapping into an in-memory DuckDB (quarantine files in a temporary
folder): nothing is written to the warehouse, the registry or CRM_HOME. The check reports, per
table, the file read, rows loaded and quarantined with every problem (file, column, rows,
examples), and per model whether a run would train it or which file would enable it.
"""

from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb

from ml.data.sources import load_mappings, load_table, model_status, table_rows
from ml.models.catalog import MODELS


def load_source(
    con: duckdb.DuckDBPyConnection, source_dir: Path, mapping_path: Path | None, scratch: Path
) -> list[dict[str, Any]]:
    """Load every table of the folder into ``con`` (quarantine files under ``scratch``).

    Returns:
        Per table with a file: ``table``, ``file``, ``rows_read``, ``rows_loaded``,
        ``rows_quarantined``, ``problems``; a file that cannot be used has ``error`` instead
        (reported, not raised, so one bad file does not hide the others).

    Raises:
        MappingError: The mapping file itself cannot be used.
    """
    loads: list[dict[str, Any]] = []
    for name, mapping in load_mappings(mapping_path).items():
        try:
            result = load_table(con, mapping, source_dir, scratch / "quarantine")
        except ValueError as error:  # ContractError, MappingError of one table
            loads.append({"table": name, "error": str(error)})
            continue
        if not result.has_file:
            continue
        loads.append(
            {
                "table": name,
                "file": result.source_file.name,
                "rows_read": result.rows_read,
                "rows_loaded": result.rows_loaded,
                "rows_quarantined": result.rows_quarantined,
                "problems": list(result.problems),
            }
        )
    return loads


@dataclass(frozen=True)
class SourceCheck:
    """The result of :func:`check_source`.

    Attributes:
        loads: Per table with a file, as :func:`load_source` returns it.
        models: ``(model, "runs" or why it is skipped)``.
    """

    loads: list[dict[str, Any]]
    models: list[tuple[str, str]]

    @property
    def usable(self) -> bool:
        """Every file loaded and at least one model would run."""
        return not any("error" in load for load in self.loads) and any(
            status == "runs" for _, status in self.models
        )

    def text(self) -> str:
        lines = ["tables:"]
        for load in self.loads:
            if "error" in load:
                lines.append(f"  {load['table']}: CANNOT BE USED: {load['error']}")
                continue
            lines.append(
                f"  {load['table']}: {load['file']}: {load['rows_loaded']} of {load['rows_read']} "
                f"rows loaded, {load['rows_quarantined']} quarantined"
            )
            lines += [f"    - {problem}" for problem in load["problems"]]
        if not self.loads:
            lines.append("  none: no file of a contract table and no mapped export in the folder")
        lines.append("models:")
        lines += [
            f"  {model}: {'would run' if status == 'runs' else status}"
            for model, status in self.models
        ]
        return "\n".join(lines)


def check_source(source_dir: Path, mapping_path: Path | None) -> SourceCheck:
    """Load the folder into a scratch DuckDB and say what a run would do with it."""
    with tempfile.TemporaryDirectory() as scratch, duckdb.connect() as con:
        con.execute("SET TimeZone = 'UTC'")
        loads = load_source(con, Path(source_dir), mapping_path, Path(scratch))
        return SourceCheck(loads, model_status(MODELS, table_rows(con)))
