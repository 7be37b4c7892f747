"""The one Dagster code location of CRM Signals: every definition in defs/, found by folder.

Each domain folder of defs/ (source, ingest, transform, governance, one per model, monitoring,
publish, automation) holds its assets, checks, jobs, schedules and sensors; adding a file there
is all it takes. Domains share code through orchestration/lib, never by importing each other.
"""

from pathlib import Path

import dagster as dg

from orchestration.resources import CrmSettings, dbt_cli


@dg.definitions
def defs() -> dg.Definitions:
    return dg.Definitions.merge(
        dg.load_from_defs_folder(path_within_project=Path(__file__).parent),
        dg.Definitions(
            resources={"crm": CrmSettings(), "dbt": dbt_cli()},
            # One step at a time in one process: DuckDB has one writer, and a process per step
            # would re-import the stack (about 10 s) for every asset.
            executor=dg.in_process_executor,
        ),
    )
