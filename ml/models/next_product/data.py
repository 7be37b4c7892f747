"""What the next-product model reads: candidate categories per customer with their features."""

from __future__ import annotations

import duckdb
import pandas as pd

from ml.data.features import CHURN_FEATURES, FEATURES_TABLE, KEY_COLUMNS, select_list

PRODUCT_LABELS_TABLE = "marts.product_purchase_labels"


def read_product_candidates(
    con: duckdb.DuckDBPyConnection, labelled: bool, last_as_of_dates: int | None = None
) -> pd.DataFrame:
    """Read (customer, as-of date, category not bought yet) rows with the customer's features.

    Args:
        con: Connection to the warehouse holding the marts.
        labelled: True for the rows whose 90-day purchase window is observed (training, with
            ``purchased_within_90d``); False for the newest as-of date (scoring).
        last_as_of_dates: With ``labelled``, only the newest this many labelled as-of dates.

    Returns:
        Keys, ``product_category``, the allow-listed features (and the label when labelled),
        ordered by as_of_date, customer_id and product_category.
    """
    label = ', p."purchased_within_90d"' if labelled else ""
    if labelled:
        dates = """p.as_of_date in (
            select distinct as_of_date from {t} where label_available
            order by as_of_date desc limit coalesce($n, 100000))"""
    else:
        dates = "p.as_of_date = (select max(as_of_date) from {t})"
    sql = f"""
        select {select_list(KEY_COLUMNS, "f")}, p.product_category, {select_list(CHURN_FEATURES, "f")}
               {label}
        from {PRODUCT_LABELS_TABLE} as p
        join {FEATURES_TABLE} as f
          on f.customer_id = p.customer_id and f.as_of_date = p.as_of_date
        where {dates.format(t=PRODUCT_LABELS_TABLE)}
        order by p.as_of_date, p.customer_id, p.product_category
    """
    return con.execute(sql, {"n": last_as_of_dates} if labelled else {}).df()
