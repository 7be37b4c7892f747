"""Performance monitoring in the real pipeline run: the assets, the table, the checks, the
report (the shared pipeline run of conftest.py)."""

from __future__ import annotations

import dagster as dg
import duckdb
import pytest

from ml.modelling.alerts import PERFORMANCE_RULES
from ml.modelling.performance_table import TABLE
from orchestration.definitions import defs as load_defs
from orchestration.lib import keys


def _metadata(run, key: dg.AssetKey) -> dict:  # type: ignore[no-untyped-def, type-arg]
    event = run.instance.get_latest_materialization_event(key)
    assert event is not None, key
    return {k: getattr(v, "value", v) for k, v in event.asset_materialization.metadata.items()}


def test_monitoring_assets_and_checks_are_defined() -> None:
    defs = load_defs()
    graph = defs.resolve_asset_graph()
    found = {k.to_user_string() for k in graph.get_all_asset_keys()}
    assert {
        "monitoring/churn_performance",
        "monitoring/lead_scoring_performance",
        "monitoring/churn_score_stability",
    } <= found
    checks = {c.name for c in graph.asset_check_keys}
    assert {f"churn_{rule}" for rule in PERFORMANCE_RULES} <= checks
    assert {"churn_score_psi", "lead_scoring_estimated_auc"} <= checks


def test_churn_run_is_estimated_per_segment_with_a_report(pipeline_run) -> None:  # type: ignore[no-untyped-def]
    metadata = _metadata(pipeline_run, keys.CHURN_PERFORMANCE)
    assert 0.5 < metadata["estimated_roc_auc"] < 1.0
    assert metadata["estimated_roc_auc_low"] < metadata["estimated_roc_auc"]
    assert metadata["estimated_roc_auc_high"] > metadata["estimated_roc_auc"]
    # The threshold the checks and the sensor use is the promoted version's AUC minus the margin.
    assert metadata["estimated_auc_threshold"] == pytest.approx(
        metadata["reference_roc_auc"] - pipeline_run.settings.retrain_estimated_auc_margin
    )
    report = pipeline_run.settings.reports_dir / "monitoring" / "churn.html"
    assert str(report) == str(metadata["report"])
    text = report.read_text()
    assert "data:image/png;base64," in text and "drift_share" in text
    with duckdb.connect(str(pipeline_run.settings.warehouse_path), read_only=True) as con:
        rows = con.execute(
            f"select segment, count(*) from {TABLE} where model = 'churn' and as_of_date = ? "
            "group by 1",
            [metadata["as_of_date"]],
        ).fetchall()
    segments = dict(rows)
    assert segments.get("all") == 4
    # 2,000 synthetic customers: plans reach the 500 rows a segment needs, the five behavioural
    # segments do not (their join is tested in tests/ml/test_churn_monitoring.py).
    assert any(s.startswith("plan=") for s in segments)
    assert metadata["segments"] == len(segments)


def test_lead_run_is_estimated(pipeline_run) -> None:  # type: ignore[no-untyped-def]
    metadata = _metadata(pipeline_run, keys.LEAD_PERFORMANCE)
    assert 0.5 < metadata["estimated_roc_auc"] < 1.0
    assert metadata["reference_roc_auc"] > 0.5
    # Leads are cut at the sales capacity, not the retention team's.
    settings = pipeline_run.settings
    assert metadata["capacity"] == settings.lead_capacity_top_k != settings.capacity_top_k
    with duckdb.connect(str(pipeline_run.settings.warehouse_path), read_only=True) as con:
        kept = con.execute("select count(*) from monitoring.lead_score_snapshots").fetchall()[0][0]
        scored = con.execute("select count(*) from serving.lead_scores").fetchall()[0][0]
    assert kept == scored > 0


def test_monitoring_checks_ran_with_observed_and_threshold(pipeline_run) -> None:  # type: ignore[no-untyped-def]
    evaluations = [
        e
        for e in pipeline_run.result.get_asset_check_evaluations()
        if e.asset_key == keys.CHURN_PERFORMANCE
    ]
    by_name = {e.check_name: e for e in evaluations}
    estimated = by_name["churn_estimated_auc"]
    assert estimated.metadata["observed"].value == pytest.approx(
        _metadata(pipeline_run, keys.CHURN_PERFORMANCE)["estimated_roc_auc"]
    )
    assert "threshold" in estimated.metadata
    # One scoring run: nothing realized yet, and the rule says so instead of failing.
    assert by_name["churn_realized_auc"].passed
