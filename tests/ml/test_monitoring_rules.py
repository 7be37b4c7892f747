"""The monitoring rules (alerts), the performance retraining rule and the HTML report."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest

from ml.modelling.alerts import performance_alerts, stability_alerts
from ml.modelling.monitoring import Margins, conclude
from ml.modelling.performance import estimate_segments
from ml.modelling.performance_table import MonitoringPass, record_estimates
from ml.modelling.retraining import PerformanceEvidence, should_retrain_on_performance
from ml.modelling.stability import Stability
from ml.models.lead_scoring.monitoring import STABILITY_RULES as LEAD_STABILITY_RULES

NOW = datetime(2026, 9, 1, 6, tzinfo=UTC)
DAY = timedelta(hours=24)


@pytest.mark.parametrize(
    ("evidence", "retrain", "trigger"),
    [
        (PerformanceEvidence(0.80, 0.79, None), False, "none"),
        (PerformanceEvidence(0.80, 0.76, None), True, "estimated_performance"),
        (PerformanceEvidence(0.80, 0.79, 0.75), True, "realized_performance"),
        # The realized loss is named even when the estimate fell too: labels are the truth.
        (PerformanceEvidence(0.80, 0.70, 0.70), True, "realized_performance"),
        (PerformanceEvidence(None, 0.50, 0.50), False, "none"),
        (PerformanceEvidence(0.80, None, None), False, "none"),
    ],
)
def test_performance_rule(evidence: PerformanceEvidence, retrain: bool, trigger: str) -> None:
    decision = should_retrain_on_performance(evidence, 0.03, 0.03, None, NOW, DAY)
    assert (decision.retrain, decision.trigger) == (retrain, trigger)


def test_performance_rule_says_why_and_cools_down() -> None:
    evidence = PerformanceEvidence(0.80, 0.76, None)
    fired = should_retrain_on_performance(evidence, 0.03, 0.03, None, NOW, DAY)
    assert fired.reason == "estimated ROC AUC 0.760 < 0.770 (reference 0.800 - margin 0.030)"
    cooling = should_retrain_on_performance(evidence, 0.03, 0.03, NOW - DAY / 2, NOW, DAY)
    assert not cooling.retrain and "cooling down until" in cooling.reason


def test_performance_alerts_carry_observed_and_threshold() -> None:
    rate = {
        "as_of_date": date(2026, 6, 1),
        "estimated": 0.10,
        "realized": 0.14,
        "interval_low": 0.09,
        "interval_high": 0.11,
    }
    found = {
        a.rule: a
        for a in performance_alerts(PerformanceEvidence(0.8, 0.78, 0.76), 0.03, 0.03, rate)
    }
    assert found["estimated_auc"].passed and found["estimated_auc"].threshold == pytest.approx(0.77)
    assert not found["realized_auc"].passed and found["realized_auc"].observed == 0.76
    calibration = found["realized_calibration"]
    assert not calibration.passed
    assert calibration.observed == pytest.approx(0.04)
    assert calibration.threshold == pytest.approx(0.015)  # 1.5 half-widths of [0.09, 0.11]
    none_yet = {
        a.rule: a
        for a in performance_alerts(PerformanceEvidence(0.8, None, None), 0.03, 0.03, None)
    }
    assert all(a.passed and a.observed is None for a in none_yet.values())


def test_stability_alerts_follow_the_figures() -> None:
    found = stability_alerts(
        [Stability("score_psi", 0.3, 0.2, 100), Stability("band_changed_share", 0.05, 0.15, 90)]
    )
    by = {a.rule: a for a in found}
    assert not by["score_psi"].passed and by["band_changed_share"].passed
    assert by["action_changed_share"].passed and by["action_changed_share"].observed is None


def test_report_is_one_self_contained_file_with_alerts(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = pd.DataFrame(
        {"probability": rng.beta(1.5, 5, 3_000), "plan": rng.choice(["a", "b"], 3_000)}
    )
    rows["label"] = (rng.random(3_000) < rows["probability"]).astype(float)
    con = duckdb.connect()
    for as_of, labelled in ((date(2026, 6, 1), True), (date(2026, 9, 1), False)):
        figures = estimate_segments(rows, ["plan"], 300, label_column="label" if labelled else None)
        record_estimates(con, "churn", "4", as_of, figures, NOW)
    newest = estimate_segments(rows, ["plan"], 300)
    run = MonitoringPass("4", date(2026, 9, 1), newest, ())
    outcome = conclude(
        con,
        "churn",
        run,
        reference_auc=0.99,  # far above: the estimated and realized AUC rules fire
        margins=Margins(),
        report_path=tmp_path / "monitoring" / "churn.html",
        now=NOW,
        drift={"drift_share": 0.1},
        stability=[Stability("score_psi", 0.5, 0.2, 3_000)],
    )
    text = outcome.report.read_text()
    assert "data:image/png;base64," in text and "<script" not in text and 'src="http' not in text
    assert "plan=a" in text and "drift_share" in text
    failed = {a.rule for a in outcome.alerts if not a.passed}
    assert failed == {"estimated_auc", "realized_auc", "score_psi"}
    assert text.count("<li>") == 3
    assert outcome.evidence.realized_auc is not None
    assert outcome.thresholds["estimated_auc_threshold"] == pytest.approx(0.96)


def test_lead_stability_is_judged_and_reported_without_an_action(tmp_path: Path) -> None:
    rng = np.random.default_rng(1)
    rows = pd.DataFrame({"probability": rng.beta(1.5, 5, 2_000)})
    con = duckdb.connect()
    newest = estimate_segments(rows, [], 200)
    record_estimates(con, "lead_scoring", "2", date(2026, 9, 1), newest, NOW)
    outcome = conclude(
        con,
        "lead_scoring",
        MonitoringPass("2", date(2026, 9, 1), newest, ()),
        reference_auc=None,
        margins=Margins(),
        report_path=tmp_path / "monitoring" / "lead_scoring.html",
        now=NOW,
        stability=[
            Stability("score_psi", 0.01, 0.2, 1_800),
            Stability("band_changed_share", 0.3, 0.15, 1_200),
        ],
        stability_rules=LEAD_STABILITY_RULES,
    )
    rules = {a.rule: a for a in outcome.alerts}
    assert "action_changed_share" not in rules
    assert rules["score_psi"].passed and not rules["band_changed_share"].passed
    text = outcome.report.read_text()
    assert "<td>band_changed_share</td><td>0.3" in text and "<td>1200</td>" in text
    assert text.count("<li>") == 1  # the grade alert, nothing else
