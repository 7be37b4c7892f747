"""Uplift learners, metrics, bootstrap interval and segments on tiny arrays and frames.

The metric values on the six-row example were computed by hand (and agree with scikit-uplift
0.5.1). The learner tests use a randomised world with a planted heterogeneous effect: the
treatment raises the response rate from 0.2 to 0.5 only where ``x > 0``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import numpy as np
import pandas as pd
import pytest

from ml.modelling.boosting import BoostingParams
from ml.modelling.uplift import (
    SEGMENTS,
    Segment,
    SegmentThresholds,
    TLearner,
    UpliftConfig,
    XLearner,
    auuc,
    bootstrap_uplift_at_k,
    fit_t_learner,
    fit_uplift_model,
    fit_x_learner,
    perfect_qini_curve,
    qini_coefficient,
    qini_curve,
    segment_customers,
    uplift_at_k,
    uplift_curve,
)

FAST = UpliftConfig(
    boosting=BoostingParams(
        iterations=100, depth=3, learning_rate=0.1, l2_leaf_reg=10.0, thread_count=1, seed=7
    )
)
CATS = ("region",)

# Six rows, already in descending score order.
SCORE = np.array([0.9, 0.8, 0.7, 0.6, 0.5, 0.4])
TREAT = np.array([1, 0, 1, 0, 1, 0])
OUTCOME = np.array([1, 0, 1, 1, 0, 0])


def planted_world(n: int, seed: int, effect: float = 0.3) -> pd.DataFrame:
    """Randomised test: response 0.2, plus ``effect`` for treated rows with ``x > 0``."""
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1, 1, n)
    treatment = rng.integers(0, 2, n)
    region = rng.choice(np.array(["north", "south", "east"], dtype=object), n)
    region[rng.random(n) < 0.05] = None
    p = 0.2 + effect * treatment * (x > 0)
    return pd.DataFrame(
        {
            "x": x,
            "noise": rng.normal(size=n),
            "region": region,
            "treatment": treatment,
            "outcome": (rng.random(n) < p).astype(int),
        }
    )


def _features(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[["x", "noise", "region"]]


@pytest.fixture(scope="module")
def train_frame() -> pd.DataFrame:
    return planted_world(4000, seed=1)


@pytest.fixture(scope="module")
def test_frame() -> pd.DataFrame:
    return planted_world(4000, seed=2)


@pytest.fixture(scope="module", params=["t", "x"])
def fitted(request: pytest.FixtureRequest, train_frame: pd.DataFrame) -> TLearner | XLearner:
    config = replace(FAST, learner=request.param)
    return fit_uplift_model(
        _features(train_frame),
        train_frame["treatment"].to_numpy(),
        train_frame["outcome"].to_numpy(),
        cat_features=CATS,
        config=config,
    )


# ------------------------------------------------------------------------------------ metrics


@pytest.mark.parametrize(
    ("k", "expected"),
    [
        # int(6 * 0.5) = 3 rows: treated rows 0, 2 respond (1.0), control row 1 does not (0.0).
        (0.5, 1.0),
        # 4 rows: treated 2/2, control 1/2.
        (0.7, 0.5),
        # all rows: treated 2/3, control 1/3 (the average effect).
        (1.0, 1 / 3),
    ],
)
def test_uplift_at_k_hand_computed(k: float, expected: float) -> None:
    assert uplift_at_k(OUTCOME, SCORE, TREAT, k=k) == pytest.approx(expected)


def test_uplift_at_k_ranks_by_score_not_by_input_order() -> None:
    perm = np.array([3, 0, 5, 1, 4, 2])
    assert uplift_at_k(OUTCOME[perm], SCORE[perm], TREAT[perm], k=0.5) == pytest.approx(1.0)


def test_qini_curve_hand_computed() -> None:
    curve = qini_curve(OUTCOME, SCORE, TREAT)
    # Y_t - Y_c * N_t / N_c over the first n rows, n = 0..6.
    np.testing.assert_array_equal(curve.n_targeted, np.arange(7))
    np.testing.assert_allclose(curve.gain, [0, 1, 1, 2, 1, 0.5, 1])
    assert curve.area() == pytest.approx(6.0)


def test_perfect_qini_curve_hand_computed() -> None:
    # Treated responders (rows 0, 2) first, the control responder (row 3) last; the four rows
    # without a response share one score, so they make one point.
    curve = perfect_qini_curve(OUTCOME, TREAT)
    np.testing.assert_array_equal(curve.n_targeted, [0, 2, 5, 6])
    np.testing.assert_allclose(curve.gain, [0, 2, 2, 1])
    assert curve.area() == pytest.approx(9.5)


def test_qini_coefficient_hand_computed() -> None:
    # (model 6.0 - random 6 * 1 / 2) / (perfect 9.5 - random 3.0)
    assert qini_coefficient(OUTCOME, SCORE, TREAT) == pytest.approx(3.0 / 6.5)


def test_uplift_curve_and_auuc_hand_computed() -> None:
    curve = uplift_curve(OUTCOME, SCORE, TREAT)
    np.testing.assert_allclose(curve.gain, [0, 1, 2, 3, 2, 5 / 6, 2])
    # (model 59/6 - random 6) / (perfect 43/3 - random 6) = 23/50
    assert auuc(OUTCOME, SCORE, TREAT) == pytest.approx(0.46)


def test_perfect_and_constant_scores_bound_the_qini_coefficient() -> None:
    perfect_score = OUTCOME * TREAT - OUTCOME * (1 - TREAT)
    assert qini_coefficient(OUTCOME, perfect_score, TREAT) == pytest.approx(1.0)
    # A constant score cannot rank anyone: one point at the end, the random diagonal.
    constant = qini_curve(OUTCOME, np.zeros(6), TREAT)
    np.testing.assert_array_equal(constant.n_targeted, [0, 6])
    assert qini_coefficient(OUTCOME, np.zeros(6), TREAT) == pytest.approx(0.0)


def test_random_score_has_uplift_near_zero_without_effect() -> None:
    world = planted_world(20_000, seed=3, effect=0.0)
    score = np.random.default_rng(4).random(len(world))
    y, t = world["outcome"], world["treatment"]
    # Standard error of the difference of two rates over ~3,000 rows each is about 0.01.
    assert abs(uplift_at_k(y, score, t)) < 0.03
    assert abs(qini_coefficient(y, score, t)) < 0.1


# ---------------------------------------------------------------------------------- bootstrap


def _world_arrays(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    world = planted_world(n, seed=seed)
    score = world["x"].to_numpy() + np.random.default_rng(seed).normal(0, 0.5, n)
    return world["outcome"].to_numpy(), score, world["treatment"].to_numpy()


def test_bootstrap_interval_contains_estimate_and_narrows_with_rows() -> None:
    small = bootstrap_uplift_at_k(*_world_arrays(1_000, seed=5), n_boot=200, seed=0)
    large = bootstrap_uplift_at_k(*_world_arrays(16_000, seed=6), n_boot=200, seed=0)
    for interval in (small, large):
        assert interval.low < interval.estimate < interval.high
        assert interval.n_boot == 200 and interval.confidence == 0.95 and interval.k == 0.3
    # 16x the rows: the width should shrink about 4x; allow for resampling noise.
    assert (large.high - large.low) < 0.5 * (small.high - small.low)


def test_bootstrap_is_seeded() -> None:
    arrays = _world_arrays(2_000, seed=8)
    assert bootstrap_uplift_at_k(*arrays, seed=3) == bootstrap_uplift_at_k(*arrays, seed=3)
    assert bootstrap_uplift_at_k(*arrays, seed=3) != bootstrap_uplift_at_k(*arrays, seed=4)


def test_vectorised_bootstrap_equals_resampling_one_by_one() -> None:
    y, score, t = _world_arrays(300, seed=9)
    n_boot, seed = 40, 11
    interval = bootstrap_uplift_at_k(y, score, t, n_boot=n_boot, confidence=0.9, seed=seed)
    # Same draws, applied to the rows in score order as the implementation does.
    order = np.argsort(score, kind="mergesort")[::-1]
    draws = np.random.default_rng(seed).integers(0, len(y), size=(n_boot, len(y)))
    stats = [uplift_at_k(y[order][d], score[order][d], t[order][d]) for d in draws]
    assert interval.low == pytest.approx(np.percentile(stats, 5))
    assert interval.high == pytest.approx(np.percentile(stats, 95))
    assert interval.estimate == pytest.approx(uplift_at_k(y, score, t))


# ----------------------------------------------------------------------------------- learners


def test_fit_uplift_model_builds_the_configured_learner(fitted: TLearner | XLearner) -> None:
    expected = XLearner if fitted.config.learner == "x" else TLearner
    assert type(fitted) is expected
    assert fitted.feature_names == ("x", "noise", "region")


def test_learners_recover_planted_effect(
    fitted: TLearner | XLearner, test_frame: pd.DataFrame
) -> None:
    predicted = fitted.predict_uplift(_features(test_frame))
    y, t = test_frame["outcome"], test_frame["treatment"]
    random_score = np.random.default_rng(0).random(len(test_frame))
    learnt = uplift_at_k(y, predicted, t)
    # Random targeting earns the average effect (~0.15); the top 30% by a good model all have
    # x > 0, where the effect is 0.3.
    assert learnt > uplift_at_k(y, random_score, t) + 0.08
    top = np.argsort(-predicted)[: int(0.3 * len(predicted))]
    assert (test_frame["x"].to_numpy()[top] > 0).mean() > 0.9
    # The perfect Qini curve ranks on realised outcomes, so even the true effect scores far below
    # 1 (about 0.15 here): compare with it and with the random ranking.
    oracle = qini_coefficient(y, (test_frame["x"] > 0).astype(float), t)
    learnt_qini = qini_coefficient(y, predicted, t)
    assert learnt_qini > 0.8 * oracle
    assert learnt_qini > qini_coefficient(y, random_score, t) + 0.1


def test_predictions_are_probabilities_and_ignore_column_order(
    fitted: TLearner | XLearner, test_frame: pd.DataFrame
) -> None:
    features = _features(test_frame)
    p_treated, p_control = fitted.predict_outcomes(features)
    assert p_treated.shape == p_control.shape == (len(features),)
    assert ((p_treated >= 0) & (p_treated <= 1) & (p_control >= 0) & (p_control <= 1)).all()
    reordered = test_frame[["region", "outcome", "noise", "x"]]
    np.testing.assert_allclose(fitted.predict_uplift(reordered), fitted.predict_uplift(features))


def test_t_learner_uplift_is_difference_of_outcome_models(test_frame: pd.DataFrame) -> None:
    frame = planted_world(1_000, seed=12)
    model = fit_t_learner(_features(frame), frame["treatment"], frame["outcome"], CATS, FAST)
    features = _features(test_frame.head(200))
    p_treated, p_control = model.predict_outcomes(features)
    np.testing.assert_allclose(model.predict_uplift(features), p_treated - p_control)


def test_x_learner_uses_the_treated_share_as_propensity() -> None:
    frame = planted_world(1_000, seed=13)
    model = fit_x_learner(_features(frame), frame["treatment"], frame["outcome"], CATS, FAST)
    assert model.treated_share == pytest.approx(frame["treatment"].mean())
    predicted = model.predict_uplift(_features(frame))
    assert np.isfinite(predicted).all() and (np.abs(predicted) <= 1.5).all()


# -------------------------------------------------------------------------------- bad inputs


@pytest.mark.parametrize(
    ("treatment", "message"),
    [
        (np.array([1, 0, 1, 0, 1]), "equal lengths"),
        (np.array([1, 0, 2, 0, 1, 0]), "binary 0/1"),
        (np.array([1, 0, np.nan, 0, 1, 0]), "binary 0/1"),
        (np.array(["a", "b", "a", "b", "a", "b"]), "binary 0/1"),
        (np.ones(6, dtype=int), "single arm"),
        (np.zeros(6, dtype=int), "single arm"),
    ],
)
def test_metrics_reject_bad_treatment(treatment: np.ndarray, message: str) -> None:
    for metric in (uplift_at_k, qini_coefficient, auuc):
        with pytest.raises(ValueError, match=message):
            metric(OUTCOME, SCORE, treatment)
    with pytest.raises(ValueError, match=message):
        bootstrap_uplift_at_k(OUTCOME, SCORE, treatment)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"outcome": np.array([1, 0, 3, 1, 0, 0])}, "outcome must be binary"),
        ({"uplift": np.array([0.1, np.nan, 0.3, 0.4, 0.5, 0.6])}, "NaN"),
        ({"uplift": SCORE[:4]}, "equal lengths"),
        ({"k": 0.0}, r"k must be a fraction in \(0, 1\]"),
        ({"k": 1.5}, r"k must be a fraction in \(0, 1\]"),
        ({"k": 0.1}, "selects no row"),
    ],
)
def test_uplift_at_k_rejects_bad_input(kwargs: dict, message: str) -> None:
    args = {"outcome": OUTCOME, "uplift": SCORE, "treatment": TREAT} | kwargs
    with pytest.raises(ValueError, match=message):
        uplift_at_k(**args)


def test_uplift_at_k_needs_both_arms_among_top_rows() -> None:
    # int(6 * 0.2) = 1 row, which is treated.
    with pytest.raises(ValueError, match="no control row"):
        uplift_at_k(OUTCOME, SCORE, TREAT, k=0.2)


@pytest.mark.parametrize(
    ("n_boot", "confidence", "message"),
    [(1, 0.95, "n_boot"), (200, 1.0, "confidence"), (200, 0.0, "confidence")],
)
def test_bootstrap_rejects_bad_settings(n_boot: int, confidence: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        bootstrap_uplift_at_k(OUTCOME, SCORE, TREAT, n_boot=n_boot, confidence=confidence)


def _tiny_design() -> tuple[pd.DataFrame, np.ndarray, np.ndarray]:
    frame = planted_world(60, seed=14)
    return _features(frame), frame["treatment"].to_numpy(), frame["outcome"].to_numpy()


@pytest.mark.parametrize("fit", [fit_t_learner, fit_x_learner])
def test_fit_rejects_bad_input(fit: Callable[..., object]) -> None:
    features, treatment, outcome = _tiny_design()
    cases = [
        ((features, treatment[:-1], outcome), "equal lengths"),
        ((features, treatment, outcome[:-1]), "equal lengths"),
        ((features, np.where(treatment == 1, 2, 0), outcome), "treatment must be binary"),
        ((features, np.ones(len(features)), outcome), "single arm"),
        ((features, treatment, np.where(treatment == 1, 1, outcome)), "every treated row"),
        ((features.to_numpy(), treatment, outcome), "pandas DataFrame"),
    ]
    for args, message in cases:
        with pytest.raises(ValueError, match=message):
            fit(*args, cat_features=CATS, config=FAST)
    with pytest.raises(ValueError, match="not columns of features"):
        fit(features, treatment, outcome, cat_features=("channel",), config=FAST)
    with pytest.raises(ValueError, match="list it in cat_features"):
        fit(features, treatment, outcome, cat_features=(), config=FAST)


def test_predict_rejects_missing_features(train_frame: pd.DataFrame) -> None:
    features, treatment, outcome = _tiny_design()
    model = fit_t_learner(features, treatment, outcome, CATS, FAST)
    with pytest.raises(ValueError, match="lacks model features"):
        model.predict_uplift(features.drop(columns=["noise"]))


def test_config_rejects_unknown_learner() -> None:
    with pytest.raises(ValueError, match="learner"):
        UpliftConfig(learner="s")  # type: ignore[arg-type]


# ---------------------------------------------------------------------------------- segments


def test_segments_follow_documented_thresholds() -> None:
    p_treated = np.array([0.30, 0.800, 0.10, 0.20, 0.605, 0.120])
    p_control = np.array([0.10, 0.795, 0.10, 0.60, 0.600, 0.125])
    segments = segment_customers(p_treated, p_control)
    assert list(segments.categories) == list(SEGMENTS)
    assert list(segments) == [
        Segment.PERSUADABLE,  # +0.20 >= 0.01
        Segment.SURE_THING,  # +0.005: no effect, and 0.795 >= 0.5 responds anyway
        Segment.LOST_CAUSE,  # no effect, 0.10 < 0.5
        Segment.DO_NOT_DISTURB,  # -0.40 <= -0.01
        Segment.SURE_THING,  # +0.005, 0.60 >= 0.5
        Segment.LOST_CAUSE,  # -0.005, 0.125 < 0.5
    ]


def test_segment_thresholds_are_settings() -> None:
    p_treated, p_control = np.array([0.18, 0.135]), np.array([0.15, 0.13])
    default = segment_customers(p_treated, p_control)
    assert list(default) == ["persuadable", "lost_cause"]
    # For a rare outcome the response threshold belongs near the base rate.
    tuned = segment_customers(p_treated, p_control, SegmentThresholds(0.05, 0.12))
    assert list(tuned) == ["sure_thing", "sure_thing"]


@pytest.mark.parametrize(
    ("p_treated", "p_control", "message"),
    [
        (np.array([0.2, 0.3]), np.array([0.1]), "equal length"),
        (np.array([0.2, 1.3]), np.array([0.1, 0.1]), "p_treated must lie in"),
        (np.array([0.2, 0.3]), np.array([0.1, np.nan]), "p_control must lie in"),
    ],
)
def test_segments_reject_bad_input(
    p_treated: np.ndarray, p_control: np.ndarray, message: str
) -> None:
    with pytest.raises(ValueError, match=message):
        segment_customers(p_treated, p_control)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"min_uplift": -0.1}, "min_uplift"), ({"response_threshold": 1.0}, "response_threshold")],
)
def test_segment_thresholds_reject_bad_values(kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        SegmentThresholds(**kwargs)
