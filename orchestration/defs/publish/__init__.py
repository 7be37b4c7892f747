import dagster as dg

from orchestration.defs.publish.assets import postgres_tables

defs = dg.Definitions(assets=[postgres_tables])
