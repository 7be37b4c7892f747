"""What the retention uplift model reads: the CRM's randomised campaign sends and their outcomes."""

from __future__ import annotations

import duckdb
import pandas as pd

from ml.data.features import CHURN_FEATURES, FEATURES_TABLE, KEY_COLUMNS, select_list

CAMPAIGN_SENDS_TABLE = "marts.campaign_sends"


def read_campaign_sends(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Read the campaign sends with a known outcome and the customer's features before the send.

    Returns:
        ``send_id``, ``campaign_id``, ``campaign_type``, ``is_treated``, ``outcome``, the key
        columns and the allow-listed features, ordered by sent_at and send_id. Sends whose
        customer has no feature row at that as-of date (not yet active) are left out.
    """
    sql = f"""
        select s.send_id, s.campaign_id, s.campaign_type, s.is_treated, s.outcome,
               {select_list(KEY_COLUMNS, "f")}, {select_list(CHURN_FEATURES, "f")}
        from {CAMPAIGN_SENDS_TABLE} as s
        join {FEATURES_TABLE} as f
          on f.customer_id = s.customer_id and f.as_of_date = s.as_of_date
        where s.outcome is not null
        order by s.sent_at, s.send_id
    """
    return con.execute(sql).df()
