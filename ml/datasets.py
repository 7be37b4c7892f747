"""Read the training and scoring frames from the marts.

Only the columns named in :mod:`ml.features` are selected (keys, the allow-listed features and the
label), so a column added upstream, PII or protected, can never reach a model through these reads.
The work is SQL in DuckDB; pandas only receives the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import duckdb
import pandas as pd

from ml.features import CHURN_FEATURES, KEY_COLUMNS, LABEL_COLUMN

FEATURES_TABLE = "marts.customer_features"
LABELS_TABLE = "marts.churn_labels"


def _quoted(columns: tuple[str, ...], alias: str) -> str:
    return ", ".join(f'{alias}."{c}"' for c in columns)


def read_labelled_features(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Read every feature row whose 90-day label window is fully observed, with its label.

    Args:
        con: Connection to the warehouse holding ``marts.customer_features`` and
            ``marts.churn_labels``.

    Returns:
        One row per customer per labelled as-of date: the key columns, the allow-listed features
        and ``churned_within_90d`` (bool), ordered by as_of_date and customer_id so the result is
        deterministic.
    """
    sql = f"""
        select {_quoted(KEY_COLUMNS, "f")}, {_quoted(CHURN_FEATURES, "f")},
               l."{LABEL_COLUMN}"::boolean as "{LABEL_COLUMN}"
        from {FEATURES_TABLE} as f
        join {LABELS_TABLE} as l
          on l.customer_id = f.customer_id and l.as_of_date = f.as_of_date
        where l.label_available
        order by f.as_of_date, f.customer_id
    """
    return con.execute(sql).df()


def read_scoring_features(
    con: duckdb.DuckDBPyConnection, as_of_date: date | None = None
) -> pd.DataFrame:
    """Read the feature rows to score: one as-of date, the newest one by default.

    Args:
        con: Connection to the warehouse holding ``marts.customer_features``.
        as_of_date: The as-of date to score; ``None`` means the newest in the table.

    Returns:
        The key columns and the allow-listed features, ordered by customer_id. Empty when the
        table has no row for that date.
    """
    sql = f"""
        select {_quoted(KEY_COLUMNS, "f")}, {_quoted(CHURN_FEATURES, "f")}
        from {FEATURES_TABLE} as f
        where f.as_of_date = coalesce(
            $as_of_date::date, (select max(as_of_date) from {FEATURES_TABLE})
        )
        order by f.customer_id
    """
    return con.execute(sql, {"as_of_date": as_of_date}).df()


def read_reference_features(
    con: duckdb.DuckDBPyConnection, as_of_dates: Sequence[date]
) -> pd.DataFrame:
    """Read the feature rows of given as-of dates, e.g. a model's training dates for drift.

    Args:
        con: Connection to the warehouse holding ``marts.customer_features``.
        as_of_dates: The as-of dates to read (``ChurnModel.training_as_of_dates``).

    Returns:
        The key columns and the allow-listed features, ordered by as_of_date and customer_id.
    """
    sql = f"""
        select {_quoted(KEY_COLUMNS, "f")}, {_quoted(CHURN_FEATURES, "f")}
        from {FEATURES_TABLE} as f
        where f.as_of_date in (select unnest($as_of_dates::date[]))
        order by f.as_of_date, f.customer_id
    """
    return con.execute(sql, {"as_of_dates": list(as_of_dates)}).df()
