"""One Dagster run of churn scoring spread over two Celery worker processes (RabbitMQ broker).

The workers are real ``dagster-celery worker start`` processes started here, on a queue of this
test's own; the run is ``dagster job execute`` with docs/deploy/celery.yaml, as the deployment
doc says. The published table must equal the same job run in one process, row for row.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import dagster as dg
import duckdb
import pandas as pd
import pytest
import yaml
from celery import Celery
from kombu import Connection

from ml.core.settings import Settings
from ml.serving.partitioning import bucket_keys
from orchestration.definitions import defs as load_defs
from orchestration.defs.churn.celery_scoring import BUCKET_DELAY_VARIABLE
from orchestration.lib import keys
from tests.orchestration.small_crm import REPOSITORY, set_small_crm

BROKER = os.environ.get("CRM_CELERY_BROKER", "amqp://guest:guest@127.0.0.1:5672//")
CELERY_YAML = REPOSITORY / "docs" / "deploy" / "celery.yaml"
JOB = "churn_celery_scoring_job"
BUCKET_STEP = "churn_bucket_scores"
BIN = Path(sys.executable).parent
# A run takes about 2 minutes on a loaded 2-core machine.
RUN_TIMEOUT_SECONDS = 600
NEWEST_SCORES = (
    "select * exclude (scored_at) from serving.customer_scores "
    "where as_of_date = (select max(as_of_date) from serving.customer_scores) order by customer_id"
)


def _broker_unreachable() -> str | None:
    try:
        with Connection(BROKER, connect_timeout=5) as connection:
            connection.ensure_connection(max_retries=1)
    except Exception as error:  # any failure to connect means: no broker here
        return f"no RabbitMQ broker at {BROKER}: {error}"
    return None


@dataclass(frozen=True)
class ScoredState:
    """A small CRM's state folder, its Dagster home, and the table single-process scoring gave."""

    home: Path
    env: dict[str, str]
    instance: dg.DagsterInstance
    single_process: pd.DataFrame


def _newest(settings: Settings) -> pd.DataFrame:
    with duckdb.connect(str(settings.warehouse_path), read_only=True) as con:
        return con.execute(NEWEST_SCORES).df()


@pytest.fixture(scope="module")
def scored_state(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ScoredState]:
    """A small CRM run up to serving/customer_scores, then the Celery job run in one process
    (``execute_in_process`` ignores the job's executor): the reference table."""
    if (reason := _broker_unreachable()) is not None:
        pytest.skip(reason)
    home = tmp_path_factory.mktemp("crm_home")
    dagster_home = home / "dagster"
    dagster_home.mkdir()
    # A persistent instance (SQLite on this filesystem): the run and the workers share it.
    shutil.copy(REPOSITORY / "orchestration" / "dagster.yaml", dagster_home / "dagster.yaml")
    with pytest.MonkeyPatch.context() as env:
        set_small_crm(env, home)
        env.setenv("DAGSTER_HOME", str(dagster_home))
        defs = load_defs()
        # Every dbt model too: dbt runs the relationship tests of a model with its parent.
        needed = (
            (
                dg.AssetSelection.assets(keys.serving("customer_scores"))
                | dg.AssetSelection.key_prefixes(["staging"], ["intermediate"], ["marts"])
            )
            .upstream()
            .resolve(defs.resolve_asset_graph())
        )
        with dg.DagsterInstance.get() as instance:
            built = defs.resolve_job_def("retraining_job").execute_in_process(
                instance=instance, asset_selection=list(needed)
            )
            assert built.success
            unpartitioned = _newest(Settings())
            assert defs.resolve_job_def(JOB).execute_in_process(instance=instance).success
            single_process = _newest(Settings())
            # Bucketed scoring gives the unpartitioned scores (drivers may differ slightly:
            # tests/orchestration/test_partitioned_scoring.py says why).
            explained = ["churn_top_drivers", "churn_reason", "churn_reason_factors"]
            pd.testing.assert_frame_equal(
                single_process.drop(columns=explained), unpartitioned.drop(columns=explained)
            )
            yield ScoredState(home, dict(os.environ), instance, single_process)


