"""Which columns of ``marts.customer_features`` a model may use, and the reads of that mart.

The allow-list is explicit: a column that is not named here never reaches a model, so a PII or
protected column added upstream cannot leak into training by accident. Every read below selects
only the keys and the allow-listed features; the work is SQL in DuckDB and pandas only receives
the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import duckdb
import pandas as pd

from ml.core.warehouse import fetch_row

KEY_COLUMNS: tuple[str, ...] = ("customer_id", "as_of_date")
LABEL_COLUMN = "churned"

CATEGORICAL_FEATURES: tuple[str, ...] = (
    "plan",
    "contract_type",
    "acquisition_channel",
    "country_code",
)

NUMERIC_FEATURES: tuple[str, ...] = (
    "tenure_days",
    "monthly_price",
    "price_change_90d",
    "plan_changes_365d",
    "downgrades_90d",
    "months_to_renewal",
    "logins_30d",
    "logins_31_60d",
    "login_trend",
    "days_since_last_login",
    "feature_uses_30d",
    "email_opens_30d",
    "email_clicks_30d",
    "pricing_page_visits_30d",
    "tickets_30d",
    "tickets_90d",
    "open_tickets",
    "avg_satisfaction_90d",
    "orders_90d",
    "order_value_90d",
    "days_since_last_order",
)

CHURN_FEATURES: tuple[str, ...] = CATEGORICAL_FEATURES + NUMERIC_FEATURES

# Domain knowledge the model must respect: more of these never lowers the churn risk. CatBoost
# enforces it (monotone constraints), so a score cannot fall because a customer opened a ticket,
# and the SHAP-based reasons never say "fewer tickets" as a risk.
RISK_NEVER_FALLS_WITH: tuple[str, ...] = (
    "tickets_30d",
    "tickets_90d",
    "open_tickets",
    "downgrades_90d",
)

FEATURES_TABLE = "marts.customer_features"
SCORING_BUCKETS = 8


def select_list(columns: Sequence[str], alias: str) -> str:
    """``alias."col", ...`` for a SQL select list."""
    return ", ".join(f'{alias}."{c}"' for c in columns)


@dataclass(frozen=True)
class CustomerBucket:
    """One of ``count`` buckets of customers, by a stable hash of the customer id.

    The same customer lands in the same bucket on every run and machine (DuckDB ``md5_number``),
    so scoring can fan out over buckets (``ml.serving.partitioning``).
    """

    index: int
    count: int = SCORING_BUCKETS

    def __post_init__(self) -> None:
        if not 0 <= self.index < self.count:
            raise ValueError(f"bucket {self.index} is outside 0..{self.count - 1}")

    def predicate(self, column: str) -> str:
        """SQL predicate selecting this bucket's rows by the id in ``column`` (an identifier)."""
        return f"md5_number(cast({column} as varchar)) % {int(self.count)} = {int(self.index)}"


def read_scoring_features(
    con: duckdb.DuckDBPyConnection,
    as_of_date: date | None = None,
    bucket: CustomerBucket | None = None,
) -> pd.DataFrame:
    """Read the feature rows to score: one as-of date, the newest one by default.

    Args:
        con: Connection to the warehouse holding ``marts.customer_features``.
        as_of_date: The as-of date to score; ``None`` means the newest in the table.
        bucket: Only the customers of this bucket; ``None`` for all.

    Returns:
        The key columns and the allow-listed features, ordered by customer_id. Empty when the
        table has no row for that date.
    """
    in_bucket = "true" if bucket is None else bucket.predicate("f.customer_id")
    sql = f"""
        select {select_list(KEY_COLUMNS, "f")}, {select_list(CHURN_FEATURES, "f")}
        from {FEATURES_TABLE} as f
        where f.as_of_date = coalesce(
            $as_of_date::date, (select max(as_of_date) from {FEATURES_TABLE})
        ) and {in_bucket}
        order by f.customer_id
    """
    return con.execute(sql, {"as_of_date": as_of_date}).df()


def read_newest_as_of_date(con: duckdb.DuckDBPyConnection) -> date:
    """The newest as-of date of the feature snapshots (the date scoring is for)."""
    (newest,) = fetch_row(con, f"select max(as_of_date) from {FEATURES_TABLE}")
    if newest is None:
        raise ValueError(f"{FEATURES_TABLE} holds no snapshot yet")
    return newest  # type: ignore[no-any-return]


def read_reference_features(
    con: duckdb.DuckDBPyConnection,
    as_of_dates: Sequence[date],
    max_rows: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Read the feature rows of given as-of dates, e.g. a model's training dates for drift.

    Args:
        con: Connection to the warehouse holding ``marts.customer_features``.
        as_of_dates: The as-of dates to read (``ChurnModel.training_as_of_dates``).
        max_rows: At most this many rows, a seeded sample taken in DuckDB (the rows with the
            smallest hash of key and seed), so millions of training rows never reach pandas
            when drift needs a sample; ``None`` reads every row.
        seed: Seed of the sample: the same seed and data give the same rows.

    Returns:
        The key columns and the allow-listed features, ordered by as_of_date and customer_id.
    """
    # A hash order rather than USING SAMPLE: it is the same sample whatever the thread count.
    sample = (
        "" if max_rows is None else "order by hash(f.customer_id, f.as_of_date, $seed) limit $n"
    )
    sql = f"""
        select * from (
            select {select_list(KEY_COLUMNS, "f")}, {select_list(CHURN_FEATURES, "f")}
            from {FEATURES_TABLE} as f
            where f.as_of_date in (select unnest($as_of_dates::date[]))
            {sample}
        )
        order by as_of_date, customer_id
    """
    params: dict[str, object] = {"as_of_dates": list(as_of_dates)}
    if max_rows is not None:
        params.update(n=int(max_rows), seed=int(seed))
    return con.execute(sql, params).df()


def read_audit_customers(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """``customer_id`` and the protected attributes (``birth_year``, ``gender``) of
    ``marts.customers``, for a fairness audit of who a model selects only: never features."""
    return con.sql("select customer_id, birth_year, gender from marts.customers").df()
