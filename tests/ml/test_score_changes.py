"""The change feed (serving.score_changes) on small tables through real DuckDB and PostgreSQL."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import date, datetime
from pathlib import Path

import duckdb
import pandas as pd
import psycopg2
import pytest

from ml.core.postgres import PostgresTarget
from ml.core.warehouse import connect
from ml.data.erasure import erase_from_parquet_files, erase_from_postgres, erase_from_warehouse
from ml.serving.changes import SCORE_CHANGES, score_changes
from ml.serving.publishing import publish_to_postgres
from ml.serving.tables import publish, serving_table
from tests.postgres_server import fresh_database

AS_OF = date(2026, 9, 1)
FIRST_AT = datetime(2026, 9, 1, 6, 0)
SECOND_AT = datetime(2026, 9, 2, 6, 0)


def _customers(bands: dict[str, str], reasons: dict[str, str] | None = None) -> pd.DataFrame:
    ids = list(bands)
    reasons = reasons or {}
    return pd.DataFrame(
        {
            "customer_id": ids,
            "as_of_date": [AS_OF] * len(ids),
            "scored_at": [pd.Timestamp(FIRST_AT)] * len(ids),
            "churn_probability": [{"high": 0.7, "medium": 0.4, "low": 0.1}[bands[i]] for i in ids],
            "churn_risk_band": [bands[i] for i in ids],
            "churn_top_drivers": ["[]"] * len(ids),
            "churn_reason": [reasons.get(i, "no strong signals either way") for i in ids],
            "model_name": ["churn"] * len(ids),
            "model_version": ["4"] * len(ids),
            "churn_reason_factors": ["{}"] * len(ids),
            "features_fingerprint": list(range(len(ids))),
        }
    )


def _actions(actions: dict[str, str]) -> pd.DataFrame:
    ids = list(actions)
    return pd.DataFrame(
        {
            "customer_id": ids,
            "as_of_date": [AS_OF] * len(ids),
            "action": [actions[i] for i in ids],
            "channel": ["email"] * len(ids),
            "expected_gain_eur": [1.0] * len(ids),
            "action_cost_eur": [0.5] * len(ids),
            "value_at_risk_eur": [100.0] * len(ids),
            "product_category": [None] * len(ids),
            "reason": ["arithmetic"] * len(ids),
        }
    )


def _leads(grades: dict[str, str]) -> pd.DataFrame:
    ids = list(grades)
    return pd.DataFrame(
        {
            "lead_id": ids,
            "scored_at": [pd.Timestamp(FIRST_AT)] * len(ids),
            "score": [{"A": 80, "B": 60, "C": 30, "D": 5}[grades[i]] for i in ids],
            "grade": [grades[i] for i in ids],
            "conversion_probability": [0.5] * len(ids),
            "top_drivers": ["[]"] * len(ids),
            "reason": [f"grade {grades[i]} reason" for i in ids],
            "model_version": ["2"] * len(ids),
            "reason_factors": ["{}"] * len(ids),
        }
    )


BANDS = {"C-1": "high", "C-2": "low", "C-3": "medium"}
ACTIONS = {"C-1": "retention_call", "C-2": "no_action", "C-3": "nurture_email"}
GRADES = {"L-1": "A", "L-2": "C"}


def _serve(
    con: duckdb.DuckDBPyConnection,
    exports: Path,
    bands: dict[str, str] = BANDS,
    actions: dict[str, str] = ACTIONS,
    grades: dict[str, str] = GRADES,
    reasons: dict[str, str] | None = None,
) -> None:
    publish(con, serving_table("customer_scores"), _customers(bands, reasons), exports)
    publish(con, serving_table("next_best_actions"), _actions(actions), exports)
    publish(con, serving_table("lead_scores"), _leads(grades), exports)


def _feed_publish(
    con: duckdb.DuckDBPyConnection, exports: Path, publish_id: str, at: datetime
) -> pd.DataFrame:
    rows = score_changes(con, publish_id, at)
    publish(con, SCORE_CHANGES, rows, exports, publish_id=publish_id)
    return rows


@pytest.fixture
def exports(tmp_path: Path) -> Path:
    return tmp_path / "exports"


@pytest.fixture
def con(tmp_path: Path) -> Iterator[duckdb.DuckDBPyConnection]:
    with connect(tmp_path / "warehouse.duckdb", threads=1, memory_limit="1GB") as connection:
        yield connection


def _feed(con: duckdb.DuckDBPyConnection, publish_id: str) -> pd.DataFrame:
    return con.execute(
        "select * from serving.score_changes where publish_id = ? "
        "order by entity_type, coalesce(customer_id, lead_id)",
        [publish_id],
    ).df()


def test_the_first_publish_lists_every_customer_and_lead_as_new(
    con: duckdb.DuckDBPyConnection, exports: Path
) -> None:
    _serve(con, exports)
    rows = _feed_publish(con, exports, "run-1", FIRST_AT)
    assert list(rows.columns) == list(SCORE_CHANGES.column_names)
    feed = _feed(con, "run-1")
    assert feed["change"].eq("new").all()
    assert feed["customer_id"].dropna().tolist() == ["C-1", "C-2", "C-3"]
    assert feed["lead_id"].dropna().tolist() == ["L-1", "L-2"]
    assert (
        feed.loc[feed["entity_type"] == "customer", "changed_fields"]
        .eq("risk_band,action,reason")
        .all()
    )
    assert feed.loc[feed["entity_type"] == "lead", "changed_fields"].eq("grade,reason").all()
    for field in ("risk_band", "grade", "action", "reason"):
        assert feed[f"old_{field}"].isna().all()
    c1 = feed.set_index("customer_id").loc["C-1"]
    assert (c1["new_risk_band"], c1["new_action"], c1["probability"]) == (
        "high",
        "retention_call",
        0.7,
    )
    assert feed["published_at"].eq(pd.Timestamp(FIRST_AT)).all()
    exported = pd.read_parquet(exports / "serving.score_changes.parquet")
    assert len(exported) == 5


def test_a_second_publish_holds_exactly_what_changed_with_old_and_new_values(
    con: duckdb.DuckDBPyConnection, exports: Path
) -> None:
    _serve(con, exports)
    _feed_publish(con, exports, "run-1", FIRST_AT)
    _serve(
        con,
        exports,
        bands={**BANDS, "C-2": "medium", "C-4": "low"},  # C-2 changes band, C-4 is new
        actions={**ACTIONS, "C-3": "retention_offer", "C-4": "no_action"},
        grades={"L-1": "A", "L-2": "B"},
        reasons={"C-1": "raises risk: month-to-month contract"},
    )
    _feed_publish(con, exports, "run-2", SECOND_AT)
    feed = _feed(con, "run-2")
    by_id = feed.assign(id=feed["customer_id"].fillna(feed["lead_id"])).set_index("id")
    assert sorted(by_id.index) == ["C-1", "C-2", "C-3", "C-4", "L-2"]
    assert by_id.loc["C-1", "changed_fields"] == "reason"
    assert by_id.loc["C-1", "old_reason"] == "no strong signals either way"
    assert by_id.loc["C-1", "new_reason"] == "raises risk: month-to-month contract"
    # C-2's probability moved with its band; the probability alone never makes a row.
    assert (by_id.loc["C-2", "old_risk_band"], by_id.loc["C-2", "new_risk_band"]) == (
        "low",
        "medium",
    )
    assert by_id.loc["C-2", "changed_fields"] == "risk_band"
    assert (by_id.loc["C-3", "old_action"], by_id.loc["C-3", "new_action"]) == (
        "nurture_email",
        "retention_offer",
    )
    # Every row carries all new values, changed or not: a CRM row is written whole.
    assert by_id.loc["C-3", "new_risk_band"] == by_id.loc["C-3", "old_risk_band"] == "medium"
    assert (by_id.loc["C-4", "change"], by_id.loc["C-4", "old_risk_band"]) == ("new", None)
    assert (by_id.loc["L-2", "old_grade"], by_id.loc["L-2", "new_grade"]) == ("C", "B")
    assert by_id.loc["L-2", "changed_fields"] == "grade,reason"
    assert set(feed["change"]) == {"changed", "new"}
    # The feed keeps every publish.
    assert con.execute("select count(*) from serving.score_changes").fetchone() == (5 + 5,)


def test_a_publish_without_changes_writes_none_and_a_run_without_a_feed_is_caught_up(
    con: duckdb.DuckDBPyConnection, exports: Path
) -> None:
    _serve(con, exports)
    _feed_publish(con, exports, "run-1", FIRST_AT)
    assert _feed_publish(con, exports, "run-2", SECOND_AT).empty
    # A run that changed the tables but wrote no feed (it failed after scoring): the next
    # publish still compares against the last publish that did, so nothing is lost.
    _serve(con, exports, bands={**BANDS, "C-1": "low"})
    _serve(con, exports, bands={**BANDS, "C-1": "medium"})
    feed = _feed_publish(con, exports, "run-4", datetime(2026, 9, 4))
    assert feed[["customer_id", "old_risk_band", "new_risk_band"]].values.tolist() == [
        ["C-1", "high", "medium"]
    ]


def test_a_rerun_of_the_same_publish_replaces_its_rows_and_is_not_its_own_previous(
    con: duckdb.DuckDBPyConnection, exports: Path
) -> None:
    _serve(con, exports)
    _feed_publish(con, exports, "run-1", FIRST_AT)
    _serve(con, exports, grades={"L-1": "D", "L-2": "C"})
    first = _feed_publish(con, exports, "run-2", SECOND_AT)
    again = _feed_publish(con, exports, "run-2", SECOND_AT)
    pd.testing.assert_frame_equal(first, again)
    assert again["lead_id"].tolist() == ["L-1"]
    assert con.execute(
        "select count(*) from serving.score_changes where publish_id = 'run-2'"
    ).fetchone() == (1,)


def test_an_erased_person_leaves_the_feed_history_in_duckdb_and_parquet(
    con: duckdb.DuckDBPyConnection, exports: Path
) -> None:
    _serve(con, exports)
    _feed_publish(con, exports, "run-1", FIRST_AT)
    _serve(con, exports, bands={**BANDS, "C-1": "low"})
    _feed_publish(con, exports, "run-2", SECOND_AT)
    subjects = pd.DataFrame(
        {"request_id": ["ER1"], "customer_record_id": ["R-1"], "customer_id": ["C-1"]}
    )
    removed = erase_from_warehouse(con, subjects)
    assert removed["duckdb:serving.score_changes"] == 2  # both publishes' rows
    files = erase_from_parquet_files(con, {"exports": exports}, subjects)
    assert files["file:exports/serving.score_changes.parquet"] == 2
    left = con.execute(
        "select coalesce(customer_id, lead_id) from serving.score_changes order by 1"
    ).fetchall()
    assert [r[0] for r in left] == ["C-2", "C-3", "L-1", "L-2"]
    assert "C-1" not in set(
        pd.read_parquet(exports / "serving.score_changes.parquet")["customer_id"]
    )
    # The next publish does not bring them back: they are gone from the scores too.
    assert _feed_publish(con, exports, "run-3", datetime(2026, 9, 3)).empty


def test_the_feed_needs_a_scored_table() -> None:
    with duckdb.connect() as con, pytest.raises(ValueError, match="customer_scores"):
        score_changes(con, "run-1", FIRST_AT)


@pytest.fixture
def target() -> Iterator[PostgresTarget]:
    with fresh_database() as url:
        yield PostgresTarget(url, "crm_signals")


def test_postgresql_gets_every_publish_of_the_feed_indexed(
    con: duckdb.DuckDBPyConnection, exports: Path, target: PostgresTarget, tmp_path: Path
) -> None:
    _serve(con, exports)
    _feed_publish(con, exports, "run-1", FIRST_AT)
    _serve(con, exports, actions={**ACTIONS, "C-2": "cross_sell_offer"})
    _feed_publish(con, exports, "run-2", SECOND_AT)
    result = publish_to_postgres(con, target, "run-2", SECOND_AT, tmp_path / "scratch")
    assert result.rows["score_changes"] == 6
    with psycopg2.connect(target.url) as pg, pg.cursor() as cur:
        cur.execute(
            "select publish_id, customer_id, old_action, new_action, published_at "
            "from crm_signals.score_changes where publish_id = 'run-2'"
        )
        assert cur.fetchall() == [("run-2", "C-2", "no_action", "cross_sell_offer", SECOND_AT)]
        cur.execute("select indexname from pg_indexes where tablename = 'score_changes' order by 1")
        assert [r[0] for r in cur.fetchall()] == [
            "score_changes_customer_id_idx",
            "score_changes_lead_id_idx",
            "score_changes_publish_id_idx",
        ]
    pg.close()
    # Erasure reaches the published feed too: both publishes' rows of the person go.
    removed = erase_from_postgres(target, ["C-2"])
    assert removed["postgres:crm_signals.score_changes"] == 2
