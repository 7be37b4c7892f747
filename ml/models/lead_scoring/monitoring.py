"""How the lead model does before the conversion windows close, and how it did once they have.

``serving.lead_scores`` holds the open leads of the newest run only, so every run's
probabilities are kept in ``monitoring.lead_score_snapshots`` (one row per lead and run date).
The newest run gets its CBPE estimates for all open leads and per source, country and company
size; an older run is realized once every one of its leads' conversion windows has closed in
the newest export (a conversion within ``conversion_window_days`` of creation is a 1, as in
training). All of it is read and joined in DuckDB.

The two newest snapshots also give the score stability of the lead model: PSI of the
probabilities and the share of leads in both runs whose grade changed
(``monitoring.score_stability``).
"""

from __future__ import annotations

from datetime import date, datetime

import duckdb
import pandas as pd

from ml.core.warehouse import transaction
from ml.modelling.performance import EstimationConfig, ReferenceProbability, estimate_run
from ml.modelling.performance_table import SCHEMA, MonitoringPass, monitor_runs
from ml.modelling.stability import (
    RunColumns,
    ScoreStability,
    StabilityThresholds,
    compare_newest_runs,
)

MODEL_NAME = "lead_scoring"
SCORES_TABLE = "serving.lead_scores"
LEADS_TABLE = "raw.leads"
SNAPSHOTS_TABLE = f"{SCHEMA}.lead_score_snapshots"
SEGMENT_COLUMNS: tuple[str, ...] = ("source", "country", "company_size")
STABILITY_RULES: tuple[str, ...] = ("score_psi", "band_changed_share")
"""The stability rules of the lead model: its band is the grade, and a lead has no action."""


def _columns(con: duckdb.DuckDBPyConnection, qualified: str) -> set[str]:
    schema, name = qualified.split(".")
    found = con.execute(
        "select column_name from information_schema.columns where table_schema = ? "
        "and table_name = ?",
        [schema, name],
    ).fetchall()
    return {str(c) for (c,) in found}


def snapshot_scores(con: duckdb.DuckDBPyConnection) -> date | None:
    """Copy the open leads' probabilities and grades of ``serving.lead_scores`` into the
    snapshots, under the date they were scored (a second run that day replaces that day's rows).

    Returns:
        The run's date, or None when no leads are scored.
    """
    con.execute(f"create schema if not exists {SCHEMA}")
    con.execute(
        f"create table if not exists {SNAPSHOTS_TABLE} (lead_id varchar, as_of_date date, "
        "model_version varchar, conversion_probability double, grade varchar, "
        "primary key (lead_id, as_of_date))"
    )
    # Snapshots kept before the grade was: their rows read a null grade.
    con.execute(f"alter table {SNAPSHOTS_TABLE} add column if not exists grade varchar")
    served = _columns(con, SCORES_TABLE)
    if not served:
        return None
    found = con.execute(f"select max(cast(scored_at as date)) from {SCORES_TABLE}").fetchone()
    as_of = found[0] if found else None
    if as_of is None:
        return None
    grade = "grade" if "grade" in served else "cast(null as varchar)"
    with transaction(con):
        con.execute(f"delete from {SNAPSHOTS_TABLE} where as_of_date = ?", [as_of])
        con.execute(
            f"insert into {SNAPSHOTS_TABLE} (lead_id, as_of_date, model_version, "
            f"conversion_probability, grade) select lead_id, ?, model_version, "
            f"conversion_probability, {grade} from {SCORES_TABLE}",
            [as_of],
        )
    return as_of  # type: ignore[no-any-return]


def scored_runs(con: duckdb.DuckDBPyConnection) -> list[tuple[str, date]]:
    """``(model_version, as_of_date)`` of every stored lead scoring run, oldest first."""
    if not _columns(con, SNAPSHOTS_TABLE):
        return []
    found = con.execute(
        f"select distinct model_version, as_of_date from {SNAPSHOTS_TABLE} order by 2, 1"
    ).fetchall()
    return [(str(v), d) for v, d in found]


