"""The two jobs: daily scoring (no training) and retraining (the whole graph)."""

import dagster as dg

from orchestration.defs.models import TRAINING_TAG

TRAINING_ASSETS = dg.AssetSelection.tag(*next(iter(TRAINING_TAG.items())))

churn_scoring_job = dg.define_asset_job(
    "churn_scoring_job",
    selection=dg.AssetSelection.all() - TRAINING_ASSETS,
    description="Ingest, dbt, checks, score every model with its current champion, publish, "
    "drift. No training.",
)

churn_retraining_job = dg.define_asset_job(
    "churn_retraining_job",
    selection=dg.AssetSelection.all(),
    description="Everything, including training, evaluation and champion/challenger promotion of "
    "every model.",
)
