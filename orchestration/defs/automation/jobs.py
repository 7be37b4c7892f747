"""The jobs: daily scoring (no training), retraining (everything), bucketed churn scoring."""

import dagster as dg

from orchestration.lib.metadata import TRAINING_TAG

TRAINING_ASSETS = dg.AssetSelection.tag(*next(iter(TRAINING_TAG.items())))
# The run queue of a deployment (docs/deploy/dagster.yaml) lets one writer run at a time.
DUCKDB_WRITER = {"crm/duckdb": "write"}
# Partitioned by customer bucket: a job of its own (a job's assets share one partitioning).
BUCKET_SCORING = dg.AssetSelection.assets(["scoring", "churn_buckets"])

scoring_job = dg.define_asset_job(
    "scoring_job",
    selection=dg.AssetSelection.all() - TRAINING_ASSETS - BUCKET_SCORING,
    description="Ingest, dbt, checks, score every model with its current champion, publish, "
    "drift. No training.",
    tags=DUCKDB_WRITER,
)

retraining_job = dg.define_asset_job(
    "retraining_job",
    selection=dg.AssetSelection.all() - BUCKET_SCORING,
    description="Everything: training, evaluation and champion/challenger promotion of every "
    "model, then scoring and publishing with the champions.",
    tags=DUCKDB_WRITER,
)

churn_bucket_scoring_job = dg.define_asset_job(
    "churn_bucket_scoring_job",
    selection=BUCKET_SCORING,
    description="Churn scores of one customer bucket per run. Backfill every partition (runs fan "
    "out across workers; they only read the warehouse), then materialize serving/customer_scores "
    "with from_buckets: true to publish them (docs/deploy/README.md).",
    tags={"crm/duckdb": "read"},
)
