"""Which columns of ``marts.customer_features`` a model may use, and the churn label.

The allow-list is explicit: a column that is not named here never reaches a model, so a PII or
protected column added upstream cannot leak into training by accident.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import duckdb

KEY_COLUMNS: tuple[str, ...] = ("customer_id", "as_of_date")
LABEL_COLUMN = "churned"
# dbt defines the label window once (var churn_horizon_days) and writes it on every label row.
CHURN_LABELS_TABLE = "marts.churn_labels"
HORIZON_COLUMN = "horizon_days"

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
        f"select count(*), count(*) - count({HORIZON_COLUMN}), count(distinct {HORIZON_COLUMN}), "
        f"min({HORIZON_COLUMN}), max({HORIZON_COLUMN}) from {CHURN_LABELS_TABLE}"
    ).fetchall()[0]
    if rows == 0:
        raise ValueError(f"{CHURN_LABELS_TABLE} holds no churn horizon: it has no rows")
    if nulls:
        raise ValueError(
            f"{CHURN_LABELS_TABLE} holds no churn horizon on {nulls} of {rows} rows "
            f"({HORIZON_COLUMN} is null)"
        )
    if horizons > 1:
        raise ValueError(
            f"{CHURN_LABELS_TABLE} holds {horizons} churn horizons ({shortest} to {longest} days); "
            "one dbt build writes one"
        )
    return int(shortest)