@dataclass
class Workers:
    """Two Celery worker processes on a queue of their own, and the run config naming it."""

    queue: str
    config: Path
    processes: dict[str, subprocess.Popen[bytes]]

    def kill(self, name: str) -> None:
        # The whole process group: the worker and its pool process, as when a machine dies.
        os.killpg(self.processes[name].pid, signal.SIGKILL)
        self.processes[name].wait()


@pytest.fixture
def workers(scored_state: ScoredState, tmp_path: Path) -> Iterator[Workers]:
    """Two workers (``w1``, ``w2``), each one process taking one bucket at a time; killed,
    and their queue checked empty and deleted, afterwards."""
    queue = f"crm-scoring-test-{uuid.uuid4().hex[:8]}"
    config = yaml.safe_load(CELERY_YAML.read_text())
    config["execution"]["config"]["config_source"]["task_default_queue"] = queue
    config_path = tmp_path / "celery.yaml"
    config_path.write_text(yaml.safe_dump(config))
    env = {
        **scored_state.env,
        "CRM_CELERY_BROKER": BROKER,
        "PATH": f"{BIN}{os.pathsep}{os.environ['PATH']}",
        # The bucket steps sleep before scoring, so a worker can be killed mid-bucket.
        BUCKET_DELAY_VARIABLE: "4",
    }
    processes: dict[str, subprocess.Popen[bytes]] = {}
    for name in ("w1", "w2"):
        with (tmp_path / f"{name}.log").open("wb") as log:
            processes[name] = subprocess.Popen(
                [
                    *(str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app"),
                    *("-y", str(config_path), "-q", queue, "-n", name, "--", "--concurrency=1"),
                ],
                cwd=REPOSITORY,
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
    try:
        _wait_until_listening(list(processes))
        yield Workers(queue, config_path, processes)
    finally:
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        with Connection(BROKER) as connection:
            channel = connection.channel()
            left = channel.queue_purge(queue)
            channel.queue_delete(queue)
        assert not left, f"{left} task messages were left on {queue}"


def _wait_until_listening(names: list[str]) -> None:
    """Wait until every worker answers a ping, so each takes its share of the buckets."""
    app = Celery(broker=BROKER)
    nodes = [f"{name}@{socket.gethostname()}" for name in names]
    deadline = time.monotonic() + 300
    answered: set[str] = set()
    while answered != set(nodes):
        assert time.monotonic() < deadline, f"workers {set(nodes) - answered} never answered"
        replies = app.control.ping(destination=nodes, timeout=2)
        answered |= {node for reply in replies for node in reply}


def _start_run(state: ScoredState, workers: Workers) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [
            *(str(BIN / "dagster"), "job", "execute", "-m", "orchestration.definitions"),
            *("-j", JOB, "-c", str(workers.config)),
        ],
        cwd=REPOSITORY,
        env={**state.env, "CRM_CELERY_BROKER": BROKER},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        start_new_session=True,
    )


def _latest_run(instance: dg.DagsterInstance) -> dg.DagsterRun:
    (run,) = instance.get_runs(filters=dg.RunsFilter(job_name=JOB), limit=1)
    return run


def _celery_nodes(instance: dg.DagsterInstance, run_id: str) -> dict[str, list[str]]:
    """Step key -> the Celery workers that started it, in order (dagster-celery records the
    worker's node name when it starts a step)."""
    nodes: dict[str, list[str]] = {}
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.ENGINE_EVENT):
        event = record.dagster_event
        assert event is not None
        worker = event.engine_event_data.metadata.get("Celery worker")
        if worker is not None and event.step_key is not None:
            nodes.setdefault(event.step_key, []).append(str(worker.value).split("@")[0])
    return nodes


