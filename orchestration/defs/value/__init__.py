import dagster as dg

from orchestration.defs.value.assets import customer_value

defs = dg.Definitions(assets=[customer_value])
