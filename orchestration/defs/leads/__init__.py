import dagster as dg

from orchestration.defs.leads.assets import lead_model, lead_scores, raw_leads

defs = dg.Definitions(assets=[raw_leads, lead_model, lead_scores])
