"""The serving tables: the one list of what CRM Signals publishes, and how each is published.

Each :class:`ServingTable` says what a reader needs to know and what publishing needs to do: its
grain and keys, its columns and their DuckDB types, the score that goes to the PostgreSQL
``score_history`` and how a publish replaces rows. Everything else is derived from this list:
the Dagster asset of each table (``serving/<name>``), the PostgreSQL publish and its history
(``ml.serving.publishing``), the UI check, and the test that holds docs/output-tables.md and the
real tables to it.

:func:`publish` is the one way a serving table is written: the rows are checked against the
table's columns (none missing, none extra), cast to the declared types, written in one DuckDB
transaction (a reader sees the old rows or the new, never half; a failed run leaves the last
good ones) and exported to Parquet by an atomic rename.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Literal

import duckdb
import pandas as pd

from ml.core.warehouse import create_latest_view, export_parquet, publish_table

SERVING_SCHEMA = "serving"


@dataclass(frozen=True)
class HistoryScore:
    """The score of a table that ``score_history`` keeps, one row per entity and run.

    Attributes:
        entity_column: The column naming what is scored (customer or lead).
        score_column: The score.
        as_of_column: The column giving a row's as-of date (cast to DATE).
    """

    entity_column: str
    score_column: str
    as_of_column: str = "as_of_date"


@dataclass(frozen=True)
class ServingTable:
    """One serving table.

    Attributes:
        name: Table name in the ``serving`` schema (and the asset ``serving/<name>``).
        grain: What one row is, in words.
        keys: The columns that identify a row (indexed in PostgreSQL).
        columns: ``(name, DuckDB type)`` per column, in order.
        model: The registered model whose scores the table holds, or None.
        history: The score kept in ``score_history``, or None.
        replaces: ``as_of_date``: a publish replaces the rows of its as-of date and keeps the
            others; ``whole``: a publish replaces the table; ``publish_id``: a publish adds its
            rows and keeps every earlier publish's (a rerun of the same publish replaces its own).
        latest_view: A view with the newest row per first key, or None.
        counted_by: A column whose value counts the asset shows (e.g. the risk band).
        ranked_by: A column whose highest rows the asset shows.
    """

    name: str
    grain: str
    keys: tuple[str, ...]
    columns: tuple[tuple[str, str], ...]
    model: str | None = None
    history: HistoryScore | None = None
    replaces: Literal["as_of_date", "whole", "publish_id"] = "as_of_date"
    latest_view: str | None = None
    counted_by: str | None = None
    ranked_by: str | None = None

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.columns)

    @property
    def qualified_name(self) -> str:
        return f"{SERVING_SCHEMA}.{self.name}"


_CUSTOMER = ("customer_id", "VARCHAR")
_AS_OF = ("as_of_date", "DATE")

SERVING_TABLES: tuple[ServingTable, ...] = (
    ServingTable(
        name="customer_scores",
        grain="one row per customer per as-of date",
        keys=("customer_id", "as_of_date"),
        columns=(
            _CUSTOMER,
            _AS_OF,
            ("scored_at", "TIMESTAMP"),
            ("churn_probability", "DOUBLE"),
            ("churn_risk_band", "VARCHAR"),
            ("churn_top_drivers", "VARCHAR"),
            ("churn_reason", "VARCHAR"),
            ("model_name", "VARCHAR"),
            ("model_version", "VARCHAR"),
            # Added after the first release: at the end, where additive schema evolution appends.
            ("churn_reason_factors", "VARCHAR"),
            ("features_fingerprint", "BIGINT"),
        ),
        model="churn",
        history=HistoryScore("customer_id", "churn_probability"),
        latest_view="customer_scores_latest",
        counted_by="churn_risk_band",
        ranked_by="churn_probability",
    ),
    ServingTable(
        name="customer_segments",
        grain="one row per customer per as-of date",
        keys=("customer_id", "as_of_date"),
        columns=(_CUSTOMER, _AS_OF, ("segment_id", "BIGINT"), ("segment_name", "VARCHAR")),
        counted_by="segment_name",
    ),
    ServingTable(
        name="segment_profiles",
        grain="one row per segment per as-of date",
        keys=("as_of_date", "segment_id"),
        columns=(
            _AS_OF,
            ("segment_id", "BIGINT"),
            ("segment_name", "VARCHAR"),
            ("customers", "BIGINT"),
            ("share", "DOUBLE"),
            ("avg_monthly_value", "DOUBLE"),
            ("avg_order_value_90d", "DOUBLE"),
            ("avg_logins_30d", "DOUBLE"),
            ("avg_churn_probability", "DOUBLE"),
            ("description", "VARCHAR"),
        ),
        ranked_by="customers",
    ),
    ServingTable(
        name="customer_uplift",
        grain="one row per customer per as-of date",
        keys=("customer_id", "as_of_date"),
        columns=(
            _CUSTOMER,
            _AS_OF,
            ("campaign_type", "VARCHAR"),
            ("retention_uplift", "DOUBLE"),
            ("p_retained_if_treated", "DOUBLE"),
            ("p_retained_if_not", "DOUBLE"),
            ("uplift_segment", "VARCHAR"),
            ("uplift_reason", "VARCHAR"),
            ("model_version", "VARCHAR"),
            ("uplift_reason_factors", "VARCHAR"),
        ),
        model="retention_uplift",
        history=HistoryScore("customer_id", "retention_uplift"),
        counted_by="uplift_segment",
        ranked_by="retention_uplift",
    ),
    ServingTable(
        name="next_product_offers",
        grain="one row per customer per as-of date, for customers with a category not bought",
        keys=("customer_id", "as_of_date"),
        columns=(
            _CUSTOMER,
            _AS_OF,
            ("product_category", "VARCHAR"),
            ("probability", "DOUBLE"),
            ("offer_reason", "VARCHAR"),
            ("model_version", "VARCHAR"),
            ("offer_reason_factors", "VARCHAR"),
        ),
        model="next_product",
        history=HistoryScore("customer_id", "probability"),
        counted_by="product_category",
        ranked_by="probability",
    ),
    ServingTable(
        name="next_best_actions",
        grain="one row per customer per as-of date",
        keys=("customer_id", "as_of_date"),
        columns=(
            _CUSTOMER,
            _AS_OF,
            ("action", "VARCHAR"),
            ("channel", "VARCHAR"),
            ("expected_gain_eur", "DOUBLE"),
            ("action_cost_eur", "DOUBLE"),
            ("value_at_risk_eur", "DOUBLE"),
            ("product_category", "VARCHAR"),
            ("reason", "VARCHAR"),
        ),
        counted_by="action",
        ranked_by="expected_gain_eur",
    ),
    ServingTable(
        name="contact_policy_audit",
        grain="one row per customer, as-of date and worthwhile action the contact policy blocked",
        keys=("customer_id", "as_of_date", "suppressed_action"),
        columns=(
            _CUSTOMER,
            _AS_OF,
            ("suppressed_action", "VARCHAR"),
            ("channel", "VARCHAR"),
            ("expected_gain_eur", "DOUBLE"),
            ("reason", "VARCHAR"),
            ("final_action", "VARCHAR"),
        ),
        counted_by="suppressed_action",
    ),
    ServingTable(
        name="customer_value",
        grain="one row per customer with a completed order per as-of date",
        keys=("customer_id", "as_of_date"),
        columns=(
            _CUSTOMER,
            _AS_OF,
            ("expected_purchases_12m", "DOUBLE"),
            ("expected_value_12m", "DOUBLE"),
            ("probability_alive", "DOUBLE"),
            ("method", "VARCHAR"),
            ("model_version", "VARCHAR"),
        ),
        model="customer_value",
        history=HistoryScore("customer_id", "expected_value_12m"),
        counted_by="method",
        ranked_by="expected_value_12m",
    ),
    ServingTable(
        name="lead_scores",
        grain="one row per open lead of the newest run",
        keys=("lead_id",),
        columns=(
            ("lead_id", "VARCHAR"),
            ("scored_at", "TIMESTAMP"),
            ("score", "INTEGER"),
            ("grade", "VARCHAR"),
            ("conversion_probability", "DOUBLE"),
            ("top_drivers", "VARCHAR"),
            ("reason", "VARCHAR"),
            ("model_version", "VARCHAR"),
            ("reason_factors", "VARCHAR"),
        ),
        model="lead_scoring",
        history=HistoryScore("lead_id", "conversion_probability", as_of_column="scored_at"),
        replaces="whole",
        counted_by="grade",
        ranked_by="score",
    ),
    ServingTable(
        name="score_changes",
        grain="one row per customer or lead whose band, grade, next best action or reason "
        "changed, per publish (every row of the first publish)",
        keys=("publish_id", "customer_id", "lead_id"),
        columns=(
            ("publish_id", "VARCHAR"),
            ("published_at", "TIMESTAMP"),
            ("entity_type", "VARCHAR"),
            # Customers and leads in separate id columns: erasure deletes a person's rows by
            # customer_id in every table, so their feed history goes with their scores.
            _CUSTOMER,
            ("lead_id", "VARCHAR"),
            ("change", "VARCHAR"),
            ("changed_fields", "VARCHAR"),
            ("old_risk_band", "VARCHAR"),
            ("new_risk_band", "VARCHAR"),
            ("old_grade", "VARCHAR"),
            ("new_grade", "VARCHAR"),
            ("old_action", "VARCHAR"),
            ("new_action", "VARCHAR"),
            ("old_reason", "VARCHAR"),
            ("new_reason", "VARCHAR"),
            ("probability", "DOUBLE"),
            ("model_version", "VARCHAR"),
        ),
        replaces="publish_id",
        counted_by="change",
    ),
)

_BY_NAME = {table.name: table for table in SERVING_TABLES}


def serving_table(name: str) -> ServingTable:
    """The serving table called ``name``.

    Raises:
        KeyError: No serving table has that name.
    """
    try:
        return _BY_NAME[name]
    except KeyError:
        raise KeyError(f"no serving table {name!r}; known: {', '.join(_BY_NAME)}") from None


def conform(table: ServingTable, rows: pd.DataFrame) -> pd.DataFrame:
    """The rows in the table's column order, or a ValueError naming what does not fit.

    Raises:
        ValueError: A column of the table is missing from ``rows`` or ``rows`` has one more.
    """
    missing = [c for c in table.column_names if c not in rows.columns]
    extra = [c for c in rows.columns if c not in table.column_names]
    if missing or extra:
        raise ValueError(
            f"rows for {table.qualified_name} do not fit its columns: missing {missing}, "
            f"unknown {extra} (ml/serving/tables.py declares the table)"
        )
    return rows.loc[:, list(table.column_names)]


@dataclass(frozen=True)
class Published:
    """What one publish wrote.

    Attributes:
        table: The table.
        rows: Rows written.
        as_of_date: The as-of date replaced, or None for a table not replaced per as-of date.
        parquet: The Parquet export.
    """

    table: ServingTable
    rows: int
    as_of_date: date | None
    parquet: Path


def read_published(
    con: duckdb.DuckDBPyConnection, table: ServingTable, as_of_date: date
) -> pd.DataFrame:
    """The published rows of one as-of date, in the table's columns.

    Empty (with those columns) when nothing is published yet or the table predates one of its
    columns: a reader that reuses rows then recomputes them all.
    """
    present = {
        name
        for (name,) in con.execute(
            "select column_name from information_schema.columns "
            "where table_schema = ? and table_name = ?",
            [SERVING_SCHEMA, table.name],
        ).fetchall()
    }
    if not set(table.column_names) <= present:
        return pd.DataFrame({name: pd.Series(dtype=object) for name in table.column_names})
    columns = ", ".join(f'"{name}"' for name in table.column_names)
    return con.execute(
        f"select {columns} from {table.qualified_name} where as_of_date = ?", [as_of_date]
    ).df()


def publish(
    con: duckdb.DuckDBPyConnection,
    table: ServingTable,
    rows: pd.DataFrame,
    exports_dir: Path,
    as_of_date: date | None = None,
    publish_id: str | None = None,
) -> Published:
    """Write ``rows`` to ``serving.<table>`` in one transaction and export it to Parquet.

    Args:
        con: Writable warehouse connection.
        table: The table.
        rows: Its new rows (every column of the table, no other).
        exports_dir: Folder of the Parquet exports.
        as_of_date: For a table replaced per as-of date, the date replaced; by default the one
            date the rows hold (pass it when the rows may be none, e.g. an empty audit).
        publish_id: For a table replaced per publish, the publish whose rows these are; by
            default the one the rows hold (pass it when the rows may be none: nothing changed).

    Raises:
        ValueError: The rows do not fit the table's columns, or (for a table replaced per as-of
            date or per publish) hold no or several as-of dates or publish ids, or another than
            the one passed; nothing is written.
    """
    rows = conform(table, rows)
    as_of: date | None = None
    if table.replaces == "as_of_date":
        dates = {pd.Timestamp(d).date() for d in rows["as_of_date"].dropna().unique()}
        if as_of_date is not None:
            dates.add(pd.Timestamp(as_of_date).date())
        if len(dates) != 1:
            raise ValueError(
                f"rows for {table.qualified_name} must hold one as-of date, got {sorted(dates)}"
            )
        (as_of,) = dates
        written = publish_table(
            con,
            rows,
            SERVING_SCHEMA,
            table.name,
            replace_where="as_of_date = ?",
            replace_params=[as_of],
            column_types=dict(table.columns),
        )
    elif table.replaces == "publish_id":
        ids = {str(i) for i in rows["publish_id"].dropna().unique()}
        if publish_id is not None:
            ids.add(publish_id)
        if len(ids) != 1:
            raise ValueError(
                f"rows for {table.qualified_name} must hold one publish id, got {sorted(ids)}"
            )
        written = publish_table(
            con,
            rows,
            SERVING_SCHEMA,
            table.name,
            replace_where="publish_id = ?",
            replace_params=[ids.pop()],
            column_types=dict(table.columns),
        )
    else:
        written = publish_table(
            con, rows, SERVING_SCHEMA, table.name, column_types=dict(table.columns)
        )
    if table.latest_view is not None:
        create_latest_view(
            con,
            SERVING_SCHEMA,
            table.name,
            table.latest_view,
            key=table.keys[0],
            order_col="as_of_date",
        )
    path = export_parquet(con, SERVING_SCHEMA, table.name, exports_dir)
    return Published(table, written, as_of, path)
