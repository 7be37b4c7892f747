"""How the churn champion does before its 90-day labels close, and how it did once they have.

Every as-of date in ``serving.customer_scores`` is a scoring run. The newest gets its CBPE
estimates (``ml.modelling.performance``) for all customers and per segment: plan, contract type,
country and the behavioural segment of ``serving.customer_segments`` when it holds that date.
An older date whose labels have landed in ``marts.churn_labels`` gets its realized figures next
to the estimates the scoring run stored. All of it is read and joined in DuckDB.
"""

from __future__ import annotations

from datetime import date, datetime

import duckdb
import pandas as pd

from ml.core.warehouse import table_exists
from ml.modelling.performance import EstimationConfig, ReferenceProbability, estimate_run
from ml.modelling.performance_table import MonitoringPass, monitor_runs
from ml.modelling.stability import (
    RunColumns,
    ScoreStability,
    StabilityThresholds,
    compare_newest_runs,
)
from ml.models.churn.data import LABELS_TABLE

MODEL_NAME = "churn"
SCORES_TABLE = "serving.customer_scores"
SEGMENTS_TABLE = "serving.customer_segments"
ACTIONS_TABLE = "serving.next_best_actions"
SEGMENT_COLUMNS: tuple[str, ...] = ("plan", "contract_type", "country_code", "segment_name")
"""The segments estimated apart: the business slices and the named behavioural segments."""


def scored_runs(con: duckdb.DuckDBPyConnection) -> list[tuple[str, date]]:
    """``(model_version, as_of_date)`` of every scoring run in the serving table, oldest first."""
    if not table_exists(con, *SCORES_TABLE.split(".")):
        return []
    found = con.execute(
        f"select distinct model_version, as_of_date from {SCORES_TABLE} order by 2, 1"
    ).fetchall()
    return [(str(v), d) for v, d in found]


def labels_landed(con: duckdb.DuckDBPyConnection, as_of_date: date) -> bool:
    """Whether the label window of ``as_of_date`` has closed (``marts.churn_labels``)."""
    (landed,) = con.execute(
        f"select coalesce(bool_or(label_available), false) from {LABELS_TABLE} "
        "where as_of_date = ?",
        [as_of_date],
    ).fetchone() or (False,)
    return bool(landed)


def read_scored_rows(
    con: duckdb.DuckDBPyConnection, version: str, as_of_date: date
) -> pd.DataFrame:
    """The scores of one run with their segments and, where the window has closed, the label.

    Returns:
        ``customer_id``, ``probability``, the :data:`SEGMENT_COLUMNS` (``segment_name`` only
        when ``serving.customer_segments`` exists) and ``label`` (1.0/0.0, null while the label
        window is open).
    """
    with_segments = table_exists(con, *SEGMENTS_TABLE.split("."))
    segment_join = (
        f"left join {SEGMENTS_TABLE} as g on g.customer_id = s.customer_id "
        "and g.as_of_date = s.as_of_date"
        if with_segments
        else ""
    )
    segment_column = ", g.segment_name" if with_segments else ""
    return con.execute(
        f"""
        select
            s.customer_id,
            s.churn_probability as probability,
            f.plan,
            f.contract_type,
            f.country_code{segment_column},
            case when l.label_available then cast(l.churned as double) end as label
        from {SCORES_TABLE} as s
        left join marts.customer_features as f
            on f.customer_id = s.customer_id and f.as_of_date = s.as_of_date
        left join {LABELS_TABLE} as l
            on l.customer_id = s.customer_id and l.as_of_date = s.as_of_date
        {segment_join}
        where s.model_version = ? and s.as_of_date = ?
        order by s.customer_id
        """,
        [version, as_of_date],
    ).df()


def monitor_performance(
    con: duckdb.DuckDBPyConnection,
    capacity: int,
    now: datetime,
    config: EstimationConfig | None = None,
    reference: ReferenceProbability | None = None,
) -> MonitoringPass:
    """Estimate the newest scoring run and realize every older run whose labels have landed.

    Args:
        con: Writable warehouse connection.
        capacity: Customers the retention team acts on per run (``CRM_CAPACITY_TOP_K``).
        now: When this pass runs (written to the table).
        config: Estimation settings.

    Returns:
        The newest run's figures and the runs realized in this pass.
    """
    config = config or EstimationConfig()

    def figures_of(version: str, as_of: date) -> pd.DataFrame:
        return estimate_run(
            read_scored_rows(con, version, as_of),
            SEGMENT_COLUMNS,
            capacity,
            config,
            version,
            reference,
        )

    return monitor_runs(
        con, MODEL_NAME, scored_runs(con), figures_of, lambda d: labels_landed(con, d), now
    )


def _run_rows(con: duckdb.DuckDBPyConnection, as_of: date, with_actions: bool) -> pd.DataFrame:
    action = ", a.action" if with_actions else ""
    join = (
        f"left join {ACTIONS_TABLE} as a on a.customer_id = s.customer_id "
        "and a.as_of_date = s.as_of_date"
        if with_actions
        else ""
    )
    return con.execute(
        f"select s.customer_id, s.churn_probability, s.churn_risk_band{action} "
        f"from {SCORES_TABLE} as s {join} where s.as_of_date = ?",
        [as_of],
    ).df()


def monitor_stability(
    con: duckdb.DuckDBPyConnection, thresholds: StabilityThresholds, now: datetime
) -> ScoreStability | None:
    """Compare the two newest churn scoring runs and write ``monitoring.score_stability``: PSI
    of the probabilities, share of customers whose risk band changed and, when
    ``serving.next_best_actions`` exists, whose action changed.

    Returns:
        The figures, or None when fewer than two as-of dates are scored.
    """
    with_actions = table_exists(con, *ACTIONS_TABLE.split("."))
    return compare_newest_runs(
        con,
        MODEL_NAME,
        [d for _, d in scored_runs(con)],
        lambda as_of: _run_rows(con, as_of, with_actions),
        RunColumns(
            key="customer_id",
            score="churn_probability",
            band="churn_risk_band",
            action="action" if with_actions else None,
        ),
        thresholds,
        now,
    )
