"""One run of the retraining job on the embedded default CRM at half the size `make run` uses.

Same generator, seed and world as `make run`, with 10,000 persons instead of 20,000: every
behaviour below holds there too, and the run costs half (the suite must stay under 10 minutes).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import dagster as dg
import mlflow
import pandas as pd
import pytest

from ml.core.settings import Settings
from ml.core.warehouse import connect
from ml.data.features import read_scoring_features
from ml.modelling.registry import load_champion
from ml.models.churn.model import ChurnModel
from orchestration.definitions import defs as load_defs
from orchestration.resources import registry


@dataclass(frozen=True)
class DefaultRun:
    settings: Settings
    model: ChurnModel
    scoring_features: pd.DataFrame
    metrics: dict[str, float]


@pytest.fixture(scope="session")
def default_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DefaultRun]:
    home = tmp_path_factory.mktemp("crm_default")
    with dg.instance_for_test() as instance, pytest.MonkeyPatch.context() as env:
        env.setenv("CRM_HOME", str(home))
        for name in ("CRM_SYNTHETIC_SEED", "CRM_SOURCE"):
            env.delenv(name, raising=False)
        env.setenv("CRM_SYNTHETIC_CUSTOMERS", "10000")
        settings = Settings()
        job = load_defs().resolve_job_def("retraining_job")
        result = job.execute_in_process(instance=instance, raise_on_error=False)
        assert result.success, "the retraining job failed on the default CRM"
        model, version = load_champion(registry(settings), "churn")
        run_id = (
            mlflow.MlflowClient(settings.mlflow_tracking_uri)
            .get_model_version("churn", version)
            .run_id
        )
        metrics = mlflow.MlflowClient(settings.mlflow_tracking_uri).get_run(run_id).data.metrics
        with connect(settings.warehouse_path, read_only=True) as con:
            scoring = read_scoring_features(con)
        yield DefaultRun(settings, model, scoring, metrics)
