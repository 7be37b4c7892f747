import dagster as dg

from orchestration.defs.governance.assets import churn_promotion_decision, erasure

defs = dg.Definitions(assets=[erasure, churn_promotion_decision])
