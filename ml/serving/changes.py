"""The change feed: per publish, the customers and leads whose served values changed.

A CRM sync pushes scores into CRM fields; the CRM's import limits and API quotas mean only what
changed should move. ``serving.score_changes`` holds, per publish, one row per entity whose
*watched* values differ from what the previous publish served:

* a customer: ``churn_risk_band`` and ``churn_reason`` (``serving.customer_scores``) and the next
  best ``action`` (``serving.next_best_actions``), both at their newest as-of date;
* a lead: ``grade`` and ``reason`` (``serving.lead_scores``).

The previous publish's values are the feed's own newest row per entity (every row carries all
of an entity's new values, not only the changed ones), so the feed needs no second table, a
publish that never happened (a failed run writes no feed) is simply not a "previous", and the
first publish lists every entity as ``new``: a CRM sync's initial load.

Probability and model version ride along as they are at the publish; a probability that moves
within its band is not a change (it would move nearly every row every day).

Entities that left the tables (a lead converted, a person erased) get no row: the feed says
what to write, never what to remove, and an erased person's id must appear nowhere.
The diff is one DuckDB query.
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import pandas as pd

from ml.core.warehouse import qualified, sql_literal
from ml.serving.publishing import base_tables, newest_snapshot_sql
from ml.serving.tables import SERVING_SCHEMA, serving_table

SCORE_CHANGES = serving_table("score_changes")

# The watched fields: a change in any of them makes a feed row. Feed columns are old_<f>/new_<f>.
WATCHED_FIELDS = ("risk_band", "grade", "action", "reason")


def _customers_now(present: set[str]) -> str | None:
    """The customers' watched values now, or None when nothing scores customers yet."""
    if "customer_scores" not in present:
        return None
    scores = newest_snapshot_sql(serving_table("customer_scores"))
    if "next_best_actions" in present:
        actions = newest_snapshot_sql(serving_table("next_best_actions"))
        action, join = "a.action", f"left join ({actions}) a on a.customer_id = s.customer_id"
    else:
        action, join = "cast(null as varchar)", ""
    return (
        "select 'customer' as entity_type, s.customer_id, cast(null as varchar) as lead_id, "
        "s.churn_risk_band as risk_band, cast(null as varchar) as grade, "
        f"{action} as action, s.churn_reason as reason, "
        "s.churn_probability as probability, s.model_version "
        f"from ({scores}) s {join}"
    )


def _leads_now(present: set[str]) -> str | None:
    if "lead_scores" not in present:
        return None
    return (
        "select 'lead' as entity_type, cast(null as varchar) as customer_id, lead_id, "
        "cast(null as varchar) as risk_band, grade, cast(null as varchar) as action, reason, "
        "conversion_probability as probability, model_version "
        f"from ({newest_snapshot_sql(serving_table('lead_scores'))})"
    )


def _previous(present: set[str], publish_id: str) -> str:
    """Each entity's values as the newest earlier publish served them."""
    new_values = ", ".join(f"new_{f} as {f}" for f in WATCHED_FIELDS)
    if SCORE_CHANGES.name not in present:
        return (
            "select cast(null as varchar) as entity_type, cast(null as varchar) as entity_id, "
            + ", ".join(f"cast(null as varchar) as {f}" for f in WATCHED_FIELDS)
            + " where false"
        )
    # A rerun of this publish replaces its own rows, so they are not its "previous".
    return (
        f"select entity_type, coalesce(customer_id, lead_id) as entity_id, {new_values} "
        f"from {qualified(SERVING_SCHEMA, SCORE_CHANGES.name)} "
        f"where publish_id <> {sql_literal(publish_id)} "
        "qualify row_number() over (partition by entity_type, coalesce(customer_id, lead_id) "
        "order by published_at desc, publish_id desc) = 1"
    )


def watched_tables(con: duckdb.DuckDBPyConnection) -> list[str]:
    """The scored tables the feed watches that the warehouse holds (none: nothing to diff yet)."""
    present = set(base_tables(con, SERVING_SCHEMA))
    return [name for name in ("customer_scores", "lead_scores") if name in present]


def score_changes_sql(
    con: duckdb.DuckDBPyConnection, publish_id: str, published_at: datetime
) -> str:
    """The query of this publish's feed rows (see the module docstring), in the table's columns."""
    present = set(base_tables(con, SERVING_SCHEMA))
    now_parts = [part for part in (_customers_now(present), _leads_now(present)) if part]
    if not now_parts:
        raise ValueError(
            "no serving table to diff: serving.customer_scores and serving.lead_scores are both "
            "missing (run the scoring job first)"
        )
    differs = [f"n.{f} is distinct from p.{f}" for f in WATCHED_FIELDS]
    # On a new entity every old value is null, so the list names every field it has.
    changed_fields = (
        "concat_ws(',', "
        + ", ".join(
            f"case when {d} then '{f}' end" for f, d in zip(WATCHED_FIELDS, differs, strict=True)
        )
        + ")"
    )
    stamp = sql_literal(published_at.isoformat(sep=" "))
    return (
        f"with now as ({' union all '.join(now_parts)}), "
        f"previous as ({_previous(present, publish_id)}) "
        f"select {sql_literal(publish_id)} as publish_id, "
        f"cast({stamp} as timestamp) as published_at, "
        "n.entity_type, n.customer_id, n.lead_id, "
        "case when p.entity_id is null then 'new' else 'changed' end as change, "
        f"{changed_fields} as changed_fields, "
        + ", ".join(f"p.{f} as old_{f}, n.{f} as new_{f}" for f in WATCHED_FIELDS)
        + ", n.probability, n.model_version "
        "from now n left join previous p on p.entity_type = n.entity_type "
        "and p.entity_id = coalesce(n.customer_id, n.lead_id) "
        f"where p.entity_id is null or {' or '.join(differs)} "
        "order by n.entity_type, coalesce(n.customer_id, n.lead_id)"
    )


def score_changes(
    con: duckdb.DuckDBPyConnection, publish_id: str, published_at: datetime
) -> pd.DataFrame:
    """This publish's rows of ``serving.score_changes``: what changed since the previous publish.

    Args:
        con: Warehouse connection (read-only is enough).
        publish_id: Identifies the publish (the Dagster run id).
        published_at: When (naive = UTC).

    Returns:
        The rows, in the table's columns; none when nothing changed.

    Raises:
        ValueError: Neither customers nor leads are scored in the warehouse.
    """
    return con.execute(score_changes_sql(con, publish_id, published_at)).df()
