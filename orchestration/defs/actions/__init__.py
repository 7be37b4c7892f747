import dagster as dg

from orchestration.defs.actions.assets import next_best_actions

defs = dg.Definitions(assets=[next_best_actions])
