"""Publishing: the change feed for CRM syncs, and the serving tables to PostgreSQL for CRMs and
BI tools (when configured)."""

from datetime import UTC, datetime

import dagster as dg

from ml.core.warehouse import connect
from ml.serving.changes import SCORE_CHANGES, score_changes, watched_tables
from ml.serving.publishing import publish_to_postgres
from ml.serving.tables import SERVING_TABLES, publish
from orchestration.lib import keys
from orchestration.lib.metadata import counts, published_metadata, skipped, table_of
from orchestration.resources import CrmSettings


@dg.asset(
    key=keys.serving(SCORE_CHANGES.name),
    group_name="publish",
    kinds={"duckdb", "parquet"},
    # Every table whose values the feed watches: a run where one of them failed writes no feed,
    # and the next good run compares against the last feed that was written.
    deps=[keys.serving(name) for name in ("customer_scores", "next_best_actions", "lead_scores")],
    description=f"serving.{SCORE_CHANGES.name}: {SCORE_CHANGES.grain}.",
)
def score_changes_feed(context: dg.AssetExecutionContext, crm: CrmSettings) -> dg.MaterializeResult:
    """The customers and leads whose risk band, grade, next best action or reason changed since
    the previous publish, with old and new values (docs/change-feed.md)."""
    settings = crm.get()
    with connect(settings.warehouse_path, threads=settings.threads) as con:
        if not watched_tables(con):
            return skipped("no customer or lead scores published yet: nothing to compare")
        rows = score_changes(con, context.run_id, datetime.now(UTC).replace(tzinfo=None))
        published = publish(
            con, SCORE_CHANGES, rows, settings.exports_dir, publish_id=context.run_id
        )
    return dg.MaterializeResult(
        metadata=published_metadata(
            published,
            rows,
            rows_by_entity_type=counts(rows["entity_type"]),
            rows_by_changed_fields=counts(rows["changed_fields"]),
        )
    )


@dg.asset(
    key=["publish", "postgres"],
    group_name="publish",
    kinds={"postgres"},
    deps=[keys.serving(table.name) for table in SERVING_TABLES],
    # A server restart or a network blip is worth two more tries; a wrong password is not, but
    # costs only the same few seconds.
    retry_policy=dg.RetryPolicy(max_retries=2, delay=3, backoff=dg.Backoff.EXPONENTIAL),
)
def postgres_tables(context: dg.AssetExecutionContext, crm: CrmSettings) -> dg.MaterializeResult:
    """Every serving table's newest snapshot and this run's scores (score_history) in PostgreSQL.

    One transaction: readers see the previous tables until it commits. Runs only when
    CRM_POSTGRES_URL is set; when the server is down this step fails and says so, while the
    DuckDB tables and Parquet exports upstream are already published.
    """
    settings = crm.get()
    target = settings.postgres_target()
    if target is None:
        return dg.MaterializeResult(
            metadata={"published": False, "reason": "CRM_POSTGRES_URL is not set"}
        )
    with connect(settings.warehouse_path, read_only=True, threads=settings.threads) as duck:
        result = publish_to_postgres(
            duck,
            target,
            run_id=context.run_id,
            published_at=datetime.now(UTC).replace(tzinfo=None),
            scratch_dir=settings.scratch_dir,
        )
    context.log.info(
        f"published {len(result.rows)} tables and {result.history_rows} history rows to "
        f"{target.redacted} schema {target.schema} in {result.seconds:.1f} s"
    )
    return dg.MaterializeResult(
        metadata={
            "published": True,
            "server": target.redacted,
            "schema": target.schema,
            "tables": table_of(result.rows, "table", "rows"),
            "score_history_rows_this_run": result.history_rows,
            "seconds": round(result.seconds, 2),
        }
    )
