"""One real run of the whole graph into a temporary CRM_HOME, shared by the orchestration tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from ml.settings import Settings
from orchestration.definitions import defs as load_defs
from tests.orchestration.small_crm import set_small_crm


@dataclass(frozen=True)
class PipelineRun:
    settings: Settings
    instance: dg.DagsterInstance
    result: dg.ExecuteInProcessResult
    defs: dg.Definitions


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PipelineRun]:
    """The retraining job (every asset and check) on a small synthetic CRM."""
    home: Path = tmp_path_factory.mktemp("crm_home")
    with dg.instance_for_test() as instance:
        with pytest.MonkeyPatch.context() as env:
            set_small_crm(env, home)
            defs = load_defs()
            job = defs.resolve_job_def("churn_retraining_job")
            result = job.execute_in_process(instance=instance, raise_on_error=False)
            settings = Settings()
        yield PipelineRun(settings, instance, result, defs)