def _bucket_pids(instance: dg.DagsterInstance, run_id: str) -> dict[str, int]:
    """Step key -> the process id that scored that bucket (from the step's output metadata)."""
    pids = {}
    for record in instance.all_logs(run_id, of_type=dg.DagsterEventType.STEP_OUTPUT):
        event = record.dagster_event
        assert event is not None and event.step_key is not None
        if event.step_key.startswith(BUCKET_STEP):
            pids[event.step_key] = int(event.step_output_data.metadata["pid"].value)
    return pids


def _finish(run: subprocess.Popen[str]) -> None:
    try:
        output = run.communicate(timeout=RUN_TIMEOUT_SECONDS)[0]
    except subprocess.TimeoutExpired:
        # A step whose Celery task was lost (without acks_late, a killed worker's) never ends.
        os.killpg(run.pid, signal.SIGKILL)
        output = run.communicate()[0]
        pytest.fail(f"the run did not end in {RUN_TIMEOUT_SECONDS} s: {output[-4000:]}")
    assert run.returncode == 0, output[-4000:]


def _bucket_steps() -> set[str]:
    return {f"{BUCKET_STEP}[{key}]" for key in bucket_keys()}


def test_a_run_spreads_its_buckets_over_two_workers_and_publishes_the_same_table(
    scored_state: ScoredState, workers: Workers
) -> None:
    settings = Settings(home=scored_state.home)
    shutil.rmtree(settings.bucket_scores_dir)  # every bucket file is this run's own
    _finish(_start_run(scored_state, workers))

    run = _latest_run(scored_state.instance)
    assert run.status == dg.DagsterRunStatus.SUCCESS
    nodes = _celery_nodes(scored_state.instance, run.run_id)
    assert _bucket_steps() <= nodes.keys()
    assert {node for key in _bucket_steps() for node in nodes[key]} == {"w1", "w2"}
    pids = _bucket_pids(scored_state.instance, run.run_id)
    assert pids.keys() == _bucket_steps() and len(set(pids.values())) == 2
    pd.testing.assert_frame_equal(_newest(settings), scored_state.single_process)


def test_a_bucket_whose_worker_is_killed_runs_again_on_the_other_and_the_table_is_whole(
    scored_state: ScoredState, workers: Workers
) -> None:
    settings = Settings(home=scored_state.home)
    shutil.rmtree(settings.bucket_scores_dir)
    run_process = _start_run(scored_state, workers)

    # Wait for a worker to start a bucket step, then kill it while the step runs (it sleeps
    # before scoring, BUCKET_DELAY_VARIABLE).
    deadline = time.monotonic() + 300
    started: dict[str, list[str]] = {}
    while not (killed := [k for k in _bucket_steps() & started.keys() if len(started[k]) == 1]):
        assert time.monotonic() < deadline, "no worker started a bucket step"
        assert run_process.poll() is None, run_process.communicate()[0][-4000:]
        time.sleep(0.2)
        runs = scored_state.instance.get_runs(filters=dg.RunsFilter(job_name=JOB), limit=1)
        if runs and runs[0].status == dg.DagsterRunStatus.STARTED:
            started = _celery_nodes(scored_state.instance, runs[0].run_id)
    killed_step = killed[0]
    (victim,) = started[killed_step]
    (survivor,) = set(workers.processes) - {victim}
    workers.kill(victim)
    _finish(run_process)

    run = _latest_run(scored_state.instance)
    assert run.status == dg.DagsterRunStatus.SUCCESS
    nodes = _celery_nodes(scored_state.instance, run.run_id)
    assert nodes[killed_step] == [victim, survivor]  # redelivered to the other worker
    successes = [
        r.dagster_event.step_key
        for r in scored_state.instance.all_logs(
            run.run_id, of_type=dg.DagsterEventType.STEP_SUCCESS
        )
        if r.dagster_event is not None
    ]
    assert sorted(k for k in successes if k and k.startswith(BUCKET_STEP)) == sorted(
        _bucket_steps()
    )
    pd.testing.assert_frame_equal(_newest(settings), scored_state.single_process)
