"""The code location loads and has the shape the README promises."""

from __future__ import annotations

import dagster as dg

from ml.data.contract import RAW_TABLES
from orchestration.definitions import defs as load_defs


def test_definitions_load_with_jobs_schedules_and_sensor() -> None:
    defs = load_defs()
    dg.Definitions.validate_loadable(defs)
    assert {j.name for j in defs.resolve_all_job_defs()} >= {
        "churn_scoring_job",
        "churn_retraining_job",
    }
    assert defs.resolve_schedule_def("daily_churn_scoring").cron_schedule == "0 6 * * *"
    assert defs.resolve_schedule_def("weekly_churn_retraining").cron_schedule == "0 4 * * 1"
    assert defs.resolve_sensor_def("drift_retraining_sensor").job_name == "churn_retraining_job"


def test_asset_graph_runs_from_raw_files_to_drift() -> None:
    graph = load_defs().resolve_asset_graph()
    keys = {key.to_user_string() for key in graph.get_all_asset_keys()}
    expected = {
        "crm_source_files",
        *(f"raw/{name}" for name in RAW_TABLES),
        "staging/stg_crm__customers",
        "marts/customer_features",
        "marts/churn_labels",
        "churn_model",
        "serving/customer_scores",
        "exports/customer_scores",
        "churn_drift_report",
        "marts/campaign_sends",
        "marts/product_purchase_labels",
        "retention_uplift_model",
        "serving/customer_uplift",
        "next_product_model",
        "serving/next_product_offers",
        "serving/next_best_actions",
        "raw/leads",
        "lead_model",
        "serving/lead_scores",
        "serving/customer_value",
    }
    assert expected <= keys
    # Lineage: scores depend (transitively) on the raw customers loaded by ingest.
    upstream = graph.get(dg.AssetKey(["serving", "customer_scores"])).parent_keys
    assert dg.AssetKey(["marts", "customer_features"]) in upstream


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
    assert load_defs().resolve_schedule_def("daily_churn_scoring").cron_schedule == "15 2 * * *"


def test_scoring_job_trains_nothing() -> None:
    defs = load_defs()
    job = defs.resolve_job_def("churn_scoring_job")
    selected = {key.to_user_string() for key in job.asset_layer.selected_asset_keys}
    assert "serving/next_best_actions" in selected
    trained = {
        "churn_model",
        "retention_uplift_model",
        "next_product_model",
        "lead_model",
        "serving/customer_value",
    }
    assert not selected & trained
