"""The published serving tables match docs/output-tables.md: columns, order and types."""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

DOC = Path(__file__).resolve().parents[2] / "docs" / "output-tables.md"


def documented_tables() -> dict[str, list[tuple[str, str]]]:
    """``serving.<table>`` -> [(column, TYPE)] from the page's per-table markdown tables."""
    tables: dict[str, list[tuple[str, str]]] = {}
    current = None
    for line in DOC.read_text().splitlines():
        heading = re.match(r"^## (serving\.\w+)\s*$", line)
        if heading:
            current = heading.group(1)
            tables[current] = []
            continue
        row = re.match(r"^\| (\w+) \| ([A-Z][A-Z0-9\[\]]*) \|", line)
        if current and row:
            tables[current].append((row.group(1), row.group(2)))
    return tables


def test_doc_parses_into_tables() -> None:
    tables = documented_tables()
    assert "serving.customer_scores" in tables
    assert all(len(columns) >= 3 for columns in tables.values())


def test_every_serving_table_matches_the_doc(pipeline_run) -> None:
    documented = documented_tables()
    with duckdb.connect(str(pipeline_run.settings.warehouse_path), read_only=True) as con:
        published = {
            f"serving.{name}"
            for (name,) in con.execute(
                "select table_name from information_schema.tables "
                "where table_schema = 'serving' and table_type = 'BASE TABLE'"
            ).fetchall()
        }
        assert published == set(documented), "every serving table is documented, and only those"
        for table, columns in documented.items():
            actual = [
                (name, type_) for name, type_, *_ in con.execute(f"describe {table}").fetchall()
            ]
            assert actual == columns, table
