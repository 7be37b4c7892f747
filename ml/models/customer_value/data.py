"""What the customer value models read: the purchases and the feature snapshots around them.

A source may hold orders and nothing else (a transaction log, docs/customer-value.md): then there
are no feature snapshots, the as-of date is the day after the newest order and the models use the
order history alone.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pandas as pd

from ml.core.warehouse import fetch_row
from ml.data.features import FEATURES_TABLE, read_reference_features


def read_transactions(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Completed orders with a positive amount, the purchases of the CLV models.

    A transaction log may carry no status (every row is a purchase) and no amounts (``amount``
    is null: the models then predict purchases only, ``value_unavailable_reason``).

    Returns:
        ``customer_id``, ``ordered_at``, ``amount``, ordered by customer_id and ordered_at.
    """
    sql = """
        select customer_id, ordered_at, amount
        from marts.orders
        where coalesce(status, 'completed') = 'completed' and (amount > 0 or amount is null)
        order by customer_id, ordered_at
    """
    return con.execute(sql).df()


def _has_features(con: duckdb.DuckDBPyConnection) -> bool:
    (found,) = fetch_row(con, f"select exists (select 1 from {FEATURES_TABLE})")
    return bool(found)


def read_as_of(con: duckdb.DuckDBPyConnection) -> pd.Timestamp:
    """The date predictions start from: the newest feature snapshot, or, for a source without
    snapshots (orders only), the day after the newest order.

    Raises:
        ValueError: There is neither a snapshot nor an order.
    """
    (as_of,) = fetch_row(
        con,
        f"""
        select coalesce(
            (select max(as_of_date) from {FEATURES_TABLE}),
            (select cast(max(ordered_at) as date) + 1 from marts.orders)
        )
        """,
    )
    if as_of is None:
        raise ValueError(f"{FEATURES_TABLE} and marts.orders are empty: nothing to score")
    return pd.Timestamp(as_of)


def _features_at(con: duckdb.DuckDBPyConnection, as_of: pd.Timestamp) -> pd.DataFrame | None:
    """The allow-listed features of every customer at one as-of date, keyed by customer; None
    when the source has no feature snapshots at all (orders only)."""
    if not _has_features(con):
        return None
    return read_reference_features(con, [as_of.date()]).drop(columns=["as_of_date"])


@dataclass(frozen=True, eq=False)
class ValueTrainingInputs:
    """What one customer-value training run reads.

    The two models are compared out of time on the ``comparison_months`` before the newest
    snapshot: fitted at ``cutoff`` (CatBoost trained on the window before that), judged on the
    orders after it; the winner is refitted at ``as_of``.

    Attributes:
        transactions: ``read_transactions``.
        as_of: ``read_as_of``: the newest feature snapshot, or the day after the newest order.
        cutoff: ``as_of`` minus the comparison window.
        features_at_cutoff: Features at ``cutoff``; None without feature snapshots (here and
            below).
        features_before_cutoff: Features one comparison window before ``cutoff``.
        features_a_year_before: Features 12 months before ``as_of`` (the served CatBoost
            regressor learns from the year before it).
    """

    transactions: pd.DataFrame
    as_of: pd.Timestamp
    cutoff: pd.Timestamp
    features_at_cutoff: pd.DataFrame | None
    features_before_cutoff: pd.DataFrame | None
    features_a_year_before: pd.DataFrame | None


def read_training_inputs(
    con: duckdb.DuckDBPyConnection, comparison_months: int = 6
) -> ValueTrainingInputs:
    """Read the orders and the feature snapshots the comparison and the refit use."""
    as_of = read_as_of(con)
    cutoff = as_of - pd.DateOffset(months=comparison_months)
    return ValueTrainingInputs(
        transactions=read_transactions(con),
        as_of=as_of,
        cutoff=cutoff,
        features_at_cutoff=_features_at(con, cutoff),
        features_before_cutoff=_features_at(con, cutoff - pd.DateOffset(months=comparison_months)),
        features_a_year_before=_features_at(con, as_of - pd.DateOffset(months=12)),
    )


@dataclass(frozen=True, eq=False)
class ValueScoringInputs:
    """The orders and the features of the newest snapshot (None without snapshots), scored."""

    transactions: pd.DataFrame
    as_of: pd.Timestamp
    features: pd.DataFrame | None


def read_scoring_inputs(con: duckdb.DuckDBPyConnection) -> ValueScoringInputs:
    """Read what scoring the newest snapshot needs."""
    as_of = read_as_of(con)
    return ValueScoringInputs(read_transactions(con), as_of, _features_at(con, as_of))
