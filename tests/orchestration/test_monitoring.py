"""Performance monitoring in the real pipeline run: the assets, the table, the checks, the
report (the shared pipeline run of conftest.py); lead score stability materialized on its own
over two planted lead runs."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import dagster as dg
import duckdb
import numpy as np
import pandas as pd
import pytest

from ml.modelling.alerts import PERFORMANCE_RULES
from ml.modelling.performance_table import TABLE
from ml.modelling.stability import STABILITY_TABLE
from orchestration.definitions import defs as load_defs
from orchestration.defs.monitoring.assets import lead_scoring_score_stability
from orchestration.defs.monitoring.checks import checks
from orchestration.lib import keys
from orchestration.resources import CrmSettings


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
        "monitoring/lead_scoring_score_stability",
    } <= found
    names = {c.name for c in graph.asset_check_keys}
    assert {f"churn_{rule}" for rule in PERFORMANCE_RULES} <= names
    assert {"churn_score_psi", "lead_scoring_estimated_auc"} <= names
    # A lead has a grade but no action.
    assert {"lead_scoring_score_psi", "lead_scoring_band_changed_share"} <= names
    assert "lead_scoring_action_changed_share" not in names


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


def _lead_run(home: Path, grades: list[str], scored_at: datetime) -> None:
    ids = [f"L{i:03d}" for i in range(len(grades))]
    scores = pd.DataFrame(  # noqa: F841 (DuckDB's replacement scan)
        {
            "lead_id": ids,
            "scored_at": scored_at,
            "conversion_probability": np.linspace(0.05, 0.95, len(grades)),
            "grade": grades,
            "model_version": "1",
        }
    )
    with duckdb.connect(str(home / "warehouse.duckdb")) as con:
        con.execute("create schema if not exists raw")
        con.execute("create schema if not exists serving")
        con.execute("create or replace table raw.leads as select lead_id from scores")
        con.execute("create or replace table serving.lead_scores as select * from scores")


def _stability_checks(home: Path) -> dict[str, dg.AssetCheckEvaluation]:
    lead_checks = [
        c
        for c in checks().asset_checks or ()
        if any(k.asset_key == keys.LEAD_STABILITY for k in c.check_keys)
    ]
    result = dg.materialize(
        [lead_scoring_score_stability, *lead_checks],
        resources={"crm": CrmSettings(home=str(home))},
    )
    assert result.success
    return {e.check_name: e for e in result.get_asset_check_evaluations()}


def test_lead_stability_checks_warn_with_observed_and_threshold(tmp_path: Path) -> None:
    first = ["A"] * 50 + ["B"] * 50 + ["C"] * 50 + ["D"] * 50
    _lead_run(tmp_path, first, datetime(2026, 5, 1, 6))
    only_one = _stability_checks(tmp_path)
    assert set(only_one) == {"lead_scoring_score_psi", "lead_scoring_band_changed_share"}
    assert all(e.passed and e.metadata["skipped"].value for e in only_one.values())

    # The next day: 40 of the 200 leads change grade (20% > the 15% default threshold).
    second = ["B"] * 40 + first[40:]
    _lead_run(tmp_path, second, datetime(2026, 5, 2, 6))
    found = _stability_checks(tmp_path)
    band = found["lead_scoring_band_changed_share"]
    assert not band.passed and band.severity == dg.AssetCheckSeverity.WARN
    assert band.metadata["observed"].value == pytest.approx(0.2)
    assert band.metadata["threshold"].value == pytest.approx(0.15)
    # Same probabilities in both runs: the distribution did not move.
    assert found["lead_scoring_score_psi"].passed
    assert found["lead_scoring_score_psi"].metadata["observed"].value == pytest.approx(0.0)
    with duckdb.connect(str(tmp_path / "warehouse.duckdb"), read_only=True) as con:
        stored = con.execute(
            f"select metric, value from {STABILITY_TABLE} where model = 'lead_scoring'"
        ).fetchall()
    assert dict(stored) == pytest.approx({"band_changed_share": 0.2, "score_psi": 0.0})
