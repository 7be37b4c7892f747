"""What the churn model reads from the marts: labelled snapshots, protected attributes, typicals.

Only keys, the allow-listed features (``ml.data.features``) and the label are selected, so a
column added upstream, PII or protected, can never reach the model through these reads; the
protected attributes are read separately, for the fairness audit only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import duckdb
import pandas as pd

from ml.core.warehouse import quote_ident
from ml.data.features import (
    CHURN_FEATURES,
    FEATURES_TABLE,
    KEY_COLUMNS,
    LABEL_COLUMN,
    select_list,
)
from ml.models.churn.explain import TYPICAL_FEATURES
from ml.models.churn.model import out_of_time_dates

LABELS_TABLE = "marts.churn_labels"
# dbt defines the label window once (var churn_horizon_days) and writes it on every label row.
_HORIZON = "horizon_days"


def read_churn_horizon_days(con: duckdb.DuckDBPyConnection) -> int:
    """The churn label window of a warehouse: ``horizon_days`` of ``marts.churn_labels``.

    ``churned`` means "churned within ``horizon_days`` after ``as_of_date``"; the days come from
    the dbt var ``churn_horizon_days`` of the build that wrote the labels, so code that needs the
    horizon reads it here rather than assuming one.

    Args:
        con: Connection to the warehouse holding ``marts.churn_labels``.

    Returns:
        The horizon in days, the same on every row.

    Raises:
        ValueError: The table holds no horizon (no rows, or a row whose horizon is null) or more
            than one; the message names the table.
    """
    rows, nulls, horizons, shortest, longest = con.execute(
        f"select count(*), count(*) - count({_HORIZON}), count(distinct {_HORIZON}), "
        f"min({_HORIZON}), max({_HORIZON}) from {LABELS_TABLE}"
    ).fetchall()[0]
    if rows == 0:
        raise ValueError(f"{LABELS_TABLE} holds no churn horizon: it has no rows")
    if nulls:
        raise ValueError(
            f"{LABELS_TABLE} holds no churn horizon on {nulls} of {rows} rows ({_HORIZON} is null)"
        )
    if horizons > 1:
        raise ValueError(
            f"{LABELS_TABLE} holds {horizons} churn horizons ({shortest} to {longest} days); "
            "one dbt build writes one"
        )
    return int(shortest)


def read_labelled_as_of_dates(con: duckdb.DuckDBPyConnection) -> list[date]:
    """The as-of dates that have at least one row with a fully observed label window."""
    rows = con.execute(
        f"select distinct as_of_date from {LABELS_TABLE} where label_available order by 1"
    ).fetchall()
    return [row[0] for row in rows]


def read_labelled_features(
    con: duckdb.DuckDBPyConnection, as_of_dates: Sequence[date] | None = None
) -> pd.DataFrame:
    """Read the feature rows whose label window is fully observed, with their label.

    Args:
        con: Connection to the warehouse holding ``marts.customer_features`` and
            ``marts.churn_labels``.
        as_of_dates: Only these as-of dates (``out_of_time_dates`` of a split), so the older
            snapshots never reach pandas; ``None`` reads every labelled row.

    Returns:
        One row per customer per labelled as-of date: the key columns, the allow-listed features
        and the label (bool), ordered by as_of_date and customer_id so the result is
        deterministic.
    """
    date_filter = (
        "" if as_of_dates is None else "and f.as_of_date in (select unnest($as_of_dates::date[]))"
    )
    sql = f"""
        select {select_list(KEY_COLUMNS, "f")}, {select_list(CHURN_FEATURES, "f")},
               l."{LABEL_COLUMN}"::boolean as "{LABEL_COLUMN}"
        from {FEATURES_TABLE} as f
        join {LABELS_TABLE} as l
          on l.customer_id = f.customer_id and l.as_of_date = f.as_of_date
        where l.label_available {date_filter}
        order by f.as_of_date, f.customer_id
    """
    params = None if as_of_dates is None else {"as_of_dates": list(as_of_dates)}
    return con.execute(sql, params).df()


def read_typical_values(
    con: duckdb.DuckDBPyConnection, as_of_date: date | None = None
) -> dict[str, float]:
    """``ml.models.churn.explain.typical_values`` of a whole snapshot, computed in DuckDB.

    A bucket of customers is explained against what is typical for everyone scored, so its
    reasons say what unpartitioned scoring says. DuckDB's median interpolates as pandas' does.
    """
    columns = sorted(TYPICAL_FEATURES)
    medians = ", ".join(f"median(cast(f.{quote_ident(c)} as double))" for c in columns)
    row = con.execute(
        f"select {medians} from {FEATURES_TABLE} as f where f.as_of_date = coalesce("
        f"$as_of_date::date, (select max(as_of_date) from {FEATURES_TABLE}))",
        {"as_of_date": as_of_date},
    ).fetchall()[0]
    return {c: float(v) for c, v in zip(columns, row, strict=True) if v is not None}


@dataclass(frozen=True, eq=False)
class ChurnTrainingInputs:
    """Everything one churn training run reads.

    Attributes:
        labelled: Labelled feature rows of the split's as-of dates only (at 1M customers every
            labelled row is ~12M rows).
        identity_map: ``marts.customer_identity_map``, to reach the synthetic truth (oracle).
        customers: ``customer_id`` and the protected attributes, for the fairness audit only.
        horizon_days: The label window the marts were built with.
    """

    labelled: pd.DataFrame
    identity_map: pd.DataFrame
    customers: pd.DataFrame
    horizon_days: int


def read_training_inputs(
    con: duckdb.DuckDBPyConnection, training_as_of_dates: int
) -> ChurnTrainingInputs:
    """Read the rows of the out-of-time split of ``training_as_of_dates`` training dates."""
    horizon_days = read_churn_horizon_days(con)
    train, calibration, validation = out_of_time_dates(
        read_labelled_as_of_dates(con), training_as_of_dates, horizon_days
    )
    split_dates = [*train, validation, *([calibration] if calibration is not None else [])]
    return ChurnTrainingInputs(
        labelled=read_labelled_features(con, split_dates),
        identity_map=con.sql("select * from marts.customer_identity_map").df(),
        customers=con.sql("select customer_id, birth_year, gender from marts.customers").df(),
        horizon_days=horizon_days,
    )
