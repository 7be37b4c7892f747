"""Fixtures of the distributed tier: the dbt tests' DuckDB build of the hand-written fixtures
(tests/data/conftest.py), which the engines here are compared with."""

from __future__ import annotations

from tests.data.conftest import dbt, dbt_build_fixtures, warehouse

__all__ = ["dbt", "dbt_build_fixtures", "warehouse"]
