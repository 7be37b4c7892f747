"""What the next best action reads: every model's newest scores, consent and the contact log."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date

import duckdb
import pandas as pd

from ml.core.warehouse import table_exists
from ml.data.features import FEATURES_TABLE


def read_consent_in_force(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The latest recorded consent choice per customer and channel.

    Returns:
        ``customer_id``, ``channel``, ``granted`` (bool).
    """
    sql = """
        select customer_id, channel, granted
        from marts.consent_in_force
        order by customer_id, channel
    """
    return con.execute(sql).df()


# Serving table of an optional model -> (its column, name in the action inputs, SQL type).
_ACTION_INPUTS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "customer_uplift": (("retention_uplift", "retention_uplift", "double"),),
    "customer_value": (("expected_value_12m", "expected_order_value_12m", "double"),),
    "next_product_offers": (
        ("product_category", "product_category", "varchar"),
        ("probability", "product_probability", "double"),
    ),
}


def read_action_inputs(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """One row per customer of the newest churn scores, with every other model's output.

    Outputs of models that have no serving table (uplift without campaign tests, for example)
    are null, and the next-best-action rules count them as zero.

    Returns:
        The columns of ``ml.models.next_best_action.model.INPUT_COLUMNS``, ordered by customer_id.
    """
    columns: list[str] = []
    joins: list[str] = []
    for table, outputs in _ACTION_INPUTS.items():
        present = table_exists(con, "serving", table)
        for column, name, sql_type in outputs:
            columns.append(
                f"{table}.{column} as {name}" if present else f"null::{sql_type} as {name}"
            )
        if present:
            joins.append(
                f"left join serving.{table} on {table}.customer_id = s.customer_id "
                f"and {table}.as_of_date = s.as_of_date"
            )
    sql = f"""
        with latest as (
            select * from serving.customer_scores
            where as_of_date = (select max(as_of_date) from serving.customer_scores)
        ),
        category_value as (
            select product_category, avg(amount) as category_order_value
            from marts.orders
            where status = 'completed' and amount > 0
            group by product_category
        ),
        inputs as (
            select s.customer_id, s.as_of_date, s.churn_probability,
                   f.monthly_price as monthly_value, {", ".join(columns)}
            from latest as s
            join {FEATURES_TABLE} as f
              on f.customer_id = s.customer_id and f.as_of_date = s.as_of_date
            {" ".join(joins)}
        )
        select inputs.*, category_value.category_order_value
        from inputs
        left join category_value using (product_category)
        order by inputs.customer_id
    """
    return con.execute(sql).df()


def read_recent_contacts(
    con: duckdb.DuckDBPyConnection, as_of: date, periods_days: Sequence[int]
) -> pd.DataFrame:
    """Contacts per customer and channel in each period before ``as_of`` (frequency caps).

    Returns:
        ``customer_id``, ``channel``, ``period_days``, ``contacts`` (contacts in
        ``[as_of - period_days, as_of)``); customers without contacts have no row.
    """
    sql = """
        select c.customer_id, c.channel, p.period_days, count(*) as contacts
        from marts.contacts as c
        cross join (select unnest($periods::integer[]) as period_days) as p
        where c.contacted_at >= $as_of::timestamp - to_days(p.period_days)
          and c.contacted_at < $as_of::timestamp
        group by all
        order by all
    """
    return con.execute(sql, {"as_of": as_of, "periods": sorted(set(periods_days))}).df()


@dataclass(frozen=True, eq=False)
class DecisionInputs:
    """Everything one next-best-action decision reads.

    Attributes:
        scores: ``read_action_inputs``: one row per customer with every model's output.
        consent_in_force: ``read_consent_in_force``.
        recent_contacts: ``read_recent_contacts`` for the caps' periods.
    """

    scores: pd.DataFrame
    consent_in_force: pd.DataFrame
    recent_contacts: pd.DataFrame


def read_decision_inputs(
    con: duckdb.DuckDBPyConnection, cap_periods_days: Sequence[int]
) -> DecisionInputs:
    """Read the newest scores, the consent in force and the contacts in the caps' periods."""
    scores = read_action_inputs(con)
    as_of = scores["as_of_date"].iloc[0]
    return DecisionInputs(
        scores, read_consent_in_force(con), read_recent_contacts(con, as_of, cap_periods_days)
    )
