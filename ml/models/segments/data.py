"""What segmentation reads: the newest feature snapshot with each customer's churn score."""

from __future__ import annotations

import duckdb
import pandas as pd

from ml.data.features import read_scoring_features


def read_segmentation_inputs(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The newest snapshot's features of the customers scored for churn, with
    ``churn_probability`` (churn risk names and profiles the segments; it does not shape them)."""
    features = read_scoring_features(con)
    churn = con.execute(
        "select customer_id, churn_probability from serving.customer_scores where as_of_date = ?",
        [features["as_of_date"].iloc[0] if len(features) else None],
    ).df()
    return features.merge(churn, on="customer_id", how="inner", validate="one_to_one")
