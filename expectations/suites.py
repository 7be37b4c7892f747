"""Great Expectations suites, one per table contract, built from ``ml/data/contract.py`` and
``ml/data/features.py`` so the checks cannot drift away from the contracts they guard.

Raw tables hold the source values as they are, so the raw suites are tolerant where staging does
the cleaning, and strict where ingest already guarantees something:

* Required columns are never null (ingest quarantines such rows): strict.
* Accepted values are checked case- and whitespace-insensitively, with ``-``, ``_`` and space
  interchangeable (``" Month_To_Month"`` is accepted for ``month-to-month``), because staging
  applies ``lower(trim())``; GX cannot transform a column, so this is a regular expression. What
  is left after that is a real typo, tolerated up to ``1 - mostly`` of the rows.
* Keys are unique for at least ``mostly`` of the rows: exact duplicate records are expected in a
  CRM export and are dropped in staging.
* Numeric ranges hold for at least ``mostly`` of the rows.

The feature table is what models read, so its suite is strict: exact column set (every allowed
feature present, nothing else, so no PII or protected column), unique compound key, value ranges,
allowed categories, bounded null rates and a minimum row count.

``great_expectations`` takes seconds to import, so it is imported inside the functions.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from ml.data.contract import Table
from ml.data.features import CHURN_FEATURES, KEY_COLUMNS

if TYPE_CHECKING:
    import great_expectations as gx

ACCEPTED_VALUES: dict[tuple[str, str], tuple[str, ...]] = {
    ("events", "event_type"): (
        "login",
        "email_open",
        "email_click",
        "pricing_page_visit",
        "feature_use",
    ),
    ("subscriptions", "plan"): ("basic", "standard", "premium"),
    ("subscriptions", "contract_type"): ("month-to-month", "one-year", "two-year"),
    ("subscriptions", "end_reason"): ("cancelled", "plan_change", "price_change"),
    ("consents", "channel"): ("email", "phone", "sms"),
    ("consents", "status"): ("granted", "withdrawn"),
    ("orders", "status"): ("completed", "refunded"),
    ("support_tickets", "priority"): ("low", "normal", "high"),
    ("support_tickets", "category"): ("billing", "technical", "account", "other"),
}

# (table, column) -> (min, max); None means unbounded on that side.
RAW_RANGES: dict[tuple[str, str], tuple[float | None, float | None]] = {
    ("subscriptions", "monthly_price"): (0, None),
    ("support_tickets", "satisfaction_score"): (1, 5),
}

# Counts of things in a window: never negative, never null.
FEATURE_COUNTS: tuple[str, ...] = (
    "plan_changes_365d",
    "downgrades_90d",
    "logins_30d",
    "logins_31_60d",
    "feature_uses_30d",
    "email_opens_30d",
    "email_clicks_30d",
    "pricing_page_visits_30d",
    "tickets_30d",
    "tickets_90d",
    "open_tickets",
    "orders_90d",
)

# Largest share of nulls a feature may have before the table is considered broken.
FEATURE_MAX_NULL_SHARE: dict[str, float] = {
    "days_since_last_login": 0.30,
    # null for month-to-month contracts; a mostly-null column means contract types went missing
    "months_to_renewal": 0.90,
}


def accepted_values_regex(values: tuple[str, ...]) -> str:
    """Regex matching any of ``values`` ignoring case, surrounding spaces and ``-``/``_``/space."""
    alternatives = "|".join(
        "[-_ ]".join(re.escape(part) for part in re.split(r"[-_ ]", v)) for v in values
    )
    return rf"^\s*(?i:{alternatives})\s*$"


def raw_suite(table: Table, *, mostly: float = 0.99) -> gx.ExpectationSuite:
    """Build the suite of one raw contract table (``raw.<table>`` as a data frame).

    Args:
        table: The contract table.
        mostly: Share of rows that must satisfy the tolerant expectations (key uniqueness,
            accepted values, numeric ranges); see the module docstring.

    Returns:
        A suite named ``raw_<table>``.
    """
    import great_expectations as gx

    gxe = gx.expectations
    expectations: list[gx.expectations.Expectation] = [
        gxe.ExpectTableColumnsToMatchSet(column_set=list(table.column_names), exact_match=True),
        gxe.ExpectColumnValuesToBeUnique(column=table.key, mostly=mostly),
    ]
    expectations += [
        gxe.ExpectColumnValuesToNotBeNull(column=name) for name in table.required_columns
    ]
    for (table_name, column), values in ACCEPTED_VALUES.items():
        if table_name == table.name:
            expectations.append(
                gxe.ExpectColumnValuesToMatchRegex(
                    column=column, regex=accepted_values_regex(values), mostly=mostly
                )
            )
    for (table_name, column), (low, high) in RAW_RANGES.items():
        if table_name == table.name:
            expectations.append(
                gxe.ExpectColumnValuesToBeBetween(
                    column=column, min_value=low, max_value=high, mostly=mostly
                )
            )
    return gx.ExpectationSuite(name=f"raw_{table.name}", expectations=expectations)


def customer_features_suite(min_rows: int) -> gx.ExpectationSuite:
    """Build the suite of ``marts.customer_features`` (the table models read).

    Args:
        min_rows: Fewest rows a usable feature table has (an empty or truncated build fails).

    Returns:
        A suite named ``customer_features``.
    """
    import great_expectations as gx

    gxe = gx.expectations
    customer_id, as_of_date = KEY_COLUMNS
    expectations: list[gx.expectations.Expectation] = [
        # Exactly the keys and the allow-listed features: a PII or protected column that
        # slipped into the mart fails here, before it can reach training.
        gxe.ExpectTableColumnsToMatchSet(
            column_set=[*KEY_COLUMNS, *CHURN_FEATURES], exact_match=True
        ),
        gxe.ExpectTableRowCountToBeBetween(min_value=min_rows),
        gxe.ExpectCompoundColumnsToBeUnique(column_list=list(KEY_COLUMNS)),
        gxe.ExpectColumnValuesToNotBeNull(column=customer_id),
        gxe.ExpectColumnValuesToNotBeNull(column=as_of_date),
    ]
    for column in (
        "plan",
        "contract_type",
        "country_code",
        "tenure_days",
        "monthly_price",
        "price_change_90d",
        "login_trend",
        *FEATURE_COUNTS,
    ):
        expectations.append(gxe.ExpectColumnValuesToNotBeNull(column=column))
    for column, share in FEATURE_MAX_NULL_SHARE.items():
        expectations.append(gxe.ExpectColumnValuesToNotBeNull(column=column, mostly=1 - share))
    for column in (
        *FEATURE_COUNTS,
        "tenure_days",
        "days_since_last_login",
        "days_since_last_order",
    ):
        expectations.append(gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0))
    for column in ("monthly_price", "login_trend"):
        expectations.append(
            gxe.ExpectColumnValuesToBeBetween(column=column, min_value=0, strict_min=True)
        )
    expectations.append(
        gxe.ExpectColumnValuesToBeBetween(column="avg_satisfaction_90d", min_value=1, max_value=5)
    )
    # Staging standardised the categories, so the features must hold the exact values.
    for column in ("plan", "contract_type"):
        expectations.append(
            gxe.ExpectColumnValuesToBeInSet(
                column=column, value_set=list(ACCEPTED_VALUES[("subscriptions", column)])
            )
        )
    return gx.ExpectationSuite(name="customer_features", expectations=expectations)
