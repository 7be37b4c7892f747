"""The one Dagster code location of CRM Signals, built from the domain folders in defs/."""

import dagster as dg

from ml.core.settings import Settings
from orchestration.defs import (
    actions,
    churn,
    governance,
    ingest,
    leads,
    monitoring,
    next_product,
    publish,
    segments,
    source,
    transform,
    uplift,
    value,
)
from orchestration.resources import CrmSettings, dbt_cli


@dg.definitions
def defs() -> dg.Definitions:
    settings = Settings()
    return dg.Definitions.merge(
        source.defs,
        ingest.defs,
        transform.defs,
        governance.defs,
        churn.build_defs(settings),
        monitoring.defs,
        segments.defs,
        uplift.defs,
        leads.defs,
        value.defs,
        next_product.defs,
        actions.defs,
        publish.defs,
        dg.Definitions(
            resources={"crm": CrmSettings(), "dbt": dbt_cli()},
            # One step at a time in one process: DuckDB has one writer, and a process per step
            # would re-import the stack (about 10 s) for every asset.
            executor=dg.in_process_executor,
        ),
    )
