import dagster as dg

from orchestration.defs.transform.assets import crm_dbt_models
from orchestration.defs.transform.checks import customer_features_expectations

defs = dg.Definitions(assets=[crm_dbt_models], asset_checks=[customer_features_expectations])
