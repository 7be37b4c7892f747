"""CLV summaries, the BG/NBD + Gamma-Gamma baseline and the CatBoost comparison on tiny frames.

The RFM and holdout values were computed by hand. The baseline tests use a population simulated
from BG/NBD and Gamma-Gamma with known parameters; the comparison test plants a value that only
a caller feature (a tier) reveals, so CatBoost must win.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from ml.modelling.boosting import BoostingParams
from ml.models.customer_value.model import (
    PREDICTION_COLUMNS,
    BaselineModel,
    ClvConfig,
    ClvScores,
    compare_on_holdout,
    fit_baseline,
    fit_clv,
    history_features,
    holdout_actuals,
    pick_winner,
    plot_clv_holdout,
    predict_clv,
    rfm_summary,
    score_predictions,
)

CUTOFF = pd.Timestamp("2024-02-11")
FAST = ClvConfig(boosting=BoostingParams(iterations=60, depth=3, learning_rate=0.2, seed=7))
TRUE_BGNBD = {"r": 0.8, "alpha": 4.0, "a": 0.8, "b": 2.5}
TRUE_GG = {"p": 6.0, "q": 4.0, "v": 15.0}


def _orders(rows: list[tuple[str, str, float]]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "customer_id": [r[0] for r in rows],
            "ordered_at": pd.to_datetime([r[1] for r in rows], format="ISO8601"),
            "amount": [r[2] for r in rows],
        }
    )


@pytest.fixture
def orders() -> pd.DataFrame:
    return _orders(
        [
            ("a", "2024-01-01 09:00", 10.0),
            ("a", "2024-01-01 17:30", 5.0),  # same day: one purchase of 15
            ("a", "2024-01-15 12:00", 20.0),
            ("a", "2024-01-29 08:00", 30.0),
            ("a", "2024-03-01 10:00", 99.0),  # after the cutoff
            ("a", "2024-03-01 11:00", 1.0),  # same day in the holdout
            ("a", "2024-04-01 10:00", 50.0),  # after a 30-day holdout
            ("b", "2024-02-04 23:59", 12.0),  # one-time buyer
            ("b", "2024-02-20 10:00", 8.0),
            ("c", "2024-02-12 00:01", 40.0),  # first order after the cutoff
        ]
    )


# --------------------------------------------------------------------------------------------
# Summaries
# --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("period_days", [7.0, 1.0])
def test_rfm_summary_matches_hand_computed_values(orders: pd.DataFrame, period_days: float) -> None:
    summary = rfm_summary(orders, CUTOFF, period_days=period_days).set_index("customer_id")

    assert list(summary.index) == ["a", "b"]  # c first bought after the cutoff
    a, b = summary.loc["a"], summary.loc["b"]
    # a: purchase days Jan 1 (15), Jan 15 (20), Jan 29 (30); the cutoff is 41 days after Jan 1.
    assert a["frequency"] == 2
    assert a["recency"] == pytest.approx(28 / period_days)
    assert a["T"] == pytest.approx(41 / period_days)
    assert a["monetary_value"] == pytest.approx(25.0)  # repeat purchases only
    # b: one purchase on Feb 4, 7 days before the cutoff.
    assert (b["frequency"], b["recency"], b["monetary_value"]) == (0, 0.0, 0.0)
    assert b["T"] == pytest.approx(7 / period_days)


def test_rfm_summary_counts_an_order_late_on_the_cutoff_day() -> None:
    orders = _orders([("a", "2024-02-01", 5.0), ("a", "2024-02-11 23:59", 7.0)])

    summary = rfm_summary(orders, CUTOFF, period_days=1.0)

    assert summary["frequency"].tolist() == [1]
    assert summary["monetary_value"].tolist() == [7.0]


def test_history_features_add_recent_and_total_value(orders: pd.DataFrame) -> None:
    features = history_features(orders, CUTOFF).set_index("customer_id")

    assert features.loc["a", "days_since_last_purchase"] == 13  # Jan 29 -> Feb 11
    assert features.loc["a", "total_value"] == pytest.approx(65.0)
    assert features.loc["a", "first_purchase_value"] == pytest.approx(15.0)
    assert features.loc["a", "max_purchase_value"] == pytest.approx(30.0)
    assert features.loc["a", "purchases_last_90d"] == 3
    assert features.loc["b", "value_last_90d"] == pytest.approx(12.0)


def test_holdout_actuals_counts_purchase_days_in_the_window(orders: pd.DataFrame) -> None:
    actuals = holdout_actuals(orders, CUTOFF, horizon_days=30).set_index("customer_id")

    assert list(actuals.index) == ["a", "b"]
    # a: Mar 1 twice (one purchase of 100); Apr 1 is 50 days after the cutoff.
    assert actuals.loc["a"].tolist() == [1, 100.0]
    assert actuals.loc["b"].tolist() == [1, 8.0]


def test_negative_amounts_are_rejected(orders: pd.DataFrame) -> None:
    orders.loc[0, "amount"] = -3.0

    with pytest.raises(ValueError, match="negative"):
        rfm_summary(orders, CUTOFF)


# --------------------------------------------------------------------------------------------
# Baseline on a population simulated from BG/NBD and Gamma-Gamma
# --------------------------------------------------------------------------------------------


def _simulate(n: int, weeks: float, seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """An RFM summary drawn from BG/NBD + Gamma-Gamma, and each customer's purchase rate."""
    rng = np.random.default_rng(seed)
    rate = rng.gamma(TRUE_BGNBD["r"], 1.0 / TRUE_BGNBD["alpha"], n)
    dropout = rng.beta(TRUE_BGNBD["a"], TRUE_BGNBD["b"], n)
    big_t = rng.uniform(weeks / 2, weeks, n)  # first purchases spread over the first half
    t, x, t_x = np.zeros(n), np.zeros(n), np.zeros(n)
    alive = np.ones(n, dtype=bool)
    while alive.any():  # one step per repeat purchase, all customers at once
        t = t + rng.exponential(1.0 / rate)
        alive &= t <= big_t
        x = np.where(alive, x + 1, x)
        t_x = np.where(alive, t, t_x)
        alive &= rng.random(n) >= dropout  # dropout only right after a repeat purchase
    spend_rate = rng.gamma(TRUE_GG["q"], 1.0 / TRUE_GG["v"], n)
    # The mean of x draws of Gamma(p, spend_rate) is Gamma(p * x, x * spend_rate).
    mean_spend = rng.gamma(TRUE_GG["p"] * np.maximum(x, 1), 1.0 / (np.maximum(x, 1) * spend_rate))
    summary = pd.DataFrame(
        {
            "customer_id": [f"c{i:05d}" for i in range(n)],
            "frequency": x.astype(int),
            "recency": t_x,
            "T": big_t,
            "monetary_value": np.where(x > 0, mean_spend, 0.0),
        }
    )
    return summary, rate


