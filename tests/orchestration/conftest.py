"""One real run of the whole graph into a temporary CRM_HOME, shared by the orchestration tests."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import pytest

from ml.core.settings import Settings
from orchestration.definitions import defs as load_defs
from tests.orchestration.small_crm import set_small_crm
from tests.postgres_server import fresh_database, unreachable_reason

# A secret the run is given, as in production through the environment; tests search every log
# for it. The local PostgreSQL server trusts its clients and ignores the password.
POSTGRES_PASSWORD = "pg-Secret-4d1f9c"


@dataclass(frozen=True)
class PipelineRun:
    settings: Settings
    instance: dg.DagsterInstance
    result: dg.ExecuteInProcessResult
    defs: dg.Definitions
    postgres_skip_reason: str | None


@pytest.fixture(scope="session")
def pipeline_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[PipelineRun]:
    """The retraining job (every asset and check) on a small synthetic CRM.

    It publishes to a fresh database on the local PostgreSQL server when one answers; without
    one the run still happens and only the PostgreSQL tests skip.
    """
    home: Path = tmp_path_factory.mktemp("crm_home")
    skip_reason = unreachable_reason()
    with contextlib.ExitStack() as stack:
        instance = stack.enter_context(dg.instance_for_test())
        env = stack.enter_context(pytest.MonkeyPatch.context())
        set_small_crm(env, home)
        if skip_reason is None:
            url = stack.enter_context(fresh_database("crm_pipeline", POSTGRES_PASSWORD))
            env.setenv("CRM_POSTGRES_URL", url)
        defs = load_defs()
        job = defs.resolve_job_def("retraining_job")
        result = job.execute_in_process(instance=instance, raise_on_error=False)
        settings = Settings()
        env.undo()
        yield PipelineRun(settings, instance, result, defs, skip_reason)


@pytest.fixture
def home(pipeline_run, tmp_path, monkeypatch) -> Settings:
    """A copy of the small-CRM run's state folder, so a test can change it freely."""
    copy = tmp_path / "crm_home"
    shutil.copytree(pipeline_run.settings.home, copy)
    set_small_crm(monkeypatch, copy)
    return Settings()
