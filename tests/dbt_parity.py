"""The dbt project built on another engine equals the DuckDB build: the checks both parity tests
(tests/data/test_dbt_postgres.py, tests/distributed/test_dbt_spark.py) make.
"""

from __future__ import annotations

import decimal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

LAYERS = ("staging", "intermediate", "marts")

# Relation name -> ([(column, type)], rows).
Relations = dict[str, tuple[list[tuple[str, str]], list[tuple]]]


def duckdb_relations(warehouse: Path) -> Relations:
    """Every staging, intermediate and mart relation of a DuckDB build."""
    relations = {}
    with duckdb.connect(str(warehouse), read_only=True) as con:
        names = con.execute(
            "select table_schema, table_name from information_schema.tables "
            f"where table_schema in {LAYERS} order by 1, 2"
        ).fetchall()
        for schema, table in names:
            columns = con.execute(
                "select column_name, lower(data_type) from information_schema.columns "
                "where table_schema = ? and table_name = ? order by ordinal_position",
                [schema, table],
            ).fetchall()
            rows = con.execute(f'select * from "{schema}"."{table}"').fetchall()
            relations[f"{schema}.{table}"] = (columns, rows)
    return relations


def assert_same_nodes(build: Any, duckdb_build: Any, twin_suffix: str) -> None:
    """The build ran every model, seed, data test and unit test of the DuckDB build, all passing.

    The unit test whose expected hashes are DuckDB SQL runs as its twin named ``..._<suffix>``.
    """
    assert build.returncode == 0, build.output[-5000:]
    assert build.failures() == []

    def nodes(results: tuple[dict, ...], kind: str) -> set[str]:
        return {r["unique_id"] for r in results if r["unique_id"].startswith(kind + ".")}

    # The same models, seeds and data tests as on DuckDB: nothing is skipped on the engine.
    for kind in ("model", "seed", "test"):
        assert nodes(build.results, kind) == nodes(duckdb_build.results, kind), kind
    unit_tests = {
        r["unique_id"]: r["status"]
        for r in build.results
        if r["unique_id"].startswith("unit_test.")
    }
    twin = (
        "unit_test.crm_signals.base_crm__customers."
        f"test_customers_email_phone_country_are_standardised_{twin_suffix}"
    )
    assert twin in unit_tests
    assert {u.removesuffix(f"_{twin_suffix}") for u in unit_tests} == nodes(
        duckdb_build.results, "unit_test"
    )
    assert set(unit_tests.values()) == {"pass"}


def _normalised(value: Any) -> Any:
    # Drivers give numeric as Decimal; DuckDB gives DOUBLE as float: compare as numbers.
    if isinstance(value, decimal.Decimal):
        return float(value)
    return value


def _frame(columns: list[str], rows: list[tuple]) -> pd.DataFrame:
    frame = pd.DataFrame([[_normalised(v) for v in row] for row in rows], columns=columns)
    if frame.empty:
        return frame
    return frame.sort_values(by=columns, na_position="last", kind="mergesort").reset_index(
        drop=True
    )


def assert_relations_equal(
    expected: Relations, actual: Relations, type_family: Callable[[str], str]
) -> None:
    """The same relations, columns (names; types by family) and rows, in any row order."""
    assert sorted(actual) == sorted(expected)
    # The fixtures must reach the marts, or equal empty tables would prove nothing.
    for key in ("marts.customer_features", "marts.customer_identity_map", "marts.churn_labels"):
        assert len(expected[key][1]) > 0, key
    for name, (duck_columns, duck_rows) in expected.items():
        engine_columns, engine_rows = actual[name]
        assert [c for c, _ in engine_columns] == [c for c, _ in duck_columns], name
        assert [type_family(t) for _, t in engine_columns] == [
            type_family(t) for _, t in duck_columns
        ], name
        columns = [c for c, _ in duck_columns]
        # The incremental fingerprints hash rows with each engine's own hash function
        # (macro row_checksum): equal within an engine, never across; the rest must match.
        kept = [i for i, c in enumerate(columns) if "checksum" not in c]
        compared = [columns[i] for i in kept]
        pd.testing.assert_frame_equal(
            _frame(compared, [tuple(row[i] for i in kept) for row in engine_rows]),
            _frame(compared, [tuple(row[i] for i in kept) for row in duck_rows]),
            check_dtype=False,
            check_exact=False,
            rtol=1e-9,
            obj=name,
        )
