"""docs/architecture.md names every module of the code, and only files that exist."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "architecture.md"
PACKAGES = ("ml", "orchestration", "expectations")


def _modules() -> set[str]:
    return {
        str(path.relative_to(ROOT))
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
        if path.name != "__init__.py" and "__pycache__" not in path.parts
    }


def _named_paths() -> set[str]:
    return set(
        re.findall(
            r"`((?:ml|orchestration|expectations|dbt_project|docs)/[\w/.]+)`", DOC.read_text()
        )
    )


def test_every_module_has_a_row() -> None:
    rows = set(re.findall(r"^\| `([\w/]+\.py)` \|", DOC.read_text(), flags=re.MULTILINE))
    assert sorted(_modules() - rows) == [], "modules without a row in docs/architecture.md"


def test_every_named_path_exists_in_the_repository() -> None:
    missing = sorted(
        p for p in _named_paths() if "<" not in p and not (ROOT / p.rstrip("/")).exists()
    )
    assert missing == []
    assert "../" not in DOC.read_text(), "the page points at files outside the repository"
