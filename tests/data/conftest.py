"""Fixtures for the dbt tests: a DuckDB warehouse in tmp_path with hand-written raw fixtures.

The raw tables are created from ml/data/contract.py with plain DuckDB SQL (the same typed tables the
ingest step writes), then the real dbt project is built into them with the real dbt CLI.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest

from ml.data.contract import RAW_TABLES

REPO_ROOT = Path(__file__).resolve().parents[2]
DBT_PROJECT_DIR = REPO_ROOT / "dbt_project"
FIXTURES_DIR = Path(__file__).parent / "fixtures"
# Rows after this are future-dated. Fixed so the fixtures give the same result on every day.
MAX_VALID_TIMESTAMP = "2025-12-31 23:59:59"


@dataclass(frozen=True)
class DbtBuild:
    """The outcome of one `dbt build`.

    Attributes:
        returncode: Exit code of the dbt process.
        output: Its stdout and stderr, for failure messages.
        results: The `results` of target/run_results.json (one dict per node).
    """

    returncode: int
    output: str
    results: tuple[dict, ...]

    def failures(self) -> list[str]:
        """Unique ids of the nodes that errored or failed (warnings are not failures)."""
        return [r["unique_id"] for r in self.results if r["status"] in ("error", "fail")]


def create_raw_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Create empty raw.<table> tables with exactly the contract's columns and types."""
    con.execute("create schema if not exists raw")
    for table in RAW_TABLES.values():
        columns = ", ".join(f"{c.name} {c.type}" for c in table.columns)
        con.execute(f"create or replace table raw.{table.name} ({columns})")


def load_raw_fixtures(con: duckdb.DuckDBPyConnection, folder: Path = FIXTURES_DIR) -> None:
    """(Re)create the raw tables and fill them from `<folder>/<table>.csv`, cast to contract types."""
    create_raw_tables(con)
    for table in RAW_TABLES.values():
        casts = ", ".join(f"cast({c.name} as {c.type}) as {c.name}" for c in table.columns)
        con.execute(
            f"insert into raw.{table.name} select {casts} "
            "from read_csv(?, header = true, all_varchar = true)",
            [str(folder / f"{table.name}.csv")],
        )


def run_dbt(
    command: str,
    warehouse: Path,
    work_dir: Path,
    dbt_vars: Mapping[str, object] | None = None,
    extra_args: tuple[str, ...] = (),
) -> DbtBuild:
    """Run the real dbt CLI on the project against `warehouse`.

    Target and log folders go to `work_dir`, so parallel test runs never share dbt state.
    """
    all_vars: dict[str, object] = {
        "warehouse_path": str(warehouse),
        "max_valid_timestamp": MAX_VALID_TIMESTAMP,
    }
    all_vars.update(dbt_vars or {})
    target_path = work_dir / "target"
    env = {
        **os.environ,
        "CRM_THREADS": "2",
        "CRM_DUCKDB_MEMORY_LIMIT": "1GB",
        "DBT_SEND_ANONYMOUS_USAGE_STATS": "false",
        "DO_NOT_TRACK": "1",
    }
    dbt = Path(sys.executable).parent / "dbt"
    process = subprocess.run(
        [
            str(dbt),
            command,
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
            "--target-path",
            str(target_path),
            "--log-path",
            str(work_dir / "logs"),
            "--vars",
            json.dumps(all_vars),
            *extra_args,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    run_results = target_path / "run_results.json"
    results = tuple(json.loads(run_results.read_text())["results"]) if run_results.exists() else ()
    return DbtBuild(process.returncode, process.stdout + process.stderr, results)


@pytest.fixture(scope="session")
def dbt_build_fixtures(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Path, DbtBuild]]:
    """Build the project once per session on the hand-written fixtures."""
    work_dir = tmp_path_factory.mktemp("dbt_fixtures")
    warehouse = work_dir / "warehouse.duckdb"
    with duckdb.connect(str(warehouse)) as con:
        load_raw_fixtures(con)
    build = run_dbt("build", warehouse, work_dir)
    yield warehouse, build


@pytest.fixture(scope="session")
def load_raw() -> Callable[..., None]:
    """The fixture loader, for tests that alter the raw data before their own build."""
    return load_raw_fixtures


@pytest.fixture(scope="session")
def dbt() -> Callable[..., DbtBuild]:
    """The dbt runner, for tests that need a build of their own."""
    return run_dbt


@pytest.fixture(scope="session")
def warehouse(dbt_build_fixtures: tuple[Path, DbtBuild]) -> Path:
    """The built warehouse; fails the dependent tests when the build failed."""
    path, build = dbt_build_fixtures
    assert build.returncode == 0 and not build.failures(), build.output[-5000:]
    return path


@pytest.fixture
def query(warehouse: Path) -> Iterator[Callable[[str], list[tuple]]]:
    """Run a query on the built warehouse through a read-only connection."""
    con = duckdb.connect(str(warehouse), read_only=True)

    def _query(sql: str) -> list[tuple]:
        return con.execute(sql).fetchall()

    yield _query
    con.close()
