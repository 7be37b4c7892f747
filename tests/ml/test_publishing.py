"""Publishing the serving tables to a real PostgreSQL server (tests/postgres_server.py)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import duckdb
import pandas as pd
import psycopg2
import pytest

from ml.core.postgres import PostgresError, PostgresTarget, redact_url
from ml.core.warehouse import connect, publish_table
from ml.data.erasure import erase_from_postgres
from ml.serving.publishing import publish_to_postgres
from tests.postgres_server import fresh_database

SCHEMA = "crm_signals"
RUN_AT = datetime(2026, 9, 1, 6, 0)


def _scores(as_of: date, customers: int, probability: float, version: str = "1") -> pd.DataFrame:
    ids = [f"C-{i:05d}" for i in range(customers)]
    return pd.DataFrame(
        {
            "customer_id": ids,
            "as_of_date": [as_of] * customers,
            "scored_at": pd.Series([pd.Timestamp(RUN_AT)] * customers, dtype="datetime64[us]"),
            "churn_probability": [probability] * customers,
            "churn_risk_band": ["low"] * customers,
            "churn_top_drivers": ['[{"feature": "tickets_30d"}]'] * customers,
            # Text that CSV must carry intact: quotes, commas, a newline, the empty string.
            "churn_reason": ['2 tickets, "urgent"\nlast week', "", None][:1] * customers,
            "model_name": ["churn"] * customers,
            "model_version": [version] * customers,
        }
    )


def _leads(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lead_id": [f"L{i}" for i in range(n)],
            "scored_at": pd.Series([pd.Timestamp(RUN_AT)] * n, dtype="datetime64[us]"),
            "score": pd.Series([i % 100 for i in range(n)], dtype="int32"),
            "conversion_probability": [(i % 100) / 100 for i in range(n)],
            "model_version": ["3"] * n,
        }
    )


@pytest.fixture
def warehouse(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    with connect(tmp_path / "warehouse.duckdb") as con:
        publish_table(con, _scores(date(2026, 8, 1), 50, 0.2), "serving", "customer_scores")
        publish_table(
            con,
            _scores(date(2026, 9, 1), 40, 0.3),
            "serving",
            "customer_scores",
            replace_where="as_of_date = DATE '2026-09-01'",
        )
        publish_table(con, _leads(30), "serving", "lead_scores")
        con.execute(
            "create view serving.customer_scores_latest as select * from serving.customer_scores"
        )
        yield con


@pytest.fixture
def target() -> Iterator[PostgresTarget]:
    with fresh_database() as url:
        yield PostgresTarget(url, SCHEMA)


def _pg(target: PostgresTarget, query: str, params: list | None = None) -> list[tuple]:
    with psycopg2.connect(target.url) as con, con.cursor() as cur:
        cur.execute(query, params)
        rows = cur.fetchall()
    con.close()
    return rows


def _publish(duck: duckdb.DuckDBPyConnection, target: PostgresTarget, tmp_path: Path, run: str):
    return publish_to_postgres(duck, target, run, RUN_AT, tmp_path / "scratch")


def test_publish_writes_newest_snapshot_with_types_indexes_and_history(
    warehouse: duckdb.DuckDBPyConnection, target: PostgresTarget, tmp_path: Path
) -> None:
    result = _publish(warehouse, target, tmp_path, "run-1")

    # Base tables only (the view is DuckDB's), the newest as-of date only.
    assert result.rows == {"customer_scores": 40, "lead_scores": 30}
    assert _pg(target, f"select distinct as_of_date from {SCHEMA}.customer_scores") == [
        (date(2026, 9, 1),)
    ]
    published = pd.DataFrame(
        _pg(target, f"select * from {SCHEMA}.customer_scores order by customer_id"),
        columns=[c for c in _scores(date(2026, 9, 1), 1, 0).columns],
    )
    expected = warehouse.execute(
        "select * from serving.customer_scores where as_of_date = DATE '2026-09-01' "
        "order by customer_id"
    ).df()
    assert published["churn_reason"].tolist() == expected["churn_reason"].tolist()
    assert published["churn_probability"].tolist() == expected["churn_probability"].tolist()
    types = dict(
        _pg(
            target,
            "select column_name, data_type from information_schema.columns "
            "where table_schema = %s and table_name = 'customer_scores'",
            [SCHEMA],
        )
    )
    assert types["as_of_date"] == "date"
    assert types["scored_at"] == "timestamp without time zone"
    assert types["churn_probability"] == "double precision"
    indexes = {
        r[0]
        for r in _pg(target, "select indexname from pg_indexes where schemaname = %s", [SCHEMA])
    }
    assert {
        "customer_scores_customer_id_idx",
        "customer_scores_as_of_date_idx",
        "lead_scores_lead_id_idx",
    } <= indexes
    # No staging table is left behind.
    tables = {
        r[0] for r in _pg(target, "select tablename from pg_tables where schemaname = %s", [SCHEMA])
    }
    assert tables == {"customer_scores", "lead_scores", "score_history"}

    history = _pg(
        target,
        f"select score_name, model_name, model_version, as_of_date, count(*), min(run_id) "
        f"from {SCHEMA}.score_history group by 1, 2, 3, 4 order by 1",
    )
    assert history == [
        ("churn_probability", "churn", "1", date(2026, 9, 1), 40, "run-1"),
        ("conversion_probability", "lead_scoring", "3", RUN_AT.date(), 30, "run-1"),
    ]
    assert result.history_rows == 70


def test_rerun_of_the_same_day_replaces_its_history_and_a_new_day_appends(
    warehouse: duckdb.DuckDBPyConnection, target: PostgresTarget, tmp_path: Path
) -> None:
    _publish(warehouse, target, tmp_path, "run-1")
    _publish(warehouse, target, tmp_path, "run-2")  # same as-of date and versions: a rerun
    assert _pg(target, f"select count(*), min(run_id) from {SCHEMA}.score_history") == [
        (70, "run-2")
    ]

    publish_table(
        warehouse,
        _scores(date(2026, 10, 1), 45, 0.4),
        "serving",
        "customer_scores",
        replace_where="as_of_date = DATE '2026-10-01'",
    )
    _publish(warehouse, target, tmp_path, "run-3")
    assert _pg(
        target,
        f"select as_of_date, count(*) from {SCHEMA}.score_history "
        "where score_name = 'churn_probability' group by 1 order by 1",
    ) == [(date(2026, 9, 1), 40), (date(2026, 10, 1), 45)]
    assert _pg(target, f"select count(*) from {SCHEMA}.customer_scores") == [(45,)]


def test_a_concurrent_reader_sees_the_old_or_the_new_table_never_empty_or_half(
    warehouse: duckdb.DuckDBPyConnection, target: PostgresTarget, tmp_path: Path
) -> None:
    _publish(warehouse, target, tmp_path, "run-0")
    sizes = {40: 0.3, 4000: 0.7}  # each size has its own probability: a mix would show
    seen: list[tuple[int, float, float]] = []
    errors: list[BaseException] = []
    stop = threading.Event()

    def read() -> None:
        try:
            con = psycopg2.connect(target.url)
            con.autocommit = True  # each query its own transaction, as a BI tool's would be
            with con.cursor() as cur:
                while not stop.is_set():
                    cur.execute(
                        f"select count(*), min(churn_probability), max(churn_probability) "
                        f"from {SCHEMA}.customer_scores"
                    )
                    seen.append(cur.fetchone())
            con.close()
        except BaseException as error:
            errors.append(error)

    reader = threading.Thread(target=read)
    reader.start()
    try:
        for i in range(8):
            size = list(sizes)[i % 2 == 0]
            publish_table(
                warehouse,
                _scores(date(2026, 9, 1), size, sizes[size]),
                "serving",
                "customer_scores",
                replace_where="as_of_date = DATE '2026-09-01'",
            )
            _publish(warehouse, target, tmp_path, f"run-{i + 1}")
    finally:
        stop.set()
        reader.join(timeout=30)
    assert not errors, errors
    assert len(seen) > 20
    observed = {(n, lo, hi) for n, lo, hi in seen}
    assert observed <= {(n, p, p) for n, p in sizes.items()}, observed
    assert {n for n, _, _ in observed} == set(sizes)  # the reader saw both versions


def test_a_publisher_killed_mid_publish_leaves_the_previous_tables(
    warehouse: duckdb.DuckDBPyConnection, target: PostgresTarget, tmp_path: Path
) -> None:
    _publish(warehouse, target, tmp_path, "run-1")
    publish_table(
        warehouse,
        _scores(date(2026, 9, 1), 400, 0.9),
        "serving",
        "customer_scores",
        replace_where="as_of_date = DATE '2026-09-01'",
    )
    warehouse.close()
    # A reader holds a lock on the published table, so the publisher loads everything and then
    # waits at the swap: it is killed there, mid-transaction.
    blocker = psycopg2.connect(target.url)
    blocker_cur = blocker.cursor()
    blocker_cur.execute(f"lock table {SCHEMA}.customer_scores in access share mode")
    script = (
        "import sys, datetime, pathlib\n"
        "from ml.core.postgres import PostgresTarget\nfrom ml.serving.publishing import publish_to_postgres\n"
        "from ml.core.warehouse import connect\n"
        "with connect(pathlib.Path(sys.argv[1]), read_only=True) as duck:\n"
        "    publish_to_postgres(duck, PostgresTarget(sys.argv[2], sys.argv[3]), 'killed',\n"
        "        datetime.datetime(2026, 9, 1), pathlib.Path(sys.argv[4]))\n"
    )
    publisher = subprocess.Popen(
        [
            sys.executable,
            "-c",
            script,
            str(tmp_path / "warehouse.duckdb"),
            target.url,
            SCHEMA,
            str(tmp_path / "scratch"),
        ],
        cwd=Path(__file__).resolve().parents[2],
        start_new_session=True,
    )
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            waiting = _pg(
                target,
                "select count(*) from pg_stat_activity "
                "where application_name = 'crm_signals' and wait_event_type = 'Lock'",
            )
            if waiting[0][0]:
                break
            assert publisher.poll() is None, "the publisher ended before reaching the swap"
            time.sleep(0.2)
        else:
            pytest.fail("the publisher never reached the swap")
        os.killpg(publisher.pid, signal.SIGKILL)
        publisher.wait(timeout=30)
    finally:
        blocker.rollback()
        blocker.close()
    assert _pg(
        target, f"select count(*), max(churn_probability) from {SCHEMA}.customer_scores"
    ) == [(40, 0.3)]
    assert _pg(target, f"select count(*), max(run_id) from {SCHEMA}.score_history") == [
        (70, "run-1")
    ]
    tables = {
        r[0] for r in _pg(target, "select tablename from pg_tables where schemaname = %s", [SCHEMA])
    }
    assert tables == {"customer_scores", "lead_scores", "score_history"}


def test_server_down_fails_clearly_without_the_password(
    warehouse: duckdb.DuckDBPyConnection, tmp_path: Path
) -> None:
    down = PostgresTarget("postgresql://crm:s3cret-Passw0rd@127.0.0.1:1/crm", SCHEMA)
    with pytest.raises(PostgresError) as caught:
        _publish(warehouse, down, tmp_path, "run-1")
    message = str(caught.value)
    assert "cannot connect to PostgreSQL at postgresql://crm:***@127.0.0.1:1/crm" in message
    assert "s3cret" not in message
    assert "s3cret" not in repr(down)


def test_erasure_removes_the_customers_from_every_published_table(
    warehouse: duckdb.DuckDBPyConnection, target: PostgresTarget, tmp_path: Path
) -> None:
    _publish(warehouse, target, tmp_path, "run-1")
    removed = erase_from_postgres(target, ["C-00001", "C-00002", "C-99999"])
    assert removed == {
        f"postgres:{SCHEMA}.customer_scores": 2,
        f"postgres:{SCHEMA}.score_history": 2,
    }
    assert _pg(
        target,
        f"select count(*) from {SCHEMA}.score_history where entity_id in ('C-00001', 'C-00002')",
    ) == [(0,)]


def test_redact_url_and_schema_validation() -> None:
    assert redact_url("postgresql://u:p%40ss@db:5433/x") == "postgresql://u:***@db:5433/x"
    assert redact_url("postgresql://u@db/x") == "postgresql://u@db/x"
    with pytest.raises(ValueError, match="not a plain lower-case identifier"):
        PostgresTarget("postgresql://u@db/x", 'crm"; drop schema public; --')


def test_a_value_the_run_could_not_make_is_published_empty_and_kept_out_of_history(
    warehouse: duckdb.DuckDBPyConnection, target: PostgresTarget, tmp_path: Path
) -> None:
    # Customer value from a transaction log without amounts: purchases, no value.
    n = 12
    value = pd.DataFrame(
        {
            "customer_id": [f"C-{i}" for i in range(n)],
            "as_of_date": [date(2026, 9, 1)] * n,
            "expected_purchases_12m": [1.5] * n,
            "expected_value_12m": pd.Series([None] * n, dtype="float64"),
            "probability_alive": [0.8] * n,
            "method": ["bgnbd"] * n,
            "model_version": ["2"] * n,
        }
    )
    publish_table(warehouse, value, "serving", "customer_value")
    result = _publish(warehouse, target, tmp_path, "run-1")
    assert result.rows["customer_value"] == n
    assert _pg(
        target,
        f"select count(*), count(expected_value_12m), sum(expected_purchases_12m) "
        f"from {SCHEMA}.customer_value",
    ) == [(n, 0, 1.5 * n)]
    names = {r[0] for r in _pg(target, f"select distinct score_name from {SCHEMA}.score_history")}
    assert "expected_value_12m" not in names
    assert result.history_rows == 70  # the churn and lead scores only