def _export_time(con: duckdb.DuckDBPyConnection, columns: set[str]) -> str:
    # What the newest export knows: its latest creation or conversion, as in training.
    known = [c for c in ("created_at", "converted_at") if c in columns]
    return f"(select max(greatest({', '.join(known)})) from {LEADS_TABLE})"


def read_scored_rows(
    con: duckdb.DuckDBPyConnection, version: str, as_of_date: date, window_days: int
) -> pd.DataFrame:
    """One run's leads with their segments and, where the conversion window has closed in the
    newest export, the label.

    Returns:
        ``lead_id``, ``probability``, the :data:`SEGMENT_COLUMNS` the export has and ``label``
        (1.0/0.0, null while the window is open or without creation dates).
    """
    columns = _columns(con, LEADS_TABLE)
    segments = "".join(f", l.{c}" for c in SEGMENT_COLUMNS if c in columns)
    if {"created_at", "converted_at"} <= columns:
        window = f"interval {int(window_days)} day"
        label = (
            f"case when l.created_at + {window} <= {_export_time(con, columns)} then "
            f"cast(coalesce(l.converted_at <= l.created_at + {window}, false) as double) end"
        )
    else:
        label = "cast(null as double)"
    return con.execute(
        f"""
        select s.lead_id, s.conversion_probability as probability{segments}, {label} as label
        from {SNAPSHOTS_TABLE} as s
        left join {LEADS_TABLE} as l on l.lead_id = s.lead_id
        where s.model_version = ? and s.as_of_date = ?
        order by s.lead_id
        """,
        [version, as_of_date],
    ).df()


def monitor_performance(
    con: duckdb.DuckDBPyConnection,
    capacity: int,
    window_days: int,
    now: datetime,
    config: EstimationConfig | None = None,
    reference: ReferenceProbability | None = None,
) -> MonitoringPass:
    """Snapshot the newest lead scores, estimate them, realize older runs whose windows closed.

    Args:
        con: Writable warehouse connection.
        capacity: Leads sales act on per run (the highest scores).
        window_days: The conversion window of the label (``LeadConfig.conversion_window_days``).
        now: When this pass runs.
        config: Estimation settings.
        reference: The probabilities of the event each version's estimates trust (see
            ``ml.modelling.performance.estimate_segments``); None trusts the served ones.
    """
    config = config or EstimationConfig()
    snapshot_scores(con)

    def figures_of(version: str, as_of: date) -> pd.DataFrame:
        return estimate_run(
            read_scored_rows(con, version, as_of, window_days),
            SEGMENT_COLUMNS,
            capacity,
            config,
            version,
            reference,
        )

    def landed(as_of: date) -> bool:
        # Every window of the run closed: the run's figures would now have no null label.
        runs = [v for v, d in scored_runs(con) if d == as_of]
        return any(
            read_scored_rows(con, v, as_of, window_days)["label"].notna().all() for v in runs
        )

    return monitor_runs(con, MODEL_NAME, scored_runs(con), figures_of, landed, now)


def _run_grades(con: duckdb.DuckDBPyConnection, as_of: date) -> pd.DataFrame:
    rows = con.execute(
        f"select lead_id, conversion_probability, grade from {SNAPSHOTS_TABLE} "
        "where as_of_date = ?",
        [as_of],
    ).df()
    # A run snapshotted before grades were kept has none to compare: skip the figure rather
    # than count every lead as changed.
    return rows if rows["grade"].notna().any() else rows.drop(columns="grade")


def monitor_stability(
    con: duckdb.DuckDBPyConnection, thresholds: StabilityThresholds, now: datetime
) -> ScoreStability | None:
    """Snapshot the newest lead scores and compare the two newest runs: PSI of the conversion
    probabilities and the share of leads scored in both whose grade changed
    (``monitoring.score_stability``, model ``lead_scoring``).

    Returns:
        The figures, or None when fewer than two run dates are stored.
    """
    snapshot_scores(con)
    return compare_newest_runs(
        con,
        MODEL_NAME,
        [d for _, d in scored_runs(con)],
        lambda as_of: _run_grades(con, as_of),
        RunColumns(key="lead_id", score="conversion_probability", band="grade"),
        thresholds,
        now,
    )
