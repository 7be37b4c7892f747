"""dbt (dbt-duckdb): staging, identity resolution, marts and point-in-time features.

Every dbt model is an asset and every dbt test an asset check; ``dbt build`` skips the models
below a failing test, so bad data does not flow down.
"""

import json
from collections.abc import Iterator
from typing import Any

import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from orchestration.resources import CrmSettings, dbt_project


@dbt_assets(manifest=dbt_project.manifest_path, project=dbt_project, name="crm_dbt_models")
def crm_dbt_models(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, crm: CrmSettings
) -> Iterator[Any]:
    settings = crm.get()
    # dbt hashes --vars and the rendered profile and re-parses the whole project when either
    # changes, so both hold only what is fixed for a state folder: never a date or a run id.
    dbt_vars = {"warehouse_path": str(settings.warehouse_path)}
    # One target folder per state folder instead of dagster-dbt's new one per invocation: dbt
    # keeps partial_parse.msgpack there, so the next run re-parses only the files that changed
    # (docs/operations.md, "Parsing"). Runs that write the warehouse are queued one at a time,
    # so two builds do not share it at once.
    # The models keyed by time are incremental (docs/operations.md, "Incremental runs"); a full
    # refresh (crm-signals run --full-refresh, CRM_FULL_REFRESH) rebuilds them from scratch.
    refresh = ["--full-refresh"] if settings.full_refresh else []
    invocation = dbt.cli(
        ["build", "--vars", json.dumps(dbt_vars), *refresh],
        context=context,
        target_path=settings.dbt_target_dir,
    )
    yield from invocation.stream()
