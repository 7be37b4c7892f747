"""Performance estimation without labels (CBPE): against NannyML's figures, hand-worked cases,
the intervals against label draws, realized figures against scikit-learn, segments."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import brier_score_loss, roc_auc_score

from ml.modelling.evaluation import capacity_metrics
from ml.modelling.performance import (
    ALL,
    EstimationConfig,
    capacity_mask,
    estimate,
    estimate_segments,
    expected_roc_auc,
)

REFERENCE = Path(__file__).resolve().parents[1] / "fixtures" / "cbpe_reference"


def _by_metric(found: list) -> dict:  # type: ignore[type-arg]
    return {e.metric: e for e in found}


@pytest.fixture(scope="module")
def reference() -> tuple[pd.DataFrame, dict]:  # type: ignore[type-arg]
    data = pd.read_csv(REFERENCE / "data.csv")
    figures = json.loads((REFERENCE / "figures.json").read_text())
    return data, figures


@pytest.mark.parametrize("chunk", ["same", "riskier", "safer", "miscalibrated"])
def test_estimates_equal_nannyml_cbpe(reference: tuple, chunk: str) -> None:  # type: ignore[type-arg]
    data, figures = reference
    rows = data[data["chunk"] == chunk]
    theirs = figures["chunks"][chunk]
    ours = _by_metric(estimate(rows["p"], rows["y_pred"].astype(bool)))
    assert ours["roc_auc"].estimated == pytest.approx(theirs["roc_auc"]["estimated"], abs=1e-6)
    assert ours["precision_at_capacity"].estimated == pytest.approx(
        theirs["precision"]["estimated"], abs=1e-9
    )
    if chunk == "same":
        # NannyML's band is +-3 standard errors measured on the reference (one figure for every
        # chunk); ours is the 95% interval of this chunk's label draws. On a chunk drawn like
        # the reference the standard errors agree within a quarter.
        ours_sd = (ours["roc_auc"].interval_high - ours["roc_auc"].interval_low) / (2 * 1.96)
        assert ours_sd == pytest.approx(theirs["roc_auc"]["sampling_error"], rel=0.25)


def test_the_capacity_in_the_fixture_is_the_capacity_mask(reference: tuple) -> None:  # type: ignore[type-arg]
    data, figures = reference
    for _, rows in data.groupby("chunk"):
        mask = capacity_mask(rows["p"], figures["capacity"])
        assert (mask == rows["y_pred"].astype(bool).to_numpy()).all()


def test_concept_shift_shows_as_realized_outside_the_estimate(reference: tuple) -> None:  # type: ignore[type-arg]
    """The last chunk's labels follow p**0.7: more events than the probabilities say, which
    the estimate cannot see and the realized positive rate does."""
    data, _ = reference
    rows = data[data["chunk"] == "miscalibrated"]
    found = _by_metric(estimate(rows["p"], rows["y_pred"].astype(bool), labels=rows["y"]))
    rate = found["positive_rate"]
    assert rate.realized is not None and rate.realized > rate.interval_high
    same = data[data["chunk"] == "same"]
    calibrated = _by_metric(estimate(same["p"], same["y_pred"].astype(bool), labels=same["y"]))
    c = calibrated["positive_rate"]
    assert c.realized is not None and c.interval_low <= c.realized <= c.interval_high


def test_expected_auc_by_hand() -> None:
    # Pairs (positive mass of i) x (negative mass of j) for i ranked above j, over all mass:
    # p = .8, .4: positive mass .8/.4, negative .2/.6 -> (.8*.6 + .5*(.8*.2 + .4*.6)) / (1.2*.8).
    expected = (0.8 * 0.6 + 0.5 * (0.8 * 0.2 + 0.4 * 0.6)) / (1.2 * 0.8)
    assert expected_roc_auc([0.4, 0.8]) == pytest.approx(expected)
    # Ties count half, wherever they sit in the input.
    assert expected_roc_auc([0.3, 0.3, 0.3]) == pytest.approx(0.5)
    assert np.isnan(expected_roc_auc([0.0, 1.0]) * 0.0 + expected_roc_auc([1.0, 1.0]))


def test_estimate_converges_to_the_realized_auc_of_calibrated_labels() -> None:
    rng = np.random.default_rng(3)
    p = rng.beta(1.5, 6.0, 200_000)
    y = (rng.random(len(p)) < p).astype(int)
    found = _by_metric(estimate(p, capacity_mask(p, 2_000), labels=y))
    auc = found["roc_auc"]
    assert auc.realized == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert abs(auc.estimated - auc.realized) < 0.005
    assert auc.interval_low <= auc.realized <= auc.interval_high


def test_realized_figures_are_the_evaluation_figures() -> None:
    rng = np.random.default_rng(4)
    p = np.round(rng.random(3_000), 2)  # many ties
    y = (rng.random(len(p)) < p).astype(int)
    found = _by_metric(estimate(p, capacity_mask(p, 300), labels=y))
    assert found["roc_auc"].realized == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert found["precision_at_capacity"].realized == pytest.approx(
        capacity_metrics(y, p, 300)["precision_at_capacity"]
    )
    assert found["brier"].realized == pytest.approx(brier_score_loss(y, p))
    assert found["positive_rate"].realized == pytest.approx(y.mean())
    assert found["precision_at_capacity"].rows == 300


def test_normal_interval_matches_label_draws() -> None:
    rng = np.random.default_rng(5)
    p = rng.beta(1.2, 5.0, 20_000)
    top = capacity_mask(p, 500)
    normal = _by_metric(estimate(p, top))
    draws = _by_metric(estimate(p, top, EstimationConfig(interval="draws", samples=2_000)))
    for metric, found in normal.items():
        width = found.interval_high - found.interval_low
        assert width > 0
        assert draws[metric].interval_low == pytest.approx(found.interval_low, abs=0.1 * width)
        assert draws[metric].interval_high == pytest.approx(found.interval_high, abs=0.1 * width)


def test_too_few_of_a_class_leaves_the_metric_out() -> None:
    p = np.full(1_000, 0.01)  # 10 expected positives
    found = _by_metric(estimate(p, capacity_mask(p, 5)))
    assert "roc_auc" not in found and "precision_at_capacity" not in found
    assert set(found) == {"positive_rate", "brier"}


@pytest.mark.parametrize(
    ("proba", "message"),
    [([0.2, np.nan], "NaN"), ([0.2, 1.5], r"\[0, 1\]")],
)
def test_bad_probabilities_are_refused(proba: list[float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        estimate(proba, [True, False])


def test_labels_must_be_zero_or_one() -> None:
    with pytest.raises(ValueError, match="0 or 1"):
        estimate([0.2, 0.4], [True, False], labels=[0, 2])


def test_segments_take_the_run_capacity_and_skip_small_segments() -> None:
    rng = np.random.default_rng(6)
    n = 6_000
    rows = pd.DataFrame(
        {
            "probability": rng.beta(1.5, 5.0, n),
            "plan": np.where(np.arange(n) < 5_700, "basic", "premium"),
        }
    )
    rows.loc[rows["plan"] == "basic", "probability"] *= 0.5  # premium holds the highest scores
    rows["label"] = (rng.random(n) < rows["probability"]).astype(float)
    config = EstimationConfig(min_segment_rows=500)
    table = estimate_segments(rows, ["plan"], capacity=600, config=config, label_column="label")
    assert set(table["segment"]) == {ALL, "plan=basic"}  # premium has 300 rows
    whole = table[(table["segment"] == ALL) & (table["metric"] == "precision_at_capacity")]
    basic = table[(table["segment"] == "plan=basic") & (table["metric"] == "precision_at_capacity")]
    top = capacity_mask(rows["probability"], 600)
    assert int(whole["rows"].iloc[0]) == 600
    assert int(basic["rows"].iloc[0]) == int((top & (rows["plan"] == "basic")).sum())
    assert table["realized"].notna().all()


def test_segments_without_every_label_have_no_realized_figures() -> None:
    rows = pd.DataFrame({"probability": np.linspace(0.05, 0.95, 1_000), "label": 1.0})
    rows.loc[::2, "label"] = 0.0
    rows.loc[0, "label"] = np.nan
    table = estimate_segments(rows, [], capacity=100, label_column="label")
    assert table["realized"].isna().all()
    assert table["estimated"].notna().all()


def test_a_reference_column_is_trusted_and_the_served_brier_is_kept() -> None:
    # Served probabilities squeezed towards the mean (an under-confident booster); the reference
    # column holds the true event probabilities. The estimates must trust the reference, the
    # ranking figures and the capacity stay the served ones', and the Brier score is the served
    # probabilities' (estimated from the reference).
    rng = np.random.default_rng(5)
    truth = rng.beta(1.0, 9.0, 50_000)
    served = 0.1 + 0.4 * (truth - 0.1)
    y = (rng.random(truth.size) < truth).astype(float)
    rows = pd.DataFrame({"probability": served, "reference": truth, "label": y})

    found = estimate_segments(rows, [], 500, label_column="label", reference_column="reference")
    plain = estimate_segments(rows, [], 500, label_column="label")
    figures = found.set_index("metric")
    untrusted = plain.set_index("metric")

    assert figures.loc["roc_auc", "estimated"] == pytest.approx(expected_roc_auc(truth))
    assert abs(figures.loc["roc_auc", "estimated"] - figures.loc["roc_auc", "realized"]) < 0.01
    assert abs(untrusted.loc["roc_auc", "estimated"] - figures.loc["roc_auc", "realized"]) > 0.05
    for metric in ("roc_auc", "precision_at_capacity", "positive_rate", "brier"):
        assert figures.loc[metric, "realized"] == pytest.approx(untrusted.loc[metric, "realized"])
    assert figures.loc["brier", "realized"] == pytest.approx(brier_score_loss(y, served))
    expected_brier = np.mean(truth * (1 - truth) + (served - truth) ** 2)
    assert figures.loc["brier", "estimated"] == pytest.approx(expected_brier)
    assert abs(figures.loc["brier", "estimated"] - figures.loc["brier", "realized"]) < 0.002
