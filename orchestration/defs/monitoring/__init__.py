import dagster as dg

from orchestration.defs.monitoring.assets import churn_drift_report

defs = dg.Definitions(assets=[churn_drift_report])
