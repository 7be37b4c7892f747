"""A flat customer export with a churn flag (snapshot mode), like the public Telco file, shared
by the snapshot-model and partial-source tests."""

from __future__ import annotations

import numpy as np
import pandas as pd

from ml.core.maths import sigmoid

SNAPSHOT_MAPPING = """\
customer_snapshot:
  file: customers.csv
  columns: {Customer ID: customer_id}
  churned: {column: Churn, true_values: ["Yes"], false_values: ["No"]}
  protected: [Senior Citizen]
  drop: {Churn Reason: written after the customer left (leakage)}
  labels: {Tenure: months as a customer}
  sentinels: {Last Complaint Days: {"-1": never complained}}
"""


def snapshot_export(n: int = 1_500, seed: int = 5) -> pd.DataFrame:
    """Customers whose churn follows the contract and tenure; seniors churn more (as in Telco)."""
    rng = np.random.default_rng(seed)
    contract = rng.choice(["Month-to-month", "One year", "Two year"], n, p=[0.5, 0.25, 0.25])
    tenure = rng.integers(1, 72, n)
    senior = rng.uniform(size=n) < 0.2
    logit = (
        -1.2
        + np.select([contract == "Month-to-month", contract == "One year"], [1.8, 0.2], -1.0)
        - 0.03 * tenure
        + 0.8 * senior
    )
    churned = rng.uniform(size=n) < sigmoid(logit)
    complaint = np.where(rng.uniform(size=n) < 0.6, -1, rng.integers(0, 300, n))
    return pd.DataFrame(
        {
            "Customer ID": [f"C{i:05d}" for i in range(n)],
            "Contract": contract,
            "Tenure": tenure,
            "Monthly Charges": rng.uniform(20, 110, n).round(2),
            "Last Complaint Days": complaint,
            "Senior Citizen": senior.astype(int),
            "Churn Reason": np.where(churned, "Competitor", ""),
            "Churn": np.where(churned, "Yes", "No"),
        }
    )