@pytest.fixture(scope="module")
def simulated() -> tuple[pd.DataFrame, np.ndarray, BaselineModel]:
    summary, rate = _simulate(3000, weeks=52.0, seed=3)
    return summary, rate, fit_baseline(summary)


def test_baseline_recovers_the_simulated_parameters(
    simulated: tuple[pd.DataFrame, np.ndarray, BaselineModel],
) -> None:
    _, _, model = simulated

    fitted = {"r": model.bgnbd.r, "alpha": model.bgnbd.alpha, "a": model.bgnbd.a}
    fitted["b"] = model.bgnbd.b
    for name, true in TRUE_BGNBD.items():
        assert fitted[name] == pytest.approx(true, rel=0.25), name
    gg = model.gamma_gamma
    true_mean = TRUE_GG["p"] * TRUE_GG["v"] / (TRUE_GG["q"] - 1)
    assert gg.population_mean == pytest.approx(true_mean, rel=0.2)


def test_frequent_buyers_get_more_expected_purchases_than_rare_ones(
    simulated: tuple[pd.DataFrame, np.ndarray, BaselineModel],
) -> None:
    summary, rate, model = simulated

    predicted = model.predict(summary, horizon_days=182)

    frequent = rate >= np.quantile(rate, 0.75)
    rare = rate <= np.quantile(rate, 0.25)
    assert predicted["expected_purchases"][frequent].mean() > (
        3 * predicted["expected_purchases"][rare].mean()
    )
    assert predicted["probability_alive"].between(0, 1).all()
    assert (predicted["probability_alive"][summary["frequency"] == 0] == 1).all()


def test_more_repeat_purchases_at_equal_recency_raise_expected_purchases(
    simulated: tuple[pd.DataFrame, np.ndarray, BaselineModel],
) -> None:
    _, _, model = simulated
    grid = pd.DataFrame(
        {
            "customer_id": ["x1", "x3", "x9"],
            "frequency": [1, 3, 9],
            "recency": [40.0] * 3,
            "T": [45.0] * 3,
            "monetary_value": [20.0] * 3,
        }
    )

    predicted = model.predict(grid, horizon_days=365)["expected_purchases"].to_numpy()

    assert np.all(np.diff(predicted) > 0)


