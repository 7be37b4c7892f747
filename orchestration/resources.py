"""Dagster resources: the project settings and the dbt CLI, built from ``CRM_*`` variables."""

from __future__ import annotations

import sys
from pathlib import Path

import dagster as dg
from dagster_dbt import DbtCliResource, DbtProject

from ml.core.settings import Settings
from ml.modelling.registry import Registry

DBT_PROJECT_DIR = Path(__file__).resolve().parent.parent / "dbt_project"
dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)


class CrmSettings(dg.ConfigurableResource):
    """The project settings (``ml.core.settings.Settings``), read once per run from ``CRM_*``.

    The fields override the environment; tests and the UI launchpad use them to point a run at
    another state folder or a smaller synthetic CRM, or to try other reason rules.
    """

    home: str | None = None
    source: str | None = None
    synthetic_customers: int | None = None
    synthetic_seed: int | None = None
    threads: int | None = None
    full_refresh: bool | None = None
    reason_max_factors: int | None = None
    reason_middle: float | None = None
    reason_min_contribution: float | None = None
    reason_min_share: float | None = None

    def get(self) -> Settings:
        overrides = {k: v for k, v in self.model_dump().items() if v is not None}
        return Settings(**overrides)


def registry(settings: Settings) -> Registry:
    """The MLflow registry of these settings."""
    return Registry(settings.mlflow_tracking_uri, settings.mlflow_artifacts_dir)


def dbt_cli() -> DbtCliResource:
    # The dbt executable lives next to this interpreter: the run does not depend on PATH.
    return DbtCliResource(
        project_dir=dbt_project,
        dbt_executable=str(Path(sys.executable).parent / "dbt"),
    )
