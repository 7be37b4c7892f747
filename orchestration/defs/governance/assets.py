"""Governance: erasure before anything reads the marts; the promotion decision of each model."""

import json
from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from ml.core.warehouse import connect, publish_table
from ml.data.erasure import AUDIT_FILE, erase_requested_persons, read_audit_log
from ml.modelling.registry import latest_promotion_decision
from orchestration.defs.markdown import markdown_table
from orchestration.defs.models import TRAINING_TAG, model_mlflow_config
from orchestration.resources import CrmSettings

IDENTITY_MAP = dg.AssetKey(["marts", "customer_identity_map"])
ERASURE_REQUESTS = dg.AssetKey(["raw", "erasure_requests"])


@dg.asset(
    key=["governance", "erasure"],
    group_name="governance",
    kinds={"duckdb"},
    deps=[ERASURE_REQUESTS, IDENTITY_MAP],
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
            parquet_folders={
                "exports": settings.exports_dir,
                "quarantine": settings.quarantine_dir,
            },
            erased_at=datetime.now(UTC).replace(tzinfo=None),
            postgres=settings.postgres_target(),
        )
    # Counts only: which person was erased must not be written to the run log.
    context.log.info(
        f"erasure: {outcome.requests} new requests, {outcome.records_erased} records, "
        f"{outcome.total_rows_removed} rows removed"
    )
    audit = read_audit_log(settings.erasure_dir)
    return dg.MaterializeResult(
        metadata={
            "new_requests": outcome.requests,
            "records_erased": outcome.records_erased,
            "rows_removed": outcome.total_rows_removed,
            "rows_removed_by_store": dg.MetadataValue.md(
                markdown_table(
                    pd.DataFrame(sorted(outcome.rows_removed.items()), columns=["store", "rows"])
                )
                if outcome.rows_removed
                else "none"
            ),
            "requests_carried_out_total": len(audit),
            "audit_log": dg.MetadataValue.path(str(settings.erasure_dir / AUDIT_FILE)),
        }
    )


@dg.asset(
    key=["governance", "churn_promotion_decision"],
    group_name="governance",
    kinds={"mlflow", "duckdb"},
    deps=[dg.AssetKey("churn_model")],
    tags=TRAINING_TAG,
)
def churn_promotion_decision(crm: CrmSettings) -> dg.MaterializeResult:
    """Why the newest churn version is champion or challenger, term by term (ml/modelling/promotion.py).

    Every decision is appended to ``governance.promotion_decisions`` so the history of who became
    champion, on which numbers, can be read next to the scores.
    """
    settings = crm.get()
    version, champion, decision = latest_promotion_decision(model_mlflow_config(settings, "churn"))
    terms = pd.DataFrame(decision["terms"])
    row = pd.DataFrame(
        {
            "model_name": ["churn"],
            "model_version": [version],
            "decided_at": [datetime.now(UTC).replace(tzinfo=None)],
            "promoted": [bool(decision["promote"])],
            "champion_compared": [decision["champion_version"]],
            "comparison_rows": [int(decision["rows"])],
            "reason": [decision["reason"]],
            "terms": [json.dumps(decision["terms"])],
        }
    )
    with connect(settings.warehouse_path, threads=settings.threads) as con:
        publish_table(
            con,
            row,
            "governance",
            "promotion_decisions",
            replace_where="model_name = 'churn' and model_version = ?",
            replace_params=[str(int(version))],
        )
    return dg.MaterializeResult(
        metadata={
            "model_version": version,
            "promoted": bool(decision["promote"]),
            "champion_now": champion or "none",
            "reason": decision["reason"],
            "gate_failures": dg.MetadataValue.md(
                "\n".join(f"- {g}" for g in decision["gate_failures"]) or "none"
            ),
            "terms": dg.MetadataValue.md(
                markdown_table(terms[["name", "new", "champion", "limit", "passed"]])
                if len(terms)
                else "first version: no champion to compare"
            ),
        }
    )
