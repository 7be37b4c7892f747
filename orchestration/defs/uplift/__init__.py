import dagster as dg

from orchestration.defs.uplift.assets import customer_uplift, retention_uplift_model

defs = dg.Definitions(assets=[retention_uplift_model, customer_uplift])
