import dagster as dg

from orchestration.defs.segments.assets import customer_segments

defs = dg.Definitions(assets=[customer_segments])
