"""docs/data-contract.md must describe exactly the tables and columns of ml/data/contract.py."""

from __future__ import annotations

import re
from pathlib import Path

from ml.data.contract import FLAT_TABLES, RAW_TABLES

DOCUMENTED = {**RAW_TABLES, **FLAT_TABLES}

DOC = Path(__file__).resolve().parents[2] / "docs" / "data-contract.md"


def _doc_tables() -> dict[str, list[list[str]]]:
    """Rows of the column table under each ``### `<table>` `` heading."""
    tables: dict[str, list[list[str]]] = {}
    current: str | None = None
    for line in DOC.read_text(encoding="utf-8").splitlines():
        heading = re.fullmatch(r"### `(\w+)`", line.strip())
        if heading:
            current = heading.group(1)
            tables[current] = []
        elif line.startswith("## "):
            current = None
        elif current and line.startswith("| `"):
            tables[current].append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return tables


def test_doc_lists_every_table_and_nothing_else() -> None:
    assert list(_doc_tables()) == list(DOCUMENTED)


def test_doc_columns_match_the_contract() -> None:
    yes_no = {True: "yes", False: "no"}
    for name, rows in _doc_tables().items():
        expected = [
            [
                f"`{c.name}`",
                c.type,
                yes_no[c.required],
                yes_no[c.pii],
                yes_no[c.protected],
                c.description,
            ]
            for c in DOCUMENTED[name].columns
        ]
        assert rows == expected, name


def test_doc_names_the_file_and_key_of_every_table() -> None:
    text = DOC.read_text(encoding="utf-8")
    for table in RAW_TABLES.values():
        assert f"File `{table.name}.csv` or `{table.name}.parquet`. Key: `{table.key}`." in text


def test_the_guide_lists_what_every_model_needs_as_the_catalog_declares() -> None:
    from ml.models.catalog import MODELS

    guide = (DOC.parent / "bring-your-own-data.md").read_text(encoding="utf-8")
    rows = re.findall(r"^\| `(\w+)` \| ([\w, ]*?) \|\s*([\w, ]*?)\s*\|$", guide, flags=re.MULTILINE)
    documented = {model: (needs, uses) for model, needs, uses in rows}
    assert documented == {n.model: (", ".join(n.tables), ", ".join(n.uses)) for n in MODELS}