# --------------------------------------------------------------------------------------------
# Comparison and the pipeline model
# --------------------------------------------------------------------------------------------


def _tiered_orders(n: int, seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Orders where only a caller feature (tier) tells who spends ten times more later.

    Before the cutoff (2024-04-01) every customer buys alike (one to six orders of about 10);
    in the 90 days after it gold
    customers buy three times for about 100 each, the others once for about 10.
    """
    rng = np.random.default_rng(seed)
    ids = np.array([f"k{i:04d}" for i in range(n)])
    gold = rng.random(n) < 0.3
    start = pd.Timestamp("2024-01-01")
    # One to six calibration orders per customer on random days, with alike spend.
    per_customer = rng.integers(1, 7, n)
    calibration = np.repeat(ids, per_customer)
    rows = [
        pd.DataFrame(
            {
                "customer_id": calibration,
                "ordered_at": start + pd.to_timedelta(rng.integers(0, 90, calibration.size), "D"),
                "amount": rng.gamma(4.0, 2.5, calibration.size),
            }
        )
    ]
    for k in range(3):  # the holdout
        buys = gold | (k == 0)
        rows.append(
            pd.DataFrame(
                {
                    "customer_id": ids[buys],
                    "ordered_at": pd.Timestamp("2024-04-05")
                    + pd.to_timedelta(rng.integers(0, 85, int(buys.sum())), "D"),
                    "amount": np.where(gold[buys], 100.0, 10.0) * rng.uniform(0.9, 1.1, buys.sum()),
                }
            )
        )
    features = pd.DataFrame({"customer_id": ids, "tier": np.where(gold, "gold", "standard")})
    return pd.concat(rows, ignore_index=True), features


def test_comparison_picks_catboost_when_a_feature_reveals_future_value(tmp_path: Path) -> None:
    orders, tiers = _tiered_orders(400, seed=11)
    config = replace(FAST, horizon_days=90, catboost_protocol="auto")

    comparison = compare_on_holdout(orders, pd.Timestamp("2024-04-01"), config, tiers)

    # Nobody was a customer 90 days before the cutoff: the customer split is the only option.
    assert comparison.catboost_protocol == "customer_split"
    assert comparison.customers == 400
    assert comparison.winner == "catboost"
    assert comparison.catboost.value_mae < 0.5 * comparison.bgnbd.value_mae
    assert comparison.catboost.value_spearman > comparison.bgnbd.value_spearman
    assert "customer_id" not in comparison.as_metrics()
    png = plot_clv_holdout(comparison, tmp_path / "plots" / "clv.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def _scores(value_mae: float) -> ClvScores:
    return ClvScores(1.0, 1.0, value_mae, 1.0, 1.0, 1.0, 0.0, 0.0, 0.5)


@pytest.mark.parametrize(
    ("bgnbd_mae", "catboost_mae", "winner"),
    [(10.0, 9.0, "catboost"), (9.0, 10.0, "bgnbd"), (9.0, 9.0, "bgnbd")],
)
def test_pick_winner_uses_value_mae_and_breaks_ties_for_the_baseline(
    bgnbd_mae: float, catboost_mae: float, winner: str
) -> None:
    assert pick_winner(_scores(bgnbd_mae), _scores(catboost_mae)) == winner


def test_score_predictions_matches_hand_computed_errors() -> None:
    scores = score_predictions([0, 2, 4], [0.0, 20.0, 40.0], [1, 2, 2], [10.0, 20.0, 10.0])

    assert scores.purchases_mae == pytest.approx(1.0)  # |1| + 0 + |-2|, over 3
    assert scores.purchases_rmse == pytest.approx(np.sqrt(5 / 3))
    assert scores.value_mae == pytest.approx(40 / 3)
    assert scores.purchases_total_error_pct == pytest.approx(-100 / 6)
    assert scores.value_total_error_pct == pytest.approx(-100 / 3)


def test_catboost_clv_model_scores_every_known_customer() -> None:
    orders, tiers = _tiered_orders(300, seed=5)
    # As of 2024-06-30 the regressor learns from the window 2024-04-01..2024-06-30.
    as_of = pd.Timestamp("2024-06-30")

    model = fit_clv(
        orders,
        as_of,
        "catboost",
        ClvConfig(boosting=BoostingParams(iterations=30), horizon_days=90),
        tiers,
    )
    scored = predict_clv(model, orders, features=tiers)

    assert tuple(scored.columns) == PREDICTION_COLUMNS
    assert len(scored) == 300
    assert scored["probability_alive"].between(0, 1).all()
    assert (scored[["expected_purchases_12m", "expected_value_12m"]] >= 0).all().all()
