"""Metrics against hand-computed values, the plots, and the oracle AUC from synthetic truth."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.modelling.evaluation import (
    evaluate,
    expected_calibration_error,
    plot_calibration_curve,
    plot_lift_chart,
    plot_shap_summary,
)
from ml.synthetic.oracle import oracle_auc

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def test_metrics_match_hand_computed_values() -> None:
    y = np.array([0, 0, 1, 1])
    p = np.array([0.1, 0.4, 0.35, 0.8])
    result = evaluate(y, p, top_fraction=0.25)

    # Pairs (pos, neg): (0.35 > 0.1), (0.35 < 0.4), (0.8 > 0.1), (0.8 > 0.4) -> 3 of 4.
    assert result.roc_auc == pytest.approx(0.75)
    assert result.brier == pytest.approx((0.01 + 0.16 + 0.4225 + 0.04) / 4)
    expected_log_loss = -np.mean(np.log([0.9, 0.6, 0.35, 0.8]))
    assert result.log_loss == pytest.approx(expected_log_loss)
    # Average precision: ranks 0.8 (pos), 0.4 (neg), 0.35 (pos) -> (1/1 + 2/3) / 2.
    assert result.pr_auc == pytest.approx((1 + 2 / 3) / 2)
    assert result.base_rate == 0.5 and result.n == 4
    assert result.precision_at_k == 1.0 and result.lift_at_k == 2.0


def test_precision_and_lift_in_top_decile() -> None:
    # 20 rows, 4 churners; top 10% = 2 rows: the two highest scores, one of them a churner.
    p = np.linspace(0.95, 0.0, 20)
    y = np.zeros(20, dtype=int)
    y[[0, 5, 6, 19]] = 1
    result = evaluate(y, p)
    assert result.precision_at_k == pytest.approx(0.5)
    assert result.base_rate == pytest.approx(0.2)
    assert result.lift_at_k == pytest.approx(2.5)


def test_top_fraction_rounds_up_to_whole_rows() -> None:
    # 15 rows, 10% -> ceil(1.5) = 2 rows.
    p = np.linspace(1.0, 0.0, 15)
    y = np.array([1, 0] + [0] * 12 + [1])
    assert evaluate(y, p).precision_at_k == pytest.approx(0.5)


def test_expected_calibration_error_by_hand() -> None:
    # Bin [0, 0.1): mean p 0.05, observed 0.5; bin [0.9, 1]: mean p 0.95, observed 1.0.
    y = np.array([0, 1, 1, 1])
    p = np.array([0.05, 0.05, 0.95, 0.95])
    assert expected_calibration_error(y, p) == pytest.approx(0.5 * 0.45 + 0.5 * 0.05)
    assert evaluate(y, p).ece == pytest.approx(0.25)
    # A perfectly calibrated binning has zero error.
    perfect_y = [1, 0, 0, 0, 1, 1, 1, 0]
    perfect_p = [0.25] * 4 + [0.75] * 4
    assert expected_calibration_error(perfect_y, perfect_p) == pytest.approx(0.0)


@pytest.mark.parametrize(
    ("y", "p", "message"),
    [
        ([1, 1, 1], [0.2, 0.3, 0.4], "single class"),
        ([0, 1], [0.2, 1.3], r"\[0, 1\]"),
        ([0, 1], [0.2, np.nan], r"\[0, 1\]"),
        ([0, 1, 0], [0.2, 0.3], "equal length"),
        ([], [], "zero rows"),
    ],
)
def test_evaluate_rejects_bad_input(y: list[int], p: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        evaluate(y, p)


def test_plots_are_written_as_png(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    p = rng.random(500)
    y = (rng.random(500) < p).astype(int)
    calibration = plot_calibration_curve(y, p, tmp_path / "plots" / "calibration.png")
    lift = plot_lift_chart(y, p, tmp_path / "plots" / "lift.png")
    for path in (calibration, lift):
        assert path.is_file() and path.stat().st_size > 5_000
        assert path.read_bytes()[:8] == PNG_MAGIC


# --- oracle --------------------------------------------------------------------------------


@pytest.fixture
def truth_dir(tmp_path: Path) -> Path:
    as_of = date(2025, 6, 1)
    pd.DataFrame(
        {
            "customer_record_id": ["r1", "r2", "r3", "r4", "r5"],
            "person_id": ["p1", "p2", "p3", "p4", "p5"],
        }
    ).to_parquet(tmp_path / "record_persons.parquet")
    pd.DataFrame(
        {
            "person_id": ["p1", "p2", "p3", "p4", "p5", "p1"],
            "as_of_date": [as_of] * 5 + [date(2025, 5, 1)],
            "churn_probability_90d": [0.9, 0.1, 0.3, 0.6, 0.5, 0.0],
            "churned_within_90d": [True, False, False, True, True, False],
        }
    ).to_parquet(tmp_path / "churn_truth.parquet")
    return tmp_path


def test_oracle_auc_averages_merged_persons(truth_dir: Path) -> None:
    # c2 merged two persons (r2 -> p2 at 0.1, r5 -> p5 at 0.5): its true probability is 0.3.
    identity_map = pd.DataFrame(
        {
            "customer_record_id": ["r1", "r2", "r5", "r3", "r4"],
            "customer_id": ["c1", "c2", "c2", "c3", "c4"],
        }
    )
    keys = pd.DataFrame(
        {
            "customer_id": ["c1", "c2", "c3", "c4"],
            "as_of_date": pd.to_datetime(["2025-06-01"] * 4),
            "churned": [True, True, False, False],
        }
    )
    # Positives c1 0.9, c2 0.3; negatives c3 0.3, c4 0.6 -> pairs: 1 + 1 + 0.5 + 0 = 2.5 of 4.
    assert oracle_auc(keys, identity_map, truth_dir) == pytest.approx(0.625)


def test_oracle_auc_is_none_without_truth(tmp_path: Path) -> None:
    keys = pd.DataFrame(
        {"customer_id": ["c1"], "as_of_date": [date(2025, 6, 1)], "churned": [True]}
    )
    identity_map = pd.DataFrame({"customer_record_id": ["r1"], "customer_id": ["c1"]})
    assert oracle_auc(keys, identity_map, tmp_path / "no-truth") is None


def test_shap_summary_ranks_the_planted_drivers_first(
    tmp_path, trained_model, feature_frame
) -> None:
    frame = feature_frame.iloc[:2000]
    path, importance = plot_shap_summary(
        trained_model.shap_values(frame), trained_model.prepare(frame), tmp_path / "shap.png"
    )
    assert path.read_bytes()[:4] == b"\x89PNG"
    # The tiny world's churn depends on contract type, tickets and logins only.
    assert set(list(importance)[:3]) == {"contract_type", "tickets_30d", "logins_30d"}
    assert list(importance.values()) == sorted(importance.values(), reverse=True)
