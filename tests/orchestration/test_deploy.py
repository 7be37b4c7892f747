"""The documented team deployment (docs/deploy/dagster.yaml) works against a real PostgreSQL."""

from __future__ import annotations

import shutil
from pathlib import Path

import dagster as dg
import psycopg2
import yaml

from orchestration.defs.automation.jobs import (
    churn_bucket_scoring_job,
    retraining_job,
    scoring_job,
)
from tests.postgres_server import fresh_database

DEPLOY_YAML = Path(__file__).resolve().parents[2] / "docs" / "deploy" / "dagster.yaml"


@dg.asset
def heartbeat() -> dg.MaterializeResult:
    return dg.MaterializeResult(metadata={"ok": True})


def test_deployment_instance_keeps_runs_and_events_in_postgres(tmp_path, monkeypatch) -> None:
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(DEPLOY_YAML, home / "dagster.yaml")
    with fresh_database("crm_dagster") as url:
        monkeypatch.setenv("DAGSTER_POSTGRES_URL", url)
        with dg.DagsterInstance.from_config(str(home)) as instance:
            assert type(instance.run_storage).__name__ == "PostgresRunStorage"
            assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
            assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
            result = dg.materialize([heartbeat], instance=instance)
            assert result.success
        con = psycopg2.connect(url)
        try:
            with con.cursor() as cur:
                cur.execute("select count(*) from runs where run_id = %s", [result.run_id])
                assert cur.fetchall() == [(1,)]
                cur.execute(
                    "select count(*) from event_logs where run_id = %s and "
                    "dagster_event_type = 'ASSET_MATERIALIZATION'",
                    [result.run_id],
                )
                assert cur.fetchall() == [(1,)]
        finally:
            con.close()


def test_the_run_queue_serialises_duckdb_writers_and_lets_bucket_runs_fan_out() -> None:
    limits = yaml.safe_load(DEPLOY_YAML.read_text())["concurrency"]["runs"]
    (writer_limit,) = [
        limit for limit in limits["tag_concurrency_limits"] if limit["key"] == "crm/duckdb"
    ]
    assert (writer_limit["value"], writer_limit["limit"]) == ("write", 1)
    assert limits["max_concurrent_runs"] > 1
    for job in (scoring_job, retraining_job):
        assert job.tags == {"crm/duckdb": "write"}
    assert churn_bucket_scoring_job.tags == {"crm/duckdb": "read"}
