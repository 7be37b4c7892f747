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


# Whole customers in a fixed order that no row order, engine or run changes: a customer's rows
# at every as-of date of the split stay together, and growing data only moves the cut.
SAMPLE_RULE = (
    "whole customers in order of md5(customer_id), the longest prefix whose labelled rows fit "
    "under the cap"
)


@dataclass(frozen=True)
class TrainingSample:
    """Which labelled rows churn training read: all of them, or a sample of whole customers.

    Attributes:
        max_rows: The cap (``Settings.training_max_rows``), or None when it is off.
        rows_available: Labelled rows of the split's as-of dates.
        rows_kept: Rows read (all of them unless the available rows exceed the cap).
        customers_available: Customers with a labelled row at those dates.
        customers_kept: Customers read.
    """

    max_rows: int | None
    rows_available: int
    rows_kept: int
    customers_available: int
    customers_kept: int

    @property
    def sampled(self) -> bool:
        return self.rows_kept < self.rows_available

    @property
    def fraction(self) -> float:
        """Share of the available rows read (1.0 without a sample)."""
        return self.rows_kept / self.rows_available if self.rows_available else 1.0

    def as_params(self) -> dict[str, str | int | float]:
        """The sample as MLflow parameters and asset metadata."""
        return {
            "training_max_rows": self.max_rows if self.max_rows is not None else "off",
            "training_sample": SAMPLE_RULE if self.sampled else "every labelled row",
            "training_rows_available": self.rows_available,
            "training_rows_kept": self.rows_kept,
            "training_sample_fraction": round(self.fraction, 6),
            "training_customers_available": self.customers_available,
            "training_customers_kept": self.customers_kept,
        }


def _labelled_sql(date_filter: str, select: str, sample: str = "") -> str:
    return f"""
        {sample}
        select {select}
        from {FEATURES_TABLE} as f
        join {LABELS_TABLE} as l
          on l.customer_id = f.customer_id and l.as_of_date = f.as_of_date
        where l.label_available {date_filter}
    """


def _sample_cte(date_filter: str) -> str:
    """CTE ``ranked``: each customer's labelled rows and the running total in sample order."""
    per_customer = _labelled_sql(date_filter, "f.customer_id, count(*) as n_rows")
    return f"""
        with per_customer as ({per_customer} group by f.customer_id),
        ranked as (
            select customer_id, n_rows,
                   sum(n_rows) over (
                       order by md5(cast(customer_id as varchar)), customer_id
                       rows between unbounded preceding and current row
                   ) as rows_through
            from per_customer
        )
    """


def _date_filter(as_of_dates: Sequence[date] | None) -> tuple[str, dict[str, object]]:
    if as_of_dates is None:
        return "", {}
    return (
        "and f.as_of_date in (select unnest($as_of_dates::date[]))",
        {"as_of_dates": list(as_of_dates)},
    )


def training_sample(
    con: duckdb.DuckDBPyConnection,
    as_of_dates: Sequence[date] | None = None,
    max_rows: int | None = None,
) -> TrainingSample:
    """Which labelled rows of ``as_of_dates`` churn training reads under the cap ``max_rows``.

    Every row when they are no more than ``max_rows`` (or ``max_rows`` is None); else whole
    customers by ``SAMPLE_RULE``: the same customers on every run over the same marts, whatever
    engine built them, each with all its rows of ``as_of_dates``, never more than ``max_rows``.

    Raises:
        ValueError: ``max_rows`` is below 1, or below the rows of the first customer.
    """
    if max_rows is not None and max_rows < 1:
        raise ValueError(f"the training row cap must be at least 1, got {max_rows}")
    date_filter, params = _date_filter(as_of_dates)
    kept = "$max_rows::bigint is null or rows_through <= $max_rows"
    customers, rows, customers_kept, rows_kept = con.execute(
        f"""{_sample_cte(date_filter)}
        select count(*), coalesce(sum(n_rows), 0), count(*) filter (where {kept}),
               coalesce(sum(n_rows) filter (where {kept}), 0)
        from ranked""",
        {**params, "max_rows": max_rows},
    ).fetchall()[0]
    sample = TrainingSample(
        max_rows, int(rows), int(rows_kept), int(customers), int(customers_kept)
    )
    if rows and not customers_kept:
        raise ValueError(
            f"the training row cap of {max_rows} keeps no customer: the first in sample order "
            "has more labelled rows than that"
        )
    return sample


def read_labelled_features(
    con: duckdb.DuckDBPyConnection,
    as_of_dates: Sequence[date] | None = None,
    sample: TrainingSample | None = None,
) -> pd.DataFrame:
    """Read the feature rows whose label window is fully observed, with their label.

    Args:
        con: Connection to the warehouse holding ``marts.customer_features`` and
            ``marts.churn_labels``.
        as_of_dates: Only these as-of dates (``out_of_time_dates`` of a split), so the older
            snapshots never reach pandas; ``None`` reads every labelled row.
        sample: ``training_sample`` of the same dates: only its customers when it is a sample.

    Returns:
        One row per customer per labelled as-of date: the key columns, the allow-listed features
        and the label (bool), ordered by as_of_date and customer_id so the result is
        deterministic.
    """
    date_filter, params = _date_filter(as_of_dates)
    columns = (
        f"{select_list(KEY_COLUMNS, 'f')}, {select_list(CHURN_FEATURES, 'f')}, "
        f'l."{LABEL_COLUMN}"::boolean as "{LABEL_COLUMN}"'
    )
    if sample is not None and sample.sampled:
        sql = _labelled_sql(
            f"{date_filter} and f.customer_id in "
            "(select customer_id from ranked where rows_through <= $max_rows)",
            columns,
            _sample_cte(date_filter),
        )
        params["max_rows"] = sample.max_rows
    else:
        sql = _labelled_sql(date_filter, columns)
    return con.execute(f"{sql} order by f.as_of_date, f.customer_id", params or None).df()


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
        sample: Which labelled rows were read (every one, or a sample of whole customers).
    """

    labelled: pd.DataFrame
    identity_map: pd.DataFrame
    customers: pd.DataFrame
    horizon_days: int
    sample: TrainingSample


def read_training_inputs(
    con: duckdb.DuckDBPyConnection, training_as_of_dates: int, max_rows: int | None = None
) -> ChurnTrainingInputs:
    """Read the rows of the out-of-time split of ``training_as_of_dates`` training dates,
    a sample of whole customers when they are more than ``max_rows`` (``read_labelled_features``).
    """
    horizon_days = read_churn_horizon_days(con)
    train, calibration, validation = out_of_time_dates(
        read_labelled_as_of_dates(con), training_as_of_dates, horizon_days
    )
    split_dates = [*train, validation, *([calibration] if calibration is not None else [])]
    sample = training_sample(con, split_dates, max_rows)
    labelled = read_labelled_features(con, split_dates, sample)
    return ChurnTrainingInputs(
        labelled=labelled,
        identity_map=con.sql("select * from marts.customer_identity_map").df(),
        customers=con.sql("select customer_id, birth_year, gender from marts.customers").df(),
        horizon_days=horizon_days,
        sample=sample,
    )
