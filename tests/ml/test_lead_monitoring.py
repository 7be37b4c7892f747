"""Lead performance monitoring on a real DuckDB warehouse: each run's scores kept, estimated,
and realized once every conversion window of the run has closed in a later export; the score
stability of the two newest runs."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from ml.core.warehouse import connect
from ml.modelling.performance import EstimationConfig
from ml.modelling.performance_table import read_performance
from ml.modelling.stability import STABILITY_TABLE, StabilityThresholds, psi
from ml.models.lead_scoring.model import GRADES
from ml.models.lead_scoring.monitoring import (
    SNAPSHOTS_TABLE,
    STABILITY_RULES,
    monitor_performance,
    monitor_stability,
)

WINDOW = 30
N = 2_000
FIRST_RUN = datetime(2026, 5, 1, 6)
CONFIG = EstimationConfig(min_segment_rows=300)


def _leads(rng: np.random.Generator, first: int, created_from: datetime) -> pd.DataFrame:
    p = rng.beta(1.5, 5.0, N)
    created = [created_from + timedelta(hours=int(h)) for h in rng.integers(0, 24 * 25, N)]
    converts = rng.random(N) < p
    delay = rng.integers(1, 2 * WINDOW, N)  # about half convert after the window
    converted_at = [
        c + timedelta(days=int(d)) if y else None
        for c, y, d in zip(created, converts, delay, strict=True)
    ]
    return pd.DataFrame(
        {
            "lead_id": [f"L{first + i:05d}" for i in range(N)],
            "created_at": created,
            "source": rng.choice(["web", "event", "partner"], N, p=[0.6, 0.25, 0.15]),
            "country": "DE",
            "converted_at": converted_at,
            "p": p,
        }
    )


def _scores(leads: pd.DataFrame, scored_at: datetime, version: str) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lead_id": leads["lead_id"],
            "scored_at": scored_at,
            "conversion_probability": leads["p"],
            "model_version": version,
        }
    )


def _publish(con: duckdb.DuckDBPyConnection, leads: pd.DataFrame, scores: pd.DataFrame) -> None:
    raw = leads.drop(columns="p")  # noqa: F841 (DuckDB's replacement scan)
    con.execute("create or replace table raw.leads as select * from raw")
    con.execute("create or replace table serving.lead_scores as select * from scores")


def _known_at(leads: pd.DataFrame, moment: datetime) -> pd.DataFrame:
    """The export as of ``moment``: conversions after it are not known yet."""
    known = [c if c is not None and c <= moment else None for c in leads["converted_at"]]
    return leads.assign(converted_at=known)


def _truth(leads: pd.DataFrame) -> np.ndarray:
    window = pd.Timedelta(days=WINDOW)
    converted = pd.to_datetime(leads["converted_at"])
    return (converted.notna() & (converted <= leads["created_at"] + window)).to_numpy()


def test_a_run_is_estimated_then_realized_when_its_windows_close(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    old = _leads(rng, 0, FIRST_RUN - timedelta(days=26))
    new = _leads(rng, N, FIRST_RUN + timedelta(days=40))
    first_export = _known_at(old, FIRST_RUN)  # only the old leads, as known at the first run
    with connect(tmp_path / "w.duckdb") as con:
        con.execute("create schema raw")
        con.execute("create schema serving")
        _publish(con, first_export, _scores(old, FIRST_RUN, "2"))
        first = monitor_performance(con, 200, WINDOW, datetime(2026, 5, 1, 7), CONFIG)
        assert (first.version, first.as_of_date) == ("2", date(2026, 5, 1))
        assert first.realized_runs == ()
        assert first.figure("roc_auc") is not None
        assert first.figure("roc_auc", column="realized") is None
        # Two months later: the old leads' windows have closed, new leads are scored.
        second_run = FIRST_RUN + timedelta(days=66)
        _publish(con, _known_at(pd.concat([old, new]), second_run), _scores(new, second_run, "3"))
        second = monitor_performance(con, 200, WINDOW, second_run, CONFIG)
        table = read_performance(con, "lead_scoring")
        kept = con.execute(f"select count(*), count(distinct as_of_date) from {SNAPSHOTS_TABLE}")
        snapshots = kept.fetchall()[0]
    assert second.realized_runs == (("2", date(2026, 5, 1)),)
    assert snapshots == (2 * N, 2)
    row = table[(table["version"] == "2") & (table["segment"] == "all")].set_index("metric")
    assert row.loc["roc_auc", "realized"] == pytest.approx(roc_auc_score(_truth(old), old["p"]))
    assert row.loc["positive_rate", "realized"] == pytest.approx(_truth(old).mean())
    # Only conversions within the window count: fewer than all conversions.
    assert row.loc["positive_rate", "realized"] < old["converted_at"].notna().mean()
    assert "source=web" in set(table["segment"])
    newest = table[table["version"] == "3"]
    assert newest["realized"].isna().all() and len(newest) > 0


def _graded(ids: list[str], p: np.ndarray, grades: np.ndarray, scored_at: datetime) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "lead_id": ids,
            "scored_at": scored_at,
            "conversion_probability": p,
            "grade": grades,
            "model_version": "2",
        }
    )


def test_stability_counts_the_grade_changes_of_leads_in_both_runs(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    ids = [f"L{i:05d}" for i in range(N)]
    p = rng.beta(1.5, 5.0, N)
    grades = rng.choice(np.array(GRADES), N)
    # The second run: the first 1,500 leads again, 120 of them with a planted new grade, and
    # 500 new leads whose grades do not count (they are not in both runs).
    again = 1_500
    changed = rng.choice(again, 120, replace=False)
    second_grades = grades[:again].copy()
    second_grades[changed] = [GRADES[(GRADES.index(g) + 1) % 4] for g in grades[changed]]
    new_ids = [f"L{N + i:05d}" for i in range(500)]
    second = _graded(
        ids[:again] + new_ids,
        np.concatenate([p[:again], rng.beta(1.5, 5.0, 500)]),
        np.concatenate([second_grades, rng.choice(np.array(GRADES), 500)]),
        FIRST_RUN + timedelta(days=1),
    )
    with connect(tmp_path / "w.duckdb") as con:
        con.execute("create schema serving")
        first = _graded(ids, p, grades, FIRST_RUN)  # noqa: F841 (DuckDB's replacement scan)
        con.execute("create table serving.lead_scores as select * from first")
        assert monitor_stability(con, StabilityThresholds(), FIRST_RUN) is None
        con.execute("create or replace table serving.lead_scores as select * from second")
        found = monitor_stability(con, StabilityThresholds(), FIRST_RUN + timedelta(days=1))
        stored = con.execute(
            f"select metric, value, row_count from {STABILITY_TABLE} where model = 'lead_scoring'"
        ).fetchall()
    assert found is not None
    assert (found.previous_as_of_date, found.as_of_date) == (date(2026, 5, 1), date(2026, 5, 2))
    figures = {f.metric: f for f in found.figures}
    assert set(figures) == set(STABILITY_RULES)
    assert figures["band_changed_share"].value == pytest.approx(120 / again)
    assert figures["band_changed_share"].rows == again
    assert figures["score_psi"].value == pytest.approx(
        psi(p, second["conversion_probability"], StabilityThresholds().bins)
    )
    assert {m: (v, r) for m, v, r in stored} == {
        f.metric: (pytest.approx(f.value), f.rows) for f in found.figures
    }
    # 8% of the leads changed grade: over a threshold of 5%, under the default 15%.
    assert figures["band_changed_share"].passed
    strict = StabilityThresholds(band_changed=0.05)
    with connect(tmp_path / "w.duckdb") as con:
        again_found = monitor_stability(con, strict, FIRST_RUN + timedelta(days=1))
    assert again_found is not None
    assert not {f.metric: f for f in again_found.figures}["band_changed_share"].passed


def test_snapshots_kept_before_grades_skip_the_grade_figure(tmp_path: Path) -> None:
    rng = np.random.default_rng(2)
    ids = [f"L{i:05d}" for i in range(300)]
    with connect(tmp_path / "w.duckdb") as con:
        con.execute("create schema serving")
        con.execute(f"create schema {SNAPSHOTS_TABLE.split('.')[0]}")
        # The table as it was before grades were kept, with one run in it.
        con.execute(
            f"create table {SNAPSHOTS_TABLE} (lead_id varchar, as_of_date date, "
            "model_version varchar, conversion_probability double, "
            "primary key (lead_id, as_of_date))"
        )
        old = pd.DataFrame(  # noqa: F841 (DuckDB's replacement scan)
            {"lead_id": ids, "p": rng.random(300)}
        )
        con.execute(
            f"insert into {SNAPSHOTS_TABLE} select lead_id, ?, '2', p from old", [FIRST_RUN]
        )
        graded = rng.choice(np.array(GRADES), 300)
        new = _graded(ids, rng.random(300), graded, FIRST_RUN + timedelta(days=1))  # noqa: F841
        con.execute("create table serving.lead_scores as select * from new")
        found = monitor_stability(con, StabilityThresholds(), FIRST_RUN + timedelta(days=1))
        kept = con.execute(f"select count(grade) from {SNAPSHOTS_TABLE}").fetchall()[0][0]
    assert found is not None
    assert [f.metric for f in found.figures] == ["score_psi"]
    assert kept == 300
