"""Oracle AUC: how well the synthetic world's true churn probabilities rank the observed labels.

The synthetic generator knows each person's true 90-day churn probability. Scoring the pipeline's
own validation rows with it gives the best AUC any model could expect on those rows, so the gap
between the model's AUC and the oracle's says how much signal the pipeline leaves on the table.
With real data there is no truth folder and the oracle is ``None``.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from ml.data.features import LABEL_COLUMN

RECORD_PERSONS_FILE = "record_persons.parquet"
CHURN_TRUTH_FILE = "churn_truth.parquet"

_ORACLE_SQL = f"""
    with persons as (
        select distinct m.customer_id, rp.person_id
        from identity_map as m
        join read_parquet($record_persons) as rp
          on rp.customer_record_id = m.customer_record_id
    ),
    truth_per_customer as (
        -- one customer may merge several persons (imperfect identity resolution): average them
        select p.customer_id, t.as_of_date, avg(t.churn_probability_90d) as true_probability
        from persons as p
        join read_parquet($churn_truth) as t on t.person_id = p.person_id
        group by all
    )
    select k."{LABEL_COLUMN}"::integer as observed, t.true_probability
    from validation_keys as k
    join truth_per_customer as t
      on t.customer_id = k.customer_id and t.as_of_date = k.as_of_date::date
"""


def oracle_auc(
    validation_keys: pd.DataFrame, identity_map: pd.DataFrame, truth_dir: Path
) -> float | None:
    """ROC AUC of the true churn probability against the labels the pipeline observed.

    Args:
        validation_keys: Validation rows: customer_id, as_of_date, churned.
        identity_map: ``marts.customer_identity_map`` (customer_record_id, customer_id).
        truth_dir: Folder with the generator's ``record_persons.parquet`` and
            ``churn_truth.parquet``.

    Returns:
        The oracle AUC over the validation rows that reach a person in the truth, or ``None``
        when the truth files are missing (real data) or the matched rows hold a single class.
    """
    record_persons, churn_truth = truth_dir / RECORD_PERSONS_FILE, truth_dir / CHURN_TRUTH_FILE
    if not (record_persons.is_file() and churn_truth.is_file()):
        return None
    with duckdb.connect() as con:
        con.register("validation_keys", validation_keys)
        con.register("identity_map", identity_map[["customer_record_id", "customer_id"]])
        matched = con.execute(
            _ORACLE_SQL,
            {"record_persons": str(record_persons), "churn_truth": str(churn_truth)},
        ).df()
    observed = matched["observed"].to_numpy()
    if len(matched) == 0 or np.unique(observed).size < 2:
        return None
    return float(roc_auc_score(observed, matched["true_probability"].to_numpy()))
