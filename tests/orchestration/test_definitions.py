"""The code location loads and has the shape the README promises."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import dagster as dg

from ml.data.contract import RAW_TABLES
from ml.serving.tables import SERVING_TABLES
from orchestration.definitions import defs as load_defs
from orchestration.defs.governance.assets import REGISTERED_MODELS


def test_definitions_load_with_jobs_schedules_and_sensor() -> None:
    defs = load_defs()
    dg.Definitions.validate_loadable(defs)
    assert {j.name for j in defs.resolve_all_job_defs()} >= {
        "scoring_job",
        "retraining_job",
    }
    assert defs.resolve_schedule_def("daily_scoring").cron_schedule == "0 6 * * *"
    assert defs.resolve_schedule_def("weekly_retraining").cron_schedule == "0 4 * * 1"
    assert defs.resolve_sensor_def("drift_retraining_sensor").job_name == "retraining_job"


def test_asset_graph_runs_from_raw_files_to_drift() -> None:
    graph = load_defs().resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    expected = {
        "source/crm_files",
        *(f"raw/{name}" for name in RAW_TABLES),
        "raw/leads",
        "staging/stg_crm__customers",
        "marts/customer_features",
        "marts/churn_labels",
        "marts/campaign_sends",
        "marts/product_purchase_labels",
        "governance/erasure",
        "governance/promotion_decisions",
        *(f"models/{name}" for name in REGISTERED_MODELS),
        "scoring/churn_buckets",
        "monitoring/churn_drift",
        "publish/postgres",
    }
    assert expected <= keys
    # Lineage: scores depend (transitively) on the raw customers loaded by ingest.
    upstream = graph.get(dg.AssetKey(["serving", "customer_scores"])).parent_keys
    assert dg.AssetKey(["marts", "customer_features"]) in upstream


def test_every_serving_table_is_one_asset_found_by_its_name() -> None:
    graph = load_defs().resolve_asset_graph()
    serving = {k.path[1] for k in graph.get_all_asset_keys() if k.path[0] == "serving"}
    assert serving == {table.name for table in SERVING_TABLES}
    publish = graph.get(dg.AssetKey(["publish", "postgres"]))
    assert {k.path[1] for k in publish.parent_keys if k.path[0] == "serving"} == serving


def test_every_trained_model_is_a_models_asset_named_as_registered() -> None:
    graph = load_defs().resolve_asset_graph()
    trained = {k.path[1] for k in graph.get_all_asset_keys() if k.path[0] == "models"}
    assert trained == set(REGISTERED_MODELS)
    for table in SERVING_TABLES:
        if table.model is not None:
            parents = graph.get(dg.AssetKey(["serving", table.name])).parent_keys
            assert dg.AssetKey(["models", table.model]) in parents, table.name


def test_customer_features_gate_is_blocking() -> None:
    defs = load_defs()
    checks = defs.resolve_asset_graph().asset_check_keys
    gate = dg.AssetCheckKey(
        dg.AssetKey(["marts", "customer_features"]), "customer_features_expectations"
    )
    assert gate in checks
    spec = defs.resolve_asset_graph().get_check_spec(gate)
    assert spec.blocking


def test_schedule_crons_come_from_settings(monkeypatch) -> None:
    monkeypatch.setenv("CRM_SCORING_CRON", "15 2 * * *")
    assert load_defs().resolve_schedule_def("daily_scoring").cron_schedule == "15 2 * * *"


def test_scoring_job_trains_nothing() -> None:
    defs = load_defs()
    job = defs.resolve_job_def("scoring_job")
    selected = {key.to_user_string() for key in job.asset_layer.selected_asset_keys}
    assert "serving/next_best_actions" in selected
    assert not {key for key in selected if key.startswith(("models/", "governance/promotion"))}


def test_definitions_read_the_dbt_manifest_and_never_run_dbt() -> None:
    """The code location (``dagster dev`` included) reads the manifest of `make`'s `dbt parse`.

    A dbt parse at load would cost seconds on every code-location reload. The load runs in a
    fresh interpreter so the module imports (where ``@dbt_assets`` reads the manifest) count.
    """
    probe = textwrap.dedent(
        """
        import json, os, sys
        os.environ["DAGSTER_IS_DEV_CLI"] = "1"  # as under `dagster dev` (prepare_if_dev)
        started = []
        def audit(event, args):
            argv = args[1] if event == "subprocess.Popen" else None
            if isinstance(argv, (list, tuple)) and os.path.basename(str(argv[0])) == "dbt":
                started.append(" ".join(map(str, argv)))
        sys.addaudithook(audit)
        from dbt.cli.main import dbtRunner
        from dbt.parser.manifest import ManifestLoader
        def refuse(*args, **kwargs):
            raise AssertionError("dbt ran in the code location's process")
        dbtRunner.invoke = refuse
        ManifestLoader.get_full_manifest = classmethod(refuse)
        from orchestration.definitions import defs
        defs().resolve_asset_graph()
        print(json.dumps(started))
        """
    )
    repository = Path(__file__).resolve().parents[2]
    # dbt on PATH, so that a load which wanted to run it would, and be seen doing so.
    path = os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", "")])
    done = subprocess.run(
        [sys.executable, "-c", probe],
        cwd=repository,
        env={**os.environ, "PATH": path},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert done.stdout.strip().splitlines()[-1] == "[]", done.stdout
