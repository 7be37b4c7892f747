"""Incremental dbt runs give exactly the tables of one full rebuild (issue 15, item 6).

A small synthetic CRM is replayed as a CRM would deliver it: the raw tables "as known" at the end
of each day (rows dated before the day; cancellations and ticket resolutions not yet known are
empty). One cold build, then incremental runs day by day, with the faults a daily feed has:
  * a late-arriving day: part of 2026-08-28's events arrive two days later, inside the lookback;
  * two days at once that cross a month, so a new as-of date appears;
  * corrections outside the lookback: an old day's events are deleted for some persons, another
    old day's event types are corrected, an old subscription's plan is corrected, and a copy of an
    old event id arrives on a new day (the copy with the later time wins, on another day);
  * new customer records that join existing persons (identity changes);
  * the erasure of a person active since the first month, between two runs: later deliveries
    leave out their records, as ingest does for a tombstoned record.
After the last run, every staging, intermediate and mart relation must equal a cold build of the
final raw tables row for row, and the scopes must show the runs were incremental.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pytest

from ml.data.contract import RAW_TABLES
from ml.data.erasure import erase_from_warehouse, erasure_subjects
from ml.synthetic.config import SyntheticConfig
from ml.synthetic.generator import generate

MAX_VALID = "2026-09-30 23:59:59"
COLD_DAY = "2026-08-29"  # the raw tables as known at the start of this day
LATE_DAY = "2026-08-28"  # half of its events arrive with the 2026-08-31 delivery
LAYERS = ("staging", "intermediate", "marts")
# Scope models describe one run, not the data: they differ by design.
SCOPE_PREFIXES = ("int_incremental_", "int_change_")

Runner = Callable[..., Any]


def _as_known(con: duckdb.DuckDBPyConnection, day: str, late_rows_arrived: bool) -> None:
    """Replace raw.* with the source rows known at the start of `day`."""
    before = f"timestamp '{day}'"
    known = {
        "customers": f"select * from src_db.src.customers where signed_up_at < {before}",
        "subscriptions": f"""
            select * replace (
                case when ended_at < {before} then ended_at end as ended_at,
                case when ended_at < {before} then end_reason end as end_reason
            )
            from src_db.src.subscriptions where started_at < {before}""",
        "orders": f"select * from src_db.src.orders where ordered_at < {before}",
        "events": f"""
            select * from src_db.src.events
            where occurred_at < {before}
            {
            ""
            if late_rows_arrived
            else f'''and not (
                cast(occurred_at as date) = date '{LATE_DAY}' and hash(event_id) % 2 = 0
            )'''
        }""",
        "support_tickets": f"""
            select * replace (
                case when resolved_at < {before} then resolved_at end as resolved_at,
                case when resolved_at < {before} then satisfaction_score end
                    as satisfaction_score
            )
            from src_db.src.support_tickets where opened_at < {before}""",
    }
    for table in RAW_TABLES.values():
        sql = known.get(table.name, f"select * from src_db.src.{table.name}")
        con.execute(f"create or replace table raw.{table.name} as {sql}")


def _correct_history(con: duckdb.DuckDBPyConnection) -> None:
    """Corrections of days far outside the lookback, delivered with the last run."""
    con.execute(
        "delete from raw.events where cast(occurred_at as date) = date '2026-07-15' "
        "and hash(customer_record_id) % 5 = 0"
    )
    con.execute(
        "update raw.events set event_type = 'feature_use' "
        "where cast(occurred_at as date) = date '2026-06-10' and event_type = 'login' "
        "and hash(event_id) % 3 = 0"
    )
    con.execute(
        "insert into raw.events select event_id, customer_record_id, event_type, "
        "timestamp '2026-09-01 12:00:00' from raw.events "
        "where cast(occurred_at as date) = date '2026-05-01' order by event_id limit 3"
    )
    con.execute(
        "update raw.subscriptions set plan = 'enterprise' where subscription_id = "
        "(select min(subscription_id) from raw.subscriptions where plan <> 'enterprise')"
    )


def _load_source(folder: Path, con: duckdb.DuckDBPyConnection) -> None:
    con.execute("create schema src")
    for table in RAW_TABLES.values():
        path = folder / f"{table.name}.parquet"
        casts = ", ".join(f"cast({c.name} as {c.type}) as {c.name}" for c in table.columns)
        source = f"read_parquet('{path}')" if path.exists() else None
        if source is None:
            columns = ", ".join(f"{c.name} {c.type}" for c in table.columns)
            con.execute(f"create table src.{table.name} ({columns})")
        else:
            con.execute(f"create table src.{table.name} as select {casts} from {source}")


def _deliver(
    warehouse: Path,
    source: Path,
    day: str,
    *,
    late_rows_arrived: bool = True,
    corrected: bool = False,
    erased: tuple[str, ...] = (),
) -> None:
    """Write the raw tables of one delivery into `warehouse`, without the `erased` records."""
    with duckdb.connect(str(warehouse)) as con:
        con.execute(f"attach '{source}' as src_db (read_only)")
        con.execute("create schema if not exists raw")
        _as_known(con, day, late_rows_arrived)
        if corrected:
            _correct_history(con)
        for table in RAW_TABLES.values():
            if erased and "customer_record_id" in {c.name for c in table.columns}:
                con.execute(
                    f"delete from raw.{table.name} where trim(customer_record_id) in "
                    "(select unnest(?::varchar[]))",
                    [list(erased)],
                )


def _erase_the_longest_active_person(warehouse: Path) -> tuple[str, ...]:
    """Carry out an erasure request for the person with events on the most days; return
    their records."""
    with duckdb.connect(str(warehouse)) as con:
        (record,) = _one(
            con,
            "select customer_record_id from raw.events group by all "
            "order by count(distinct cast(occurred_at as date)) desc, 1 limit 1",
        )
        subjects = erasure_subjects(
            con, pd.DataFrame({"request_id": ["ER1"], "customer_record_id": [record]})
        )
        erase_from_warehouse(con, subjects)
    return tuple(subjects["customer_record_id"].str.strip())


def _relations(con: duckdb.DuckDBPyConnection, catalog: str) -> list[tuple[str, str]]:
    rows = con.execute(
        "select table_schema, table_name from information_schema.tables "
        "where table_catalog = ? and table_schema in ('staging', 'intermediate', 'marts')",
        [catalog],
    ).fetchall()
    return sorted((schema, name) for schema, name in rows if not name.startswith(SCOPE_PREFIXES))


def _differences(incremental: Path, full: Path) -> dict[str, tuple[int, int]]:
    con = duckdb.connect(str(incremental), read_only=True)
    con.execute(f"attach '{full}' as full_build (read_only)")
    relations = _relations(con, incremental.stem)
    assert relations == _relations(con, "full_build")
    assert len(relations) > 30
    found: dict[str, tuple[int, int]] = {}
    for schema, name in relations:
        mine = f"{incremental.stem}.{schema}.{name}"
        theirs = f"full_build.{schema}.{name}"
        extra, missing = _one(
            con,
            f"select (select count(*) from (from {mine} except all from {theirs})), "
            f"(select count(*) from (from {theirs} except all from {mine}))",
        )
        if extra or missing:
            found[f"{schema}.{name}"] = (extra, missing)
    con.close()
    return found


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> tuple[Any, ...]:
    row = con.execute(sql).fetchone()
    assert row is not None, sql
    return row


def _scope(warehouse: Path) -> dict[str, object]:
    with duckdb.connect(str(warehouse), read_only=True) as con:
        full_rebuild, rebuild_after = _one(
            con, "select full_rebuild, rebuild_after from intermediate.int_incremental_scope"
        )
        changed = con.execute(
            "select activity_date, raw_changed, history_rewrite "
            "from intermediate.int_incremental_changed_days"
        ).fetchall()
        (persons,) = _one(
            con, "select count(*) from intermediate.int_incremental_changed_customers"
        )
        (customers,) = _one(con, "select count(*) from marts.customers")
    return {
        "full_rebuild": full_rebuild,
        "rebuild_after": str(rebuild_after),
        "days": {str(day): raw for day, raw, _ in changed},
        "rewritten": sorted(str(day) for day, _, rewrite in changed if rewrite),
        "persons": persons,
        "customers": customers,
    }


@pytest.fixture(scope="module")
def replay(tmp_path_factory: pytest.TempPathFactory, dbt: Runner) -> dict[str, object]:
    work = tmp_path_factory.mktemp("incremental")
    generate(
        SyntheticConfig(customers=300, seed=7, leads=0, erasure_requests=0),
        work / "crm",
        work / "truth",
    )
    source = work / "source.duckdb"
    with duckdb.connect(str(source)) as con:
        _load_source(work / "crm", con)

    incremental = work / "incremental.duckdb"
    dbt_vars = {"max_valid_timestamp": MAX_VALID}

    def run(warehouse: Path, *args: str) -> None:
        # the data tests run in the other dbt tests; here only the tables matter
        build = dbt(
            "build",
            warehouse,
            # one dbt folder for every run: dbt parses the project once (partial parsing)
            work / f"dbt-{warehouse.stem}",
            dbt_vars,
            ("--exclude-resource-type", "test", "--exclude-resource-type", "unit_test", *args),
        )
        assert build.returncode == 0, build.output[-4000:]

    scopes = {}
    erased: tuple[str, ...] = ()
    _deliver(incremental, source, COLD_DAY, late_rows_arrived=False)
    run(incremental)
    for day, late_arrived, corrected in (
        ("2026-08-30", False, False),
        ("2026-08-31", True, False),
        ("2026-09-02", True, True),
    ):
        if day == "2026-08-31":
            erased = _erase_the_longest_active_person(incremental)
        _deliver(
            incremental,
            source,
            day,
            late_rows_arrived=late_arrived,
            corrected=corrected,
            erased=erased,
        )
        run(incremental)
        scopes[day] = _scope(incremental)

    full = work / "full.duckdb"
    _deliver(full, source, "2026-09-02", corrected=True, erased=erased)
    run(full)
    return {"incremental": incremental, "full": full, "scopes": scopes, "erased": erased}


def test_incremental_runs_equal_a_full_rebuild(replay: dict[str, object]) -> None:
    differences = _differences(replay["incremental"], replay["full"])  # type: ignore[arg-type]
    assert differences == {}, (
        f"relations that differ (rows only in incremental, only in full): {differences}"
    )


def test_daily_runs_are_incremental(replay: dict[str, object]) -> None:
    scopes: dict[str, dict] = replay["scopes"]  # type: ignore[assignment]
    for day, scope in scopes.items():
        assert scope["full_rebuild"] is False, day
        # only the newest days are recomputed for every person ...
        assert scope["rebuild_after"] >= "2026-05-01", (day, scope["rebuild_after"])
        # ... and the persons whose records, profile, subscriptions, orders or tickets changed
        assert 0 < scope["persons"] < scope["customers"], day
    late = scopes["2026-08-31"]
    assert late["days"].get(LATE_DAY) is True, "the late rows' day was not found changed"


def test_an_erasure_does_not_recompute_history(replay: dict[str, object]) -> None:
    """The erasure took the person's events out of the event-day fingerprints: the run after it
    recomputes the lookback and the late day only, as the run before it did."""
    assert replay["erased"]
    before, after = replay["scopes"]["2026-08-30"], replay["scopes"]["2026-08-31"]  # type: ignore[index]
    assert after["rewritten"] == [] and min(after["days"]) == LATE_DAY
    assert after["rebuild_after"] >= before["rebuild_after"]


def test_changes_older_than_the_lookback_are_found(replay: dict[str, object]) -> None:
    scope: dict = replay["scopes"]["2026-09-02"]  # type: ignore[index]
    for day in ("2026-06-10", "2026-07-15", "2026-09-01"):
        assert scope["days"].get(day) is True, day
    # the copies of the re-delivered event ids live on another day, whose kept row changed
    assert scope["days"].get("2026-05-01") is False
    assert scope["rebuild_after"] == "2026-05-01"
    # and the days older than the lookback are named for the data test that warns about them
    assert scope["rewritten"] == ["2026-06-10", "2026-07-15"]
    assert replay["scopes"]["2026-08-31"]["rewritten"] == []  # type: ignore[index]


def test_a_daily_build_tests_the_rows_it_replaced(replay: dict[str, object], dbt: Runner) -> None:
    """The key and relationship tests of an incremental model read the scope its build replaced
    (macro tested_rows_scope): a duplicate an earlier build left, planted here at the oldest
    as-of date and on the oldest event day, lies outside it. `dbt test` on its own reads every
    row and finds both."""
    incremental: Path = replay["incremental"]  # type: ignore[assignment]
    # beside the replay's warehouse: the same folder holds the same PII salt
    warehouse = incremental.with_name("tested.duckdb")
    shutil.copyfile(incremental, warehouse)
    with duckdb.connect(str(warehouse)) as con:
        con.execute(
            "insert into marts.customer_features select * from marts.customer_features "
            "where as_of_date = (select min(as_of_date) from marts.customer_features) limit 1"
        )
        con.execute(
            "insert into staging.base_crm__events select * from staging.base_crm__events "
            "where rejection_reason is null and occurred_at = "
            "(select min(occurred_at) from staging.base_crm__events) limit 1"
        )
    work = warehouse.parent / "dbt-tested"
    dbt_vars = {"max_valid_timestamp": MAX_VALID}
    unique = (
        "test.crm_signals.unique_combination_customer_features_customer_id__as_of_date.",
        "test.crm_signals.unique_stg_crm__events_event_id.",
    )

    build = dbt("build", warehouse, work, dbt_vars, ("--exclude-resource-type", "unit_test"))
    assert build.returncode == 0 and not build.failures(), build.output[-4000:]
    statuses = {r["unique_id"]: r["status"] for r in build.results}
    assert [s for i, s in statuses.items() if i.startswith(unique)] == ["pass", "pass"]
    with duckdb.connect(str(warehouse), read_only=True) as con:
        (planted,) = _one(
            con,
            "select count(*) - count(distinct (customer_id, as_of_date)) "
            "from marts.customer_features",
        )
        (replaced,) = _one(
            con,
            "select count(*) from marts.customer_features "
            "where as_of_date > (select rebuild_after from intermediate.int_incremental_scope)",
        )
    assert planted == 1 and replaced > 0  # the build replaced rows, not the planted one

    tested = dbt(
        "test", warehouse, work, dbt_vars, ("--select", "customer_features stg_crm__events")
    )
    assert len([i for i in tested.failures() if i.startswith(unique)]) == 2, tested.output[-4000:]
