"""Read the training and scoring frames from the marts.

Only the columns named in :mod:`ml.data.features` are selected (keys, the allow-listed features and the
label), so a column added upstream, PII or protected, can never reach a model through these reads.
The work is SQL in DuckDB; pandas only receives the result.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date

import duckdb
import pandas as pd

from ml.core.warehouse import quote_ident
from ml.data.features import CHURN_FEATURES, KEY_COLUMNS, LABEL_COLUMN
from ml.models.churn.explain import TYPICAL_FEATURES
from ml.serving.partitioning import SCORING_BUCKETS, bucket_predicate

FEATURES_TABLE = "marts.customer_features"
LABELS_TABLE = "marts.churn_labels"


def _quoted(columns: tuple[str, ...], alias: str) -> str:
    return ", ".join(f'{alias}."{c}"' for c in columns)


def read_labelled_as_of_dates(con: duckdb.DuckDBPyConnection) -> list[date]:
    """The as-of dates that have at least one row with a fully observed label window."""
    rows = con.execute(
        f"select distinct as_of_date from {LABELS_TABLE} where label_available order by 1"
    ).fetchall()
    return [row[0] for row in rows]


def read_labelled_features(
    con: duckdb.DuckDBPyConnection, as_of_dates: Sequence[date] | None = None
) -> pd.DataFrame:
    """Read the feature rows whose 90-day label window is fully observed, with their label.

    Args:
        con: Connection to the warehouse holding ``marts.customer_features`` and
            ``marts.churn_labels``.
        as_of_dates: Only these as-of dates (``ml.models.churn.model.out_of_time_dates`` of a split), so
            the older snapshots never reach pandas; ``None`` reads every labelled row.

    Returns:
        One row per customer per labelled as-of date: the key columns, the allow-listed features
        and ``churned`` (bool), ordered by as_of_date and customer_id so the result is
        deterministic.
    """
    date_filter = (
        "" if as_of_dates is None else "and f.as_of_date in (select unnest($as_of_dates::date[]))"
    )
    sql = f"""
        select {_quoted(KEY_COLUMNS, "f")}, {_quoted(CHURN_FEATURES, "f")},
               l."{LABEL_COLUMN}"::boolean as "{LABEL_COLUMN}"
        from {FEATURES_TABLE} as f
        join {LABELS_TABLE} as l
          on l.customer_id = f.customer_id and l.as_of_date = f.as_of_date
        where l.label_available {date_filter}
        order by f.as_of_date, f.customer_id
    """
    params = None if as_of_dates is None else {"as_of_dates": list(as_of_dates)}
    return con.execute(sql, params).df()


def read_scoring_features(
    con: duckdb.DuckDBPyConnection,
    as_of_date: date | None = None,
    bucket: int | None = None,
    buckets: int = SCORING_BUCKETS,
) -> pd.DataFrame:
    """Read the feature rows to score: one as-of date, the newest one by default.

    Args:
        con: Connection to the warehouse holding ``marts.customer_features``.
        as_of_date: The as-of date to score; ``None`` means the newest in the table.
        bucket: Only the customers of this bucket (``ml.serving.partitioning``); ``None`` for all.
        buckets: Number of buckets, with ``bucket``.

    Returns:
        The key columns and the allow-listed features, ordered by customer_id. Empty when the
        table has no row for that date.
    """
    in_bucket = "true" if bucket is None else bucket_predicate("f.customer_id", bucket, buckets)
    sql = f"""
        select {_quoted(KEY_COLUMNS, "f")}, {_quoted(CHURN_FEATURES, "f")}
        from {FEATURES_TABLE} as f
        where f.as_of_date = coalesce(
            $as_of_date::date, (select max(as_of_date) from {FEATURES_TABLE})
        ) and {in_bucket}
        order by f.customer_id
    """
    return con.execute(sql, {"as_of_date": as_of_date}).df()


def read_typical_values(
    con: duckdb.DuckDBPyConnection, as_of_date: date | None = None
) -> dict[str, float]:
    """``ml.models.churn.explain.typical_values`` of a whole snapshot, computed in DuckDB.

    A bucket of customers is explained against what is typical for everyone scored, so its
    reasons say what unpartitioned scoring says. DuckDB's median interpolates as pandas' does.
    """
    columns = sorted(TYPICAL_FEATURES)
    medians = ", ".join(f"median(cast(f.{quote_ident(c)} as double))" for c in columns)
    row = con.execute(
        f"select {medians} from {FEATURES_TABLE} as f where f.as_of_date = coalesce("
        f"$as_of_date::date, (select max(as_of_date) from {FEATURES_TABLE}))",
        {"as_of_date": as_of_date},
    ).fetchall()[0]
    return {c: float(v) for c, v in zip(columns, row, strict=True) if v is not None}


def read_reference_features(
    con: duckdb.DuckDBPyConnection,
    as_of_dates: Sequence[date],
    max_rows: int | None = None,
    seed: int = 0,
) -> pd.DataFrame:
    """Read the feature rows of given as-of dates, e.g. a model's training dates for drift.

    Args:
        con: Connection to the warehouse holding ``marts.customer_features``.
        as_of_dates: The as-of dates to read (``ChurnModel.training_as_of_dates``).
        max_rows: At most this many rows, a seeded sample taken in DuckDB (the rows with the
            smallest hash of key and seed), so millions of training rows never reach pandas
            when drift needs a sample; ``None`` reads every row.
        seed: Seed of the sample: the same seed and data give the same rows.

    Returns:
        The key columns and the allow-listed features, ordered by as_of_date and customer_id.
    """
    # A hash order rather than USING SAMPLE: it is the same sample whatever the thread count.
    sample = (
        "" if max_rows is None else "order by hash(f.customer_id, f.as_of_date, $seed) limit $n"
    )
    sql = f"""
        select * from (
            select {_quoted(KEY_COLUMNS, "f")}, {_quoted(CHURN_FEATURES, "f")}
            from {FEATURES_TABLE} as f
            where f.as_of_date in (select unnest($as_of_dates::date[]))
            {sample}
        )
        order by as_of_date, customer_id
    """
    params: dict[str, object] = {"as_of_dates": list(as_of_dates)}
    if max_rows is not None:
        params.update(n=int(max_rows), seed=int(seed))
    return con.execute(sql, params).df()


PRODUCT_LABELS_TABLE = "marts.product_purchase_labels"
CAMPAIGN_SENDS_TABLE = "marts.campaign_sends"


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
        select {_quoted(KEY_COLUMNS, "f")}, p.product_category, {_quoted(CHURN_FEATURES, "f")}
               {label}
        from {PRODUCT_LABELS_TABLE} as p
        join {FEATURES_TABLE} as f
          on f.customer_id = p.customer_id and f.as_of_date = p.as_of_date
        where {dates.format(t=PRODUCT_LABELS_TABLE)}
        order by p.as_of_date, p.customer_id, p.product_category
    """
    return con.execute(sql, {"n": last_as_of_dates} if labelled else {}).df()


def read_campaign_sends(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """Read the campaign sends with a known outcome and the customer's features before the send.

    Returns:
        ``send_id``, ``campaign_id``, ``campaign_type``, ``is_treated``, ``outcome``, the key
        columns and the allow-listed features, ordered by sent_at and send_id. Sends whose
        customer has no feature row at that as-of date (not yet active) are left out.
    """
    sql = f"""
        select s.send_id, s.campaign_id, s.campaign_type, s.is_treated, s.outcome,
               {_quoted(KEY_COLUMNS, "f")}, {_quoted(CHURN_FEATURES, "f")}
        from {CAMPAIGN_SENDS_TABLE} as s
        join {FEATURES_TABLE} as f
          on f.customer_id = s.customer_id and f.as_of_date = s.as_of_date
        where s.outcome is not null
        order by s.sent_at, s.send_id
    """
    return con.execute(sql).df()


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


def _has_table(con: duckdb.DuckDBPyConnection, schema: str, table: str) -> bool:
    rows = con.execute(
        "select 1 from information_schema.tables where table_schema = ? and table_name = ?",
        [schema, table],
    ).fetchall()
    return bool(rows)


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
        present = _has_table(con, "serving", table)
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
