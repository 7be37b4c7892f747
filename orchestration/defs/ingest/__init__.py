import dagster as dg

from orchestration.defs.ingest.assets import raw_tables
from orchestration.defs.ingest.checks import raw_contract_checks

defs = dg.Definitions(assets=[raw_tables], asset_checks=[raw_contract_checks])
