import dagster as dg

from orchestration.defs.source.assets import crm_source_files

defs = dg.Definitions(assets=[crm_source_files])
