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
    dbt_vars = {"warehouse_path": str(settings.warehouse_path)}
    yield from dbt.cli(["build", "--vars", json.dumps(dbt_vars)], context=context).stream()
