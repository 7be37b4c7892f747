"""File names built from table names or settings stay in their folder (CRM_HOME for state)."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from ml.core.settings import PathEscapeError, Settings, path_within
from ml.core.warehouse import connect
from ml.data.contract import RAW_TABLES
from ml.data.ingest import ingest_table


@pytest.mark.parametrize(
    "parts",
    [
        ("../escape.parquet",),
        ("reports", "..", "..", "escape"),
        ("/etc/passwd",),
        ("exports/../../escape",),
        (".",),
    ],
)
def test_a_path_leaving_home_fails_clearly(tmp_path: Path, parts: tuple[str, ...]) -> None:
    settings = Settings(home=tmp_path / "home")
    with pytest.raises(PathEscapeError, match=r"leads outside .*home") as raised:
        settings.state_path(*parts)
    assert "must not contain '..' or an absolute path" in str(raised.value)


@pytest.mark.parametrize(
    ("parts", "expected"),
    [
        (("quarantine", "customers.parquet"), "quarantine/customers.parquet"),
        (("reports", "churn", "run-1", "plot.png"), "reports/churn/run-1/plot.png"),
        # '..' that stays inside is fine: only the result counts.
        (("reports", "..", "exports", "x.parquet"), "exports/x.parquet"),
    ],
)
def test_a_path_inside_home_is_absolute_and_unchanged(
    tmp_path: Path, parts: tuple[str, ...], expected: str
) -> None:
    home = tmp_path / "home"
    assert path_within(home, *parts) == home / expected
    # A relative home is made absolute (dbt and DuckDB run from other working directories).
    assert path_within(Path("var"), *parts).is_absolute()


def test_ingest_refuses_a_table_name_that_leaves_its_folders(tmp_path: Path) -> None:
    source, quarantine = tmp_path / "source", tmp_path / "home" / "quarantine"
    source.mkdir()
    (tmp_path / "customers.csv").write_text(
        "customer_record_id,signed_up_at\nc1,2025-01-01\n"
    )  # what '../customers' would read
    hostile = replace(RAW_TABLES["customers"], name="../customers")
    with connect(tmp_path / "warehouse.duckdb") as con, pytest.raises(PathEscapeError):
        ingest_table(con, hostile, source, quarantine)
    assert not (tmp_path / "home" / "customers.parquet").exists()
