"""Governance: erasure before anything reads the marts; every model's promotion decision."""

from datetime import UTC, datetime

import dagster as dg

from ml.core.spark import spark_parquet_folders
from ml.core.warehouse import connect, publish_table
from ml.data.erasure import AUDIT_FILE, erase_requested_persons, read_audit_log
from ml.modelling.registry import promotion_records
from ml.models.churn.snapshot import MODEL_NAME as SNAPSHOT_MODEL
from ml.serving.tables import SERVING_TABLES
from orchestration.lib import keys
from orchestration.lib.metadata import TRAINING_TAG, table_of
from orchestration.resources import CrmSettings, registry

# Every registered model serves a table (customer_scores is served by churn or, from a flat
# customer table, by churn_snapshot); these are the models whose decisions are recorded.
REGISTERED_MODELS = tuple(
    sorted({t.model for t in SERVING_TABLES if t.model is not None} | {SNAPSHOT_MODEL})
)


@dg.asset(
    key=keys.ERASURE,
    group_name="governance",
    kinds={"duckdb"},
    deps=[keys.raw("erasure_requests"), keys.mart("customer_identity_map")],
)
def erasure(context: dg.AssetExecutionContext, crm: CrmSettings) -> dg.MaterializeResult:
    """Erase each person with a pending request from every store; keep a salted-hash tombstone.

    Runs after the dbt build (identity resolution finds all records of the person) and before
    every model and serving asset, so nothing trains on or scores an erased person. Tombstones and
    the audit log live in CRM_HOME/erasure; ingest drops re-imported rows of tombstoned records.
    """
    settings = crm.get()
    with connect(
        settings.warehouse_path, threads=settings.threads, memory_limit=settings.duckdb_memory_limit
    ) as con:
        outcome = erase_requested_persons(
            con,
            erasure_dir=settings.erasure_dir,
            salt=settings.salt(),
            # Spark's folders whatever the engine now: a run on Spark left the person there.
            parquet_folders={
                "exports": settings.exports_dir,
                "quarantine": settings.quarantine_dir,
                **spark_parquet_folders(settings.spark_home),
            },
            erased_at=datetime.now(UTC).replace(tzinfo=None),
            postgres=settings.postgres_target(),
        )
    # Counts only: which person was erased must not be written to the run log.
    context.log.info(
        f"erasure: {outcome.requests} new requests, {outcome.records_erased} records, "
        f"{outcome.total_rows_removed} rows removed"
    )
    return dg.MaterializeResult(
        metadata={
            "new_requests": outcome.requests,
            "records_erased": outcome.records_erased,
            "rows_removed": outcome.total_rows_removed,
            "rows_removed_by_store": table_of(outcome.rows_removed, "store", "rows"),
            "requests_carried_out_total": len(read_audit_log(settings.erasure_dir)),
            "audit_log": dg.MetadataValue.path(str(settings.erasure_dir / AUDIT_FILE)),
        }
    )


@dg.asset(
    key=["governance", "promotion_decisions"],
    group_name="governance",
    kinds={"mlflow", "duckdb"},
    deps=[keys.model(name) for name in REGISTERED_MODELS],
    tags=TRAINING_TAG,
)
def promotion_decisions(crm: CrmSettings) -> dg.MaterializeResult:
    """Why the newest version of each model is champion or challenger, term by term.

    One row per model version in ``governance.promotion_decisions`` (ml/modelling/promotion.py),
    so the history of who became champion, on which numbers, can be read next to the scores.
    """
    settings = crm.get()
    decided = promotion_records(
        registry(settings), REGISTERED_MODELS, datetime.now(UTC).replace(tzinfo=None)
    )
    with connect(settings.warehouse_path, threads=settings.threads) as con:
        for row in decided.itertuples():  # one row per registered model
            publish_table(
                con,
                decided.loc[[row.Index]],
                "governance",
                "promotion_decisions",
                replace_where="model_name = ? and model_version = ?",
                replace_params=[row.model_name, row.model_version],
            )
    return dg.MaterializeResult(
        metadata={
            "dagster/row_count": len(decided),
            "decisions": dg.MetadataValue.md(
                "\n".join(
                    f"- {r.model_name} v{r.model_version}: {r.reason}" for r in decided.itertuples()
                )
                or "no model registered yet"
            ),
        }
    )
