"""The two jobs: daily scoring (no training) and retraining (the whole graph)."""

import dagster as dg

from orchestration.defs.churn.assets import churn_model

churn_scoring_job = dg.define_asset_job(
    "churn_scoring_job",
    selection=dg.AssetSelection.all() - dg.AssetSelection.assets(churn_model),
    description="Ingest, dbt, checks, score with the current champion, publish, drift.",
)

churn_retraining_job = dg.define_asset_job(
    "churn_retraining_job",
    selection=dg.AssetSelection.all(),
    description="Everything, including training, evaluation and champion/challenger promotion.",
)
