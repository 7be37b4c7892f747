"""What the customer value models read: the purchases and the feature snapshots around them."""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import pandas as pd

from ml.data.features import read_newest_as_of_date, read_reference_features


def read_transactions(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Completed orders with a positive amount, the purchases of the CLV models.

    Returns:
        ``customer_id``, ``ordered_at``, ``amount``, ordered by customer_id and ordered_at.
    """
    sql = """
        select customer_id, ordered_at, amount
        from marts.orders
        where status = 'completed' and amount > 0
        order by customer_id, ordered_at
    """
    return con.execute(sql).df()


def _features_at(con: duckdb.DuckDBPyConnection, as_of: pd.Timestamp) -> pd.DataFrame:
    """The allow-listed features of every customer at one as-of date, keyed by customer."""
    return read_reference_features(con, [as_of.date()]).drop(columns=["as_of_date"])


@dataclass(frozen=True, eq=False)
class ValueTrainingInputs:
    """What one customer-value training run reads.

    The two models are compared out of time on the ``comparison_months`` before the newest
    snapshot: fitted at ``cutoff`` (CatBoost trained on the window before that), judged on the
    orders after it; the winner is refitted at ``as_of``.

    Attributes:
        transactions: ``read_transactions``.
        as_of: The newest feature snapshot.
        cutoff: ``as_of`` minus the comparison window.
        features_at_cutoff: Features at ``cutoff``.
        features_before_cutoff: Features one comparison window before ``cutoff``.
        features_a_year_before: Features 12 months before ``as_of`` (the served CatBoost
            regressor learns from the year before it).
    """

    transactions: pd.DataFrame
    as_of: pd.Timestamp
    cutoff: pd.Timestamp
    features_at_cutoff: pd.DataFrame
    features_before_cutoff: pd.DataFrame
    features_a_year_before: pd.DataFrame


def read_training_inputs(
    con: duckdb.DuckDBPyConnection, comparison_months: int = 6
) -> ValueTrainingInputs:
    """Read the orders and the feature snapshots the comparison and the refit use."""
    as_of = pd.Timestamp(read_newest_as_of_date(con))
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
    """The orders and the features of the newest snapshot, which is scored."""

    transactions: pd.DataFrame
    as_of: pd.Timestamp
    features: pd.DataFrame


def read_scoring_inputs(con: duckdb.DuckDBPyConnection) -> ValueScoringInputs:
    """Read what scoring the newest snapshot needs."""
    as_of = pd.Timestamp(read_newest_as_of_date(con))
    return ValueScoringInputs(read_transactions(con), as_of, _features_at(con, as_of))
