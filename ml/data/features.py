"""Which columns of ``marts.customer_features`` a model may use.

The allow-list is explicit: a column that is not named here never reaches a model, so a PII or
protected column added upstream cannot leak into training by accident.
"""

from __future__ import annotations

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
