"""docs/output-tables.md, the serving-table registry and the published tables agree.

The registry (``ml.serving.tables``) is the one list; the page documents it and the real tables
are written from it: same tables, columns, order and types in all three.
"""

from __future__ import annotations

import re
from pathlib import Path

import duckdb

from ml.serving.tables import SERVING_TABLES

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


def test_the_page_documents_exactly_the_registry() -> None:
    registry = {table.qualified_name: list(table.columns) for table in SERVING_TABLES}
    assert documented_tables() == registry


def test_every_published_table_is_in_the_registry_with_its_types(pipeline_run) -> None:
    with duckdb.connect(str(pipeline_run.settings.warehouse_path), read_only=True) as con:
        published = {
            f"serving.{name}"
            for (name,) in con.execute(
                "select table_name from information_schema.tables "
                "where table_schema = 'serving' and table_type = 'BASE TABLE'"
            ).fetchall()
        }
        assert published == {table.qualified_name for table in SERVING_TABLES}
        for table in SERVING_TABLES:
            actual = [
                (name, type_)
                for name, type_, *_ in con.execute(f"describe {table.qualified_name}").fetchall()
            ]
            assert actual == list(table.columns), table.name
